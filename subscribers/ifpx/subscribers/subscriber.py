"""The worker-side subscriber: late join, ordered updates, gap repair, callbacks.

Protocol (the ZeroMQ Guide's Clone pattern): subscribe first, then ask for a
snapshot tagged with the sequence it is consistent at; drop buffered updates at
or below it; apply the rest. A per-topic sequence gap, a new bridge epoch or
missed heartbeats trigger a repair: a journal replay when the gap is small, a
fresh snapshot otherwise. Repairs run asynchronously over a DEALER socket, so
:meth:`Subscriber.poll` never blocks an lcore loop.
"""

from __future__ import annotations

import gc
import itertools
import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import zmq

from ifpx.schemas import codec
from ifpx.schemas import commands as c
from ifpx.schemas import events as ev
from ifpx.schemas.envelope import Message
from ifpx.schemas.state import RouteTable, SnapshotState
from ifpx.schemas.topics import topics_for_kinds

from .callbacks import Callbacks
from .client import default_control, default_events
from .replica import Replica, diff_replicas, initial_events
from .security import CurveClient

log = logging.getLogger(__name__)

_ALWAYS_KINDS = {
    "port_bound",
    "port_unbound",
    "proxy_gone",
    "proxy_renamed",
    "proxy_back",
    "cfg_done",
    "resync_begin",
    "resync_end",
}
MAX_HELD = 100_000
"""Most messages held while a repair is under way; past it, a snapshot covers them all.

The C library's ``IFPX_MAX_HELD`` is the same number (a test holds them equal).
"""
EPOCH_PROBE_INTERVAL = 1.0
"""Least time between two snapshots asked for because a message of an unknown epoch came."""
_RETIRED_EPOCHS = 16
_MAX_PROBING = 8
_ids = itertools.count(1)


def tune_gc() -> None:
    """Tune Python's cyclic collector for a process that holds a large replica.

    A full routing table is millions of long-lived objects, and the default
    thresholds make the collector rescan them over and over (about half the
    time of applying a route burst). Call this once in a worker process; it is
    not done for you because a library should not change process-wide settings.
    Once called, the process's subscribers also freeze each snapshot they load
    (``gc.freeze``), so that the collector never walks a loaded table.
    """
    global _tuned
    gc.set_threshold(100_000, 50, 100)
    gc.freeze()
    _tuned = True


_tuned = False


@contextmanager
def _collector_paused() -> Iterator[None]:
    # A snapshot reply becomes millions of fresh, acyclic objects; the cyclic collector
    # rescans them again and again while they are built (it nearly doubled the time to
    # decode a full table). Paused for that moment only, and restored as it was.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if _tuned:
            # Otherwise the first collection after this walks the whole new table
            # once (half a second at a million routes) just to learn it is acyclic.
            gc.freeze()
        if enabled:
            gc.enable()


@dataclass
class SubscriberStats:
    """What happened so far; useful in tests, logs and dashboards."""

    messages: int = 0
    events: int = 0
    gaps: int = 0
    journal_repairs: int = 0
    snapshot_repairs: int = 0
    epochs: int = 0
    heartbeat_misses: int = 0
    bad_messages: int = 0
    callback_errors: int = 0
    request_retries: int = 0


class _EventQueue:
    """Events waiting for the application: ready ones, and lazily produced runs."""

    def __init__(self) -> None:
        self._segments: deque[deque[ev.EventBase] | Iterator[ev.EventBase]] = deque()

    def append(self, e: ev.EventBase) -> None:
        last = self._segments[-1] if self._segments else None
        if isinstance(last, deque):
            last.append(e)
        else:
            self._segments.append(deque([e]))

    def extend(self, events: Iterable[ev.EventBase]) -> None:
        last = self._segments[-1] if self._segments else None
        if isinstance(last, deque):
            last.extend(events)
        else:
            self._segments.append(deque(events))

    def take(self, n: int) -> list[ev.EventBase]:
        """Up to ``n`` events (fewer only when the queue runs dry)."""
        out: list[ev.EventBase] = []
        while len(out) < n and self._segments:
            head = self._segments[0]
            if isinstance(head, deque):
                want = n - len(out)
                if len(head) <= want:
                    out.extend(head)
                    self._segments.popleft()
                else:
                    out.extend(head.popleft() for _ in range(want))
            else:
                out.extend(itertools.islice(head, n - len(out)))
                if len(out) < n:
                    self._segments.popleft()  # that run is exhausted
        return out

    def add_lazy(self, events: Iterator[ev.EventBase]) -> None:
        self._segments.append(events)


@dataclass
class _Request:
    id: int
    kind: str
    sent: float
    reason: str


class Subscriber:
    """One worker's view of the bridge: a replica, events in order, repairs done for you."""

    def __init__(
        self,
        events: str | None = None,
        control: str | None = None,
        kinds: set[str] | list[str] | None = None,
        ports: set[int] | list[int] | None = None,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        heartbeat_timeout: float = 3.5,
        request_timeout: float = 5.0,
        rcvhwm: int = 100_000,
        curve: CurveClient | None = None,
    ) -> None:
        self.events_endpoint = events or default_events()
        self.control_endpoint = control or default_control()
        self.kinds = set(kinds) if kinds else None
        self.ports = set(ports) if ports else None
        self.topics = topics_for_kinds(self.kinds)
        self.state = Replica()
        self.stats = SubscriberStats()
        self.heartbeat_timeout = heartbeat_timeout
        self.request_timeout = request_timeout
        self.curve = curve or CurveClient.from_env()
        self._ctx = context or zmq.Context.instance()
        self._sub = self._ctx.socket(zmq.SUB)
        self._sub.setsockopt(zmq.RCVHWM, rcvhwm)
        self._sub.setsockopt(zmq.LINGER, 0)
        if self.curve is not None:
            self.curve.apply(self._sub)
        self._sub.connect(self.events_endpoint)
        for topic in sorted(self.topics):
            self._sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
        self._ctl: zmq.Socket[bytes] | None = None
        self._req: _Request | None = None
        self.epoch: int | None = None
        # Epochs that are not the bridge's: earlier lives, and any that a snapshot proved
        # bogus. Their messages are dropped and prove nothing about the bridge's liveness.
        self._retired: deque[int] = deque(maxlen=_RETIRED_EPOCHS)
        # Unknown epochs seen since the snapshot that will settle them was asked for.
        self._probing: set[int] = set()
        self._probe_at = -EPOCH_PROBE_INTERVAL
        self.seq = 0
        self._tseq: dict[str, int] = {}
        self._tseq_at: dict[str, int] = {}
        self._held: list[Message] = []
        self._pending = _EventQueue()
        self._last_rx = time.monotonic()
        self.synced = False
        self._closed = False
        self._stopping = False

    # ---- public API -------------------------------------------------------------

    def sync(self, timeout: float = 5.0) -> None:
        """Subscribe, take a snapshot, apply it; return once consistent (TimeoutError if not)."""
        deadline = time.monotonic() + timeout
        if self._req is None and not self.synced:
            self._start_snapshot("initial sync")
        while not self.synced:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no snapshot from {self.control_endpoint} within {timeout}s")
            self._wait(min(remaining, 0.1))
            self._read_available()
            self._service_control()

    def poll(self, max_events: int = 64, timeout: float = 0.0) -> list[ev.EventBase]:
        """Up to ``max_events`` events, applied to :attr:`state` (like ``rte_ring_dequeue_burst``).

        With ``timeout=0`` this never blocks; otherwise it waits at most
        ``timeout`` seconds for the first event.
        """
        out: list[ev.EventBase] = []
        deadline = time.monotonic() + timeout if timeout > 0 else 0.0
        self._service_control()
        while len(out) < max_events:
            ready = self._pending.take(max_events - len(out))
            if ready:
                out.extend(ready)
                continue
            if self._read_one():
                continue
            if out or not deadline:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._wait(remaining)
            self._service_control()
        self._check_liveness()
        return out

    def run(self, callbacks: Callbacks, duration: float | None = None) -> None:
        """Call ``callbacks.<kind>(event)`` for every event until :meth:`stop` (or ``duration``)."""
        end = None if duration is None else time.monotonic() + duration
        self._stopping = False
        while not self._stopping and not self._closed:
            if end is not None and time.monotonic() >= end:
                return
            for e in self.poll(max_events=256, timeout=0.1):
                self.dispatch(callbacks, e)

    def dispatch(self, callbacks: Callbacks, e: ev.EventBase) -> None:
        """Call the callback for ``e``; a raising callback is logged and counted."""
        method = getattr(callbacks, e.kind, None)
        if method is None:
            return
        try:
            method(e)
        except Exception:
            self.stats.callback_errors += 1
            log.exception("callback %s raised", e.kind)

    def stop(self) -> None:
        """Make :meth:`run` return after the current burst."""
        self._stopping = True

    def close(self) -> None:
        """Close the sockets."""
        self._closed = True
        self._sub.close()
        if self._ctl is not None:
            self._ctl.close()
            self._ctl = None

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def repairing(self) -> bool:
        """True while a journal or snapshot repair is under way."""
        return self._req is not None

    # ---- receiving ----------------------------------------------------------------

    def _wait(self, seconds: float) -> None:
        ms = int(max(seconds, 0.0) * 1000)
        if self._ctl is None or self._req is None:
            self._sub.poll(ms, zmq.POLLIN)
            return
        poller = zmq.Poller()
        poller.register(self._sub, zmq.POLLIN)
        poller.register(self._ctl, zmq.POLLIN)
        poller.poll(ms)

    def _read_one(self) -> bool:
        try:
            frames = self._sub.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return False
        self._on_frames(frames)
        return True

    def _read_available(self) -> None:
        while self._read_one():
            pass

    def _on_frames(self, frames: list[bytes]) -> None:
        try:
            msg = codec.decode_message(frames)
        except codec.CodecError as exc:
            self.stats.bad_messages += 1
            log.warning("dropping malformed message: %s", exc)
            return
        self.stats.messages += 1
        if self.synced and msg.epoch != self.epoch:
            self._foreign(msg)
            return
        self._last_rx = time.monotonic()
        if self._req is not None or not self.synced:
            self._hold(msg)
            return
        self._process(msg)

    def _foreign(self, msg: Message) -> None:
        # A message of another epoch: a bridge restarted (its epoch is larger, or smaller
        # if its clock went back and its state file was lost), a straggler of an earlier
        # life, or garbage. Only a snapshot can tell, and the one rule for all three:
        # ask once, hold what the asked-about epochs send meanwhile, believe the snapshot.
        epoch = msg.epoch
        if epoch in self._retired:
            return
        if epoch in self._probing:
            self._hold(msg)
            return
        pending = self._req is not None and self._req.kind == "snapshot"
        if not pending:
            now = time.monotonic()
            if now - self._probe_at < EPOCH_PROBE_INTERVAL:
                return  # its next message or heartbeat asks again
            self._probe_at = now
            self.stats.epochs += 1
            self._start_snapshot("new bridge epoch")
        if len(self._probing) < _MAX_PROBING:
            self._probing.add(epoch)
            self._hold(msg)

    def _retire(self, epoch: int) -> None:
        if epoch not in self._retired:
            self._retired.append(epoch)

    def _hold(self, msg: Message) -> None:
        if msg.topic == "hb":
            return  # a heartbeat only matters against the state it arrives in
        self._held.append(msg)
        if len(self._held) > MAX_HELD:
            self._held.clear()
            if self._req is None or self._req.kind != "snapshot":
                self._req = None
                self._start_snapshot("too far behind during repair")

    def _process(self, msg: Message) -> None:
        if msg.epoch != self.epoch:
            self._foreign(msg)
            return
        if msg.topic == "hb":
            hb = msg.events[0]
            assert isinstance(hb, ev.Heartbeat)  # the envelope's rule: one heartbeat on hb
            behind = [
                t
                for t in self.topics
                if t != "hb" and hb.topic_seqs.get(t, 0) > self._tseq.get(t, 0)
            ]
            if behind:
                self.stats.gaps += 1
                self._start_replay(min(self._tseq_at.get(t, 0) for t in behind), "lost tail")
            return
        last = self._tseq.get(msg.topic, 0)
        if msg.tseq <= last:
            return
        if msg.tseq > last + 1:
            self.stats.gaps += 1
            self._start_replay(self._tseq_at.get(msg.topic, 0), f"gap on {msg.topic}")
            self._hold(msg)
            return
        self._tseq[msg.topic] = msg.tseq
        self._tseq_at[msg.topic] = msg.seq
        self.seq = msg.seq
        self._accept(msg.events)

    def _wanted(self, e: ev.EventBase) -> bool:
        if self.ports is not None and isinstance(e, ev.PortScoped):
            return e.port_id in self.ports
        return True

    def _accept(self, events: Sequence[ev.EventBase]) -> None:
        # Once per event in a burst: the filters are looked up once per message.
        if self.ports is not None:
            events = [e for e in events if self._wanted(e)]
        apply = self.state.apply
        for e in events:
            apply(e)
        self.stats.events += len(events)
        kinds = self.kinds
        if kinds is not None:
            events = [e for e in events if e.kind in kinds or e.kind in _ALWAYS_KINDS]
        self._pending.extend(events)

    # ---- repairs ------------------------------------------------------------------

    def _socket(self) -> zmq.Socket[bytes]:
        if self._ctl is None:
            sock = self._ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, codec.MAX_REPLY_BYTES)
            if self.curve is not None:
                self.curve.apply(sock)
            sock.connect(self.control_endpoint)
            self._ctl = sock
        return self._ctl

    def _send(self, kind: str, cmd: c.Command, reason: str) -> None:
        rid = next(_ids)
        payload = codec.encode_request(cmd.model_copy(update={"id": rid}))
        self._req = _Request(rid, kind, time.monotonic(), reason)
        self._socket().send_multipart([b"", payload])

    def _start_snapshot(self, reason: str) -> None:
        if self._req is not None and self._req.kind == "snapshot":
            return
        log.info("snapshot repair: %s", reason)
        self._send("snapshot", c.Snapshot(), reason)

    def _start_replay(self, from_seq: int, reason: str) -> None:
        if self._req is not None:
            return
        assert self.epoch is not None
        topics: list[str] = sorted(t for t in self.topics if t != "hb")
        self._send("replay", c.Replay(epoch=self.epoch, from_seq=from_seq, topics=topics), reason)

    def _service_control(self) -> None:
        req = self._req
        if req is None:
            return
        sock = self._socket()
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            with _collector_paused():
                try:
                    reply = codec.decode_reply(frames[-1])
                except codec.CodecError as exc:
                    log.warning("bad reply: %s", exc)
                    continue
                if reply.id != req.id:
                    continue  # an answer to a request we gave up on
                self._req = None
                self._on_reply(req, reply)
            return
        if time.monotonic() - req.sent > self.request_timeout:
            # Lazy Pirate: the bridge may be gone; a fresh socket drops the stale request.
            self.stats.request_retries += 1
            if self._ctl is not None:
                self._ctl.close()
                self._ctl = None
            self._req = None
            self._send(req.kind if req.kind == "snapshot" else "snapshot", c.Snapshot(), req.reason)

    def _on_reply(self, req: _Request, reply: c.OkReply | c.ErrorReply) -> None:
        if isinstance(reply, c.ErrorReply):
            log.info(
                "%s repair refused (%s): falling back to a snapshot", req.kind, reply.error.code
            )
            self._start_snapshot(req.reason)
            return
        result = reply.result
        if isinstance(result, c.SnapshotResult):
            self._install(result, req.reason)
        elif isinstance(result, c.ReplayResult):
            try:
                missing = [codec.decode_payload(p) for p in result.messages]
            except codec.CodecError as exc:
                log.warning("bad journal reply (%s): falling back to a snapshot", exc)
                self._start_snapshot(req.reason)
                return
            self.stats.journal_repairs += 1
            held, self._held = self._held, []
            for msg in sorted([*missing, *held], key=lambda m: (m.epoch, m.seq)):
                if self._req is not None:
                    self._hold(msg)
                else:
                    self._process(msg)

    def _filtered(self, state: SnapshotState) -> SnapshotState:
        ports = self.ports
        keep = self.topics
        if ports is None and keep >= {"link", "addr", "route", "neigh"}:
            return state
        out_ports = []
        for p in state.ports:
            if ports is not None and p.port_id not in ports:
                continue
            update: dict[str, object] = {}
            if "addr" not in keep:
                update["addrs"] = []
            if "link" not in keep:
                update.update(mac=None, mtu=0, up=False, carrier=False)
            out_ports.append(p.model_copy(update=update) if update else p)
        return SnapshotState.model_construct(
            bindings=[b for b in state.bindings if ports is None or b.port_id in ports],
            ports=out_ports,
            routes=state.routes if "route" in keep else RouteTable(),
            neighs=[
                n for n in state.neighs if "neigh" in keep and (ports is None or n.port_id in ports)
            ],
        )

    def _install(self, snap: c.SnapshotResult, reason: str) -> None:
        target = Replica()
        target.load(self._filtered(snap.state))
        target.cfg_done = snap.cfg_done
        if not self.synced:
            # The initial state reaches the application as events (as the RFC's initial
            # dump does), produced as it polls for them: a full table costs no events
            # up front, and sync() returns as soon as the replica is loaded.
            self._pending.add_lazy(initial_events(target))
            self.state.adopt(target)
            if snap.cfg_done:
                self._pending.append(ev.CfgDone())
        else:
            changes = diff_replicas(self.state, target)
            self.state.adopt(target)
            self.stats.snapshot_repairs += 1
            self._pending.append(ev.ResyncBegin(reason=reason))
            self._pending.extend(changes)
            self._pending.append(ev.ResyncEnd(reason=reason, changes=len(changes)))
        if self.epoch is not None and self.epoch != snap.epoch:
            self._retire(self.epoch)
        for epoch in self._probing - {snap.epoch}:
            self._retire(epoch)
        self._probing.clear()
        self.epoch = snap.epoch
        self.seq = snap.seq
        self._tseq = {t: snap.topic_seqs.get(t, 0) for t in self.topics}
        self._tseq_at = {t: snap.seq for t in self.topics}
        self.synced = True
        held, self._held = self._held, []
        for msg in held:
            if msg.epoch != snap.epoch:
                continue  # the snapshot is the bridge's word on which epoch is live
            if self._req is not None:
                self._hold(msg)
            elif msg.seq > snap.seq:
                self._process(msg)

    def _check_liveness(self) -> None:
        if not self.synced or self._req is not None:
            return
        now = time.monotonic()
        if now - self._last_rx > self.heartbeat_timeout:
            self.stats.heartbeat_misses += 1
            self._last_rx = now
            self._start_snapshot("heartbeats missed")
