"""The PUB side: sequence numbers, batching by topic, journal, heartbeats (thin I/O)."""

from __future__ import annotations

import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence

import zmq

from ifpx.schemas import codec
from ifpx.schemas.envelope import MAX_BATCH
from ifpx.schemas.events import EventBase, Heartbeat
from ifpx.schemas.journal import Journal
from ifpx.schemas.topics import KIND_TOPIC, TOPICS, Topic
from ifpx.schemas.version import PROTOCOL_VERSION

_TOPIC_FRAMES = {t: t.encode() for t in TOPICS}
_ROUTE_FORMS: tuple[Topic, ...] = ("fib", "route")


class SeqTimes:
    """When sequence numbers were published, to a resolution of ``resolution`` seconds (pure).

    One record per ``resolution`` at most, so a burst of a million messages costs a
    comparison each; the last ``capacity`` records are kept (older sequence numbers
    read as the oldest record's time, so an old lag reads short, never long).
    """

    def __init__(self, resolution: float = 0.01, capacity: int = 8192) -> None:
        self.resolution = resolution
        self.capacity = capacity
        self._seqs: list[int] = []
        self._times: list[float] = []
        self._last = float("-inf")

    def record(self, seq: int, now: float) -> None:
        """``seq`` was published at ``now``."""
        if now - self._last < self.resolution:
            return
        self._last = now
        self._seqs.append(seq)
        self._times.append(now)
        if len(self._seqs) > 2 * self.capacity:
            del self._seqs[: self.capacity]
            del self._times[: self.capacity]

    def time_of(self, seq: int) -> float | None:
        """About when ``seq`` was published (None if nothing was recorded yet)."""
        i = bisect_right(self._seqs, seq) - 1
        if i < 0:
            return self._times[0] if self._times else None
        return self._times[i]


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
        self.last_seq: dict[str, int] = {t: 0 for t in TOPICS if t != "hb"}
        """The ``seq`` of the latest message of every topic."""
        self.times = SeqTimes()
        self.between: Callable[[], None] | None = None
        """Called after each message a long publish sends (the daemon beats from it)."""

    def topic_seqs(self) -> dict[str, int]:
        """The latest ``tseq`` of every topic."""
        return dict(self.tseq)

    def last_seq_of(self, topics: Iterable[str]) -> int:
        """The ``seq`` of the latest message on any of ``topics``."""
        last = self.last_seq
        return max((last.get(t, 0) for t in topics), default=0)

    def published_at(self, seq: int) -> float | None:
        """About when (``time.monotonic``) ``seq`` was published."""
        return self.times.time_of(seq)

    def publish(self, events: Sequence[EventBase]) -> None:
        """Publish events in order; consecutive events of one topic share a message.

        The two route forms interleave event by event (each change in both), but no
        subscriber takes both: a run of them goes out as the group form's messages,
        then the flat form's, each in order, rather than a message per event.
        """
        i = 0
        n = len(events)
        while i < n:
            topic: Topic = KIND_TOPIC[events[i].kind]
            j = i + 1
            if topic in _ROUTE_FORMS:
                while j < n and KIND_TOPIC[events[j].kind] in _ROUTE_FORMS:
                    j += 1
                for form in _ROUTE_FORMS:
                    run = [e for e in events[i:j] if KIND_TOPIC[e.kind] == form]
                    for k in range(0, len(run), MAX_BATCH):
                        self._send(form, run[k : k + MAX_BATCH])
                i = j
                continue
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
        self.last_seq[topic] = self.seq
        self.times.record(self.seq, time.monotonic())
        payload = self._payload(self.seq, tseq, topic, batch)
        self.journal.append(self.seq, topic, payload)
        self._sock.send_multipart((_TOPIC_FRAMES[topic], payload))
        self.messages += 1
        self.bytes += len(payload)
        by_kind = self.by_kind
        for e in batch:
            kind = e.kind
            by_kind[kind] = by_kind.get(kind, 0) + 1
        if self.between is not None:
            self.between()

    def heartbeat(self, interval: float) -> None:
        """Announce the latest sequence numbers (no sequence number of its own)."""
        beat = Heartbeat(topic_seqs=self.topic_seqs(), interval=interval)
        self._sock.send_multipart((_TOPIC_FRAMES["hb"], self._payload(self.seq, 0, "hb", [beat])))
