"""``ifpx replay``: act as a bridge that publishes a recording.

Unmodified subscribers attach to it as to a live bridge: it publishes the
recorded messages with their original spacing (scaled by ``speed``) or as fast
as it can, sends heartbeats, and answers ``hello``, ``snapshot``, ``replay``,
``status``, ``list_bindings`` and ``events_available`` from the state the
recording has reached. Commands that would change anything are refused.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from ifpx.schemas import codec
from ifpx.schemas import commands as c
from ifpx.schemas import events as ev
from ifpx.schemas.envelope import Message
from ifpx.schemas.instance import InstanceLock
from ifpx.schemas.journal import Journal, JournalGap
from ifpx.schemas.serving import CommandError, Server, hello
from ifpx.schemas.topics import TOPICS

from .recording import RecordingError, decode_payload, read_header, records
from .replica import Replica

log = logging.getLogger(__name__)

SERVER = "ifpx-replay/0.1"
_JOURNAL_MESSAGES = 1_000_000
_JOURNAL_BYTES = 256 << 20


LATENESS_KEPT = 100_000
"""Lateness samples kept (the latest): a ``--loop`` runs for ever in bounded memory."""


@dataclass
class ReplayStats:
    """What a replay did, and how faithfully it kept time."""

    published: int = 0
    snapshots_served: int = 0
    loops: int = 0
    lateness: deque[float] = field(default_factory=lambda: deque(maxlen=LATENESS_KEPT))
    """Seconds each of the latest messages went out after its scheduled time."""


class Replayer:
    """Serves one recording on a PUB and a REP socket."""

    def __init__(
        self,
        path: Path,
        events: str,
        control: str,
        speed: float = 1.0,
        as_fast_as_possible: bool = False,
        loop: bool = False,
        linger: float = 2.0,
        heartbeat: float = 1.0,
    ) -> None:
        self.path = path
        self.speed = speed
        self.max = as_fast_as_possible
        self.loop = loop
        self.linger = linger
        self.heartbeat_interval = heartbeat
        self.stats = ReplayStats()
        self._stop = False
        # Endpoints a bridge (or another replay) serves are not ours to take: binding an
        # ipc endpoint would silently replace its socket file. InstanceLocked says whose.
        self._locks = InstanceLock()
        for ep in (events, control):
            if ep.startswith("ipc://"):
                Path(ep[6:]).parent.mkdir(parents=True, exist_ok=True)
                self._locks.take(Path(ep[6:]), "endpoint")
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._pub: zmq.Socket[bytes] = ctx.socket(zmq.PUB)
        self._pub.setsockopt(zmq.SNDHWM, 1_000_000)
        self._pub.setsockopt(zmq.LINGER, 0)
        self._rep: zmq.Socket[bytes] = ctx.socket(zmq.REP)
        self._rep.setsockopt(zmq.MAXMSGSIZE, codec.MAX_REQUEST_FRAME)
        self._rep.setsockopt(zmq.LINGER, 0)
        self._pub.bind(events)
        self._rep.bind(control)
        self._started = time.monotonic()
        self._next_hb = 0.0
        self.replica = Replica()
        self.epoch = 0
        self.seq = 0
        self.topic_seqs: dict[str, int] = {}
        self.journal = self._new_journal()
        self._server = Server(
            {
                "hello": self._hello,
                "snapshot": self._snapshot,
                "replay": self._replay,
                "status": self._status,
                "list_bindings": self._list_bindings,
                "events_available": self._events_available,
            },
            unsupported="a replay is read-only",
        )

    @staticmethod
    def _new_journal() -> Journal:
        return Journal(capacity=_JOURNAL_MESSAGES, max_bytes=_JOURNAL_BYTES)

    def stop(self) -> None:
        """Finish soon (signal-safe)."""
        self._stop = True

    def close(self) -> None:
        """Close the sockets and let go of the endpoints."""
        self._pub.close()
        self._rep.close()
        self._locks.release()

    # ---- serving ------------------------------------------------------------------

    def _serve_until(self, deadline: float) -> None:
        """Answer commands and send heartbeats until ``deadline`` (monotonic)."""
        while not self._stop:
            now = time.monotonic()
            if now >= self._next_hb:
                self._heartbeat()
                self._next_hb = now + self.heartbeat_interval
            wait = max(0.0, min(deadline, self._next_hb) - now)
            if self._rep.poll(int(wait * 1000), zmq.POLLIN):
                self._rep.send(self._server.answer(self._rep.recv_multipart()))
                continue
            if time.monotonic() >= deadline:
                return

    def _heartbeat(self) -> None:
        msg = Message(
            epoch=self.epoch,
            seq=self.seq,
            tseq=0,
            ts=time.time(),
            topic="hb",
            events=[
                ev.Heartbeat(topic_seqs=dict(self.topic_seqs), interval=self.heartbeat_interval)
            ],
        )
        self._pub.send_multipart(codec.encode_message(msg))

    def _hello(self, cmd: c.Hello) -> c.Result:
        # A recording holds a stream and its snapshots: journal and snapshot, nothing else.
        return hello(cmd, SERVER, self.epoch, ["journal", "snapshot"])

    def _snapshot(self, _cmd: c.Snapshot) -> c.Result:
        self.stats.snapshots_served += 1
        return c.SnapshotResult(
            epoch=self.epoch,
            seq=self.seq,
            topic_seqs=dict(self.topic_seqs),
            cfg_done=True,
            state=self.replica.to_wire(),
        )

    def _replay(self, cmd: c.Replay) -> c.Result:
        if cmd.epoch != self.epoch:
            raise CommandError(c.ErrorCode.JOURNAL_GAP, f"epoch {cmd.epoch} is not this replay's")
        topics = None if cmd.topics is None else set(cmd.topics)
        try:
            messages = self.journal.since(cmd.from_seq, self.seq, topics)
        except JournalGap as exc:
            raise CommandError(c.ErrorCode.JOURNAL_GAP, str(exc)) from None
        return c.ReplayResult(epoch=self.epoch, messages=messages)

    def _status(self, _cmd: c.Status) -> c.Result:
        return c.StatusResult(
            epoch=self.epoch,
            seq=self.seq,
            uptime=time.monotonic() - self._started,
            bindings=len(self.replica.bindings),
            counters={"published": self.stats.published, "loops": self.stats.loops},
        )

    def _list_bindings(self, _cmd: c.ListBindings) -> c.Result:
        return c.ListBindingsResult(bindings=list(self.replica.bindings.values()))

    def _events_available(self, _cmd: c.EventsAvailable) -> c.Result:
        return c.EventsAvailableResult(kinds=list(ev.EVENT_TYPES))

    # ---- playing ------------------------------------------------------------------

    def _install(self, snap: c.SnapshotResult, epoch: int) -> None:
        self.replica.load(snap.state)
        self.replica.cfg_done = snap.cfg_done
        self.epoch = epoch
        self.seq = snap.seq
        self.topic_seqs = {t: snap.topic_seqs.get(t, 0) for t in TOPICS if t != "hb"}
        self.journal = self._new_journal()

    def _play_once(self, iteration: int) -> None:
        with self.path.open("rb") as fh:
            read_header(fh)
            t0: float | None = None
            start = time.monotonic()
            for rec in records(fh):
                if self._stop:
                    return
                if rec.type == "snapshot":
                    reply = decode_payload(rec)
                    if not isinstance(reply, c.OkReply) or not isinstance(
                        reply.result, c.SnapshotResult
                    ):
                        raise RecordingError(f"record {rec.index}: not a snapshot", rec.index)
                    # A new epoch per loop, so subscribers resync when the story restarts.
                    self._install(reply.result, reply.result.epoch + iteration)
                    # The pause between the snapshot and the first message is part of the
                    # story (and what lets a watcher attach before it goes on).
                    t0 = rec.time if t0 is None else t0
                    continue
                msg = decode_payload(rec)
                assert isinstance(msg, Message)  # a record of any other type is a message
                if t0 is None:
                    t0 = rec.time
                due = start + (rec.time - t0) / self.speed
                self._serve_until(time.monotonic() if self.max else due)
                if iteration:
                    msg = msg.model_copy(update={"epoch": self.epoch})
                    frames = codec.encode_message(msg)
                else:
                    frames = [rec.topic.encode(), rec.payload]
                self._pub.send_multipart(frames)
                if not self.max:
                    self.stats.lateness.append(time.monotonic() - due)
                self.stats.published += 1
                self.seq = msg.seq
                self.topic_seqs[msg.topic] = msg.tseq
                self.journal.append(msg.seq, msg.topic, frames[1])
                self.replica.apply_all(msg.events)

    def run(self) -> ReplayStats:
        """Play the recording (again and again with ``loop``), then linger; return the stats."""
        iteration = 0
        while not self._stop:
            self._play_once(iteration)
            self.stats.loops += 1
            iteration += 1
            if not self.loop:
                break
            if not self.max:
                # A heartbeat's pause between two plays: every loop is a new epoch, which
                # subscribers must see and resync to (and a recording of one instant
                # would otherwise restart thousands of times a second).
                self._serve_until(time.monotonic() + self.heartbeat_interval / self.speed)
        self._serve_until(time.monotonic() + self.linger)
        return self.stats
