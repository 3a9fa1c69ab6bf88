"""The PUB side: sequence numbers, batching by topic, journal, heartbeats (thin I/O)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import zmq

from ifpx.schemas import codec
from ifpx.schemas.envelope import MAX_BATCH
from ifpx.schemas.events import EventBase, Heartbeat
from ifpx.schemas.journal import Journal
from ifpx.schemas.topics import KIND_TOPIC, TOPICS, Topic
from ifpx.schemas.version import PROTOCOL_VERSION

_TOPIC_FRAMES = {t: t.encode() for t in TOPICS}


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

    def _payload(self, seq: int, tseq: int, topic: str, events: Sequence[EventBase]) -> bytes:
        # A Message's fields in declaration order, packed without building the model:
        # the same bytes (held by tests/test_publisher.py), five times faster.
        fields = {
            "v": PROTOCOL_VERSION,
            "epoch": self.epoch,
            "seq": seq,
            "tseq": tseq,
            "ts": time.time(),
            "topic": topic,
            "events": events,
        }
        return codec.pack_payload(fields)

    def _send(self, topic: Topic, batch: list[EventBase]) -> None:
        self.seq += 1
        tseq = self.tseq[topic] = self.tseq[topic] + 1
        payload = self._payload(self.seq, tseq, topic, batch)
        self.journal.append(self.seq, topic, payload)
        self._sock.send_multipart((_TOPIC_FRAMES[topic], payload))
        self.messages += 1
        self.bytes += len(payload)
        by_kind = self.by_kind
        for e in batch:
            kind = e.kind
            by_kind[kind] = by_kind.get(kind, 0) + 1

    def heartbeat(self, interval: float) -> None:
        """Announce the latest sequence numbers (no sequence number of its own)."""
        beat = Heartbeat(topic_seqs=self.topic_seqs(), interval=interval)
        self._sock.send_multipart((_TOPIC_FRAMES["hb"], self._payload(self.seq, 0, "hb", [beat])))
