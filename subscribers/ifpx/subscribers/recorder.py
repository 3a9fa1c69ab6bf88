"""``ifpx record``: subscribe like a worker and write every message to a recording."""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import zmq

from ifpx.schemas import codec
from ifpx.schemas import commands as c
from ifpx.schemas.topics import RouteForm, Topic, topics_for_kinds

from .client import ControlClient
from .recording import Writer
from .security import CurveClient

log = logging.getLogger(__name__)


@dataclass
class RecordStats:
    """What a recording session wrote."""

    messages: int = 0
    snapshots: int = 0
    gaps: int = 0
    seconds: float = 0.0


class Recorder:
    """Writes a snapshot, then the messages that follow it, to ``path``."""

    def __init__(
        self,
        path: Path,
        events: str,
        control: str,
        kinds: set[str] | None = None,
        timeout: float = 5.0,
        curve: CurveClient | None = None,
        routes: RouteForm = "flat",
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        self.path = path
        self.on_retry = on_retry
        """Told when the snapshot's request goes unanswered and is sent again."""
        self.events = events
        self.control = control
        self.kinds = kinds
        self.curve = curve
        self.topics: list[Topic] = sorted(t for t in topics_for_kinds(kinds, routes) if t != "hb")
        """What is recorded; routes in one form (``routes``) unless ``kinds`` name both."""
        self.timeout = timeout
        self.stats = RecordStats()
        self._stop = False

    def stop(self) -> None:
        """Finish after the current message (signal-safe)."""
        self._stop = True

    def _snapshot(self, client: ControlClient) -> tuple[bytes, c.SnapshotResult]:
        # Naming the topics keeps the group form built while the subscription to it is
        # still on its way (as a worker's snapshot does); only a bridge of minor 3 knows
        # the field, and only the group form needs it.
        topics = self.topics if "fib" in self.topics else None
        raw = client.raw(codec.encode_request(c.Snapshot(id=1, topics=topics)), self.timeout)
        reply = codec.decode_reply(raw)
        if not isinstance(reply, c.OkReply) or not isinstance(reply.result, c.SnapshotResult):
            raise RuntimeError(f"snapshot refused: {reply}")
        self.stats.snapshots += 1
        return raw, reply.result

    def run(self, count: int = 0, duration: float = 0.0) -> RecordStats:
        """Record until ``count`` messages, ``duration`` seconds or :meth:`stop`."""
        started = time.monotonic()
        # Begun beside the target and renamed over it once the snapshot is in (then
        # written on where it can be watched): a bridge that never answers leaves an
        # existing recording of that name as it was.
        if self.path.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(self.path))
        if not self.path.parent.is_dir():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(self.path))
        part = self.path.with_name(f".{self.path.name}.{os.getpid()}.part")
        begun = False
        sub = self._subscribe()
        try:
            with (
                ControlClient(
                    self.control, timeout=self.timeout, curve=self.curve, on_retry=self.on_retry
                ) as client,
                part.open("wb") as fh,
            ):
                raw, snap = self._snapshot(client)
                header = {
                    "epoch": snap.epoch,
                    "start": time.time(),
                    "events": self.events,
                    "control": self.control,
                    "kinds": sorted(self.kinds) if self.kinds else None,
                    "topics": self.topics,
                }
                writer = Writer(fh, header)
                writer.write(time.time(), "snapshot", "", raw)
                fh.flush()
                part.replace(self.path)
                begun = True

                def done() -> bool:
                    if self._stop or (count and self.stats.messages >= count):
                        return True
                    return bool(duration) and time.monotonic() - started >= duration

                self._follow(sub, client, writer, snap, done)
        finally:
            sub.close()
            self.stats.seconds = time.monotonic() - started
            if not begun:
                part.unlink(missing_ok=True)
        return self.stats

    def _subscribe(self) -> zmq.Socket[bytes]:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        sub: zmq.Socket[bytes] = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.RCVHWM, 1_000_000)
        sub.setsockopt(zmq.LINGER, 0)
        if self.curve is not None:
            self.curve.apply(sub)
        sub.connect(self.events)
        for topic in self.topics:
            sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
        return sub

    def _follow(
        self,
        sub: zmq.Socket[bytes],
        client: ControlClient,
        writer: Writer,
        snap: c.SnapshotResult,
        done: Callable[[], bool],
    ) -> None:
        """Write what follows ``snap`` until ``done``: the messages it does not cover, and
        a new snapshot when the bridge restarts."""
        epoch, last, floor = snap.epoch, dict(snap.topic_seqs), snap.seq
        while not done():
            if not sub.poll(100, zmq.POLLIN):
                continue
            frames = sub.recv_multipart()
            when = time.time()
            try:
                msg = codec.decode_message(frames)
            except codec.CodecError as exc:
                log.warning("skipping malformed message: %s", exc)
                continue
            if msg.epoch != epoch:
                # The bridge restarted: the recording carries on from a new snapshot.
                raw, snap = self._snapshot(client)
                writer.write(time.time(), "snapshot", "", raw)
                epoch, last, floor = snap.epoch, dict(snap.topic_seqs), snap.seq
                continue
            if msg.seq <= floor or msg.tseq <= last.get(msg.topic, 0):
                continue
            if msg.tseq > last.get(msg.topic, 0) + 1:
                self.stats.gaps += 1
            last[msg.topic] = msg.tseq
            writer.write(when, "message", msg.topic, bytes(frames[1]))
            self.stats.messages += 1
