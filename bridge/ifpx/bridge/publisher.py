"""The PUB side: sequence numbers, batching by topic, journal, heartbeats (thin I/O)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import zmq

from ifpx.schemas import codec
from ifpx.schemas.envelope import MAX_BATCH, Message
from ifpx.schemas.events import EventBase, Heartbeat, trusted
from ifpx.schemas.topics import KIND_TOPIC, TOPICS, Topic

from .journal import Journal


class Publisher:
    """Stamps events with epoch and sequence numbers and publishes them in batches."""

    def __init__(self, sock: zmq.Socket[bytes], epoch: int, journal: Journal) -> None:
        self._sock = sock
        self.epoch = epoch
        self.journal = journal
        self.seq = 0
        self.tseq: dict[str, int] = {t: 0 for t in TOPICS if t != "hb"}
        self.messages = 0
        self.bytes = 0
        self.by_kind: dict[str, int] = {}

    def topic_seqs(self) -> dict[str, int]:
        """The latest ``tseq`` of every topic."""
        return dict(self.tseq)

    def publish(self, events: Sequence[EventBase]) -> None:
        """Publish events in order; consecutive events of one topic share a message."""
        i = 0
        n = len(events)
        while i < n:
            topic: Topic = KIND_TOPIC[events[i].kind]
            j = i + 1
            while j < n and j - i < MAX_BATCH and KIND_TOPIC[events[j].kind] == topic:
                j += 1
            self._send(topic, list(events[i:j]))
            i = j

    def _send(self, topic: Topic, batch: list[EventBase]) -> None:
        self.seq += 1
        self.tseq[topic] += 1
        msg = trusted(
            Message,
            epoch=self.epoch,
            seq=self.seq,
            tseq=self.tseq[topic],
            ts=time.time(),
            topic=topic,
            events=batch,
        )
        frames = codec.encode_message(msg)
        self.journal.append(msg.seq, topic, frames[1])
        self._sock.send_multipart(frames, copy=False)
        self.messages += 1
        self.bytes += len(frames[1])
        for e in batch:
            kind = e.kind
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1

    def heartbeat(self, interval: float) -> None:
        """Announce the latest sequence numbers (no sequence number of its own)."""
        msg = trusted(
            Message,
            epoch=self.epoch,
            seq=self.seq,
            tseq=0,
            ts=time.time(),
            topic="hb",
            events=[Heartbeat(topic_seqs=self.topic_seqs(), interval=interval)],
        )
        self._sock.send_multipart(codec.encode_message(msg), copy=False)
