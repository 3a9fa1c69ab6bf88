"""The worker-side subscriber: sockets around the protocol machine, and callbacks.

Protocol (the ZeroMQ Guide's Clone pattern): subscribe first, then ask for a
snapshot tagged with the sequence it is consistent at; drop buffered updates at
or below it; apply the rest. A per-topic sequence gap, a new bridge epoch or
missed heartbeats trigger a repair: a journal replay when the gap is small, a
fresh snapshot otherwise. Every one of those rules lives in
:class:`~ifpx.subscribers.sync.SyncMachine`; this module only moves bytes between
it and the sockets. Repairs run asynchronously over a DEALER socket, so
:meth:`Subscriber.poll` never blocks an lcore loop.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import zmq

from ifpx.schemas import codec
from ifpx.schemas import events as ev
from ifpx.schemas.endpoints import DEFAULT_CONTROL, DEFAULT_EVENTS
from ifpx.schemas.topics import FORM_TOPIC, RouteForm, topics_for_kinds

from .callbacks import Callbacks
from .client import missing_socket
from .replica import Replica
from .security import CurveClient
from .sync import (
    EPOCH_PROBE_INTERVAL,
    MAX_HELD,
    Action,
    Identity,
    ResetControl,
    SendReport,
    SubscriberStats,
    SyncMachine,
)

__all__ = ["EPOCH_PROBE_INTERVAL", "MAX_HELD", "Subscriber", "SubscriberStats", "tune_gc"]

log = logging.getLogger(__name__)


_NAME = re.compile(r"[!-~]{1,64}")


def default_name() -> str:
    """A worker's name unless it gives one: ``$IFPX_WORKER_NAME``, else ``host:pid``."""
    env = os.environ.get("IFPX_WORKER_NAME", "")
    if _NAME.fullmatch(env):
        return env
    if env:
        log.warning("IFPX_WORKER_NAME %r is no worker name; reporting as host:pid", env)
    return f"{socket.gethostname()[:50]}:{os.getpid()}"


def _client() -> str:
    try:
        from importlib.metadata import version

        return f"ifpx-py/{version('ifpx')}"
    except Exception:  # an uninstalled tree: the name alone says enough
        return "ifpx-py"


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


class Subscriber:
    """One worker's view of the bridge: a replica, events in order, repairs done for you."""

    def __init__(
        self,
        events: str = DEFAULT_EVENTS,
        control: str = DEFAULT_CONTROL,
        kinds: set[str] | list[str] | None = None,
        ports: set[int] | list[int] | None = None,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        heartbeat_timeout: float = 3.5,
        request_timeout: float = 5.0,
        rcvhwm: int = 100_000,
        curve: CurveClient | None = None,
        name: str | None = None,
        report_interval: float | None = 1.0,
        routes: RouteForm = "flat",
    ) -> None:
        """Connect (nothing is read until :meth:`sync` or :meth:`poll`).

        ``name`` is how this worker appears in ``ifpx ctl workers`` and what
        ``ifpx ctl wait --worker`` takes (default :func:`default_name`); every
        ``report_interval`` seconds, and when it goes idle after a burst, the
        subscriber tells the bridge what it has applied (None: never). A name or
        interval the protocol cannot carry is a ValueError here, not later.

        ``routes``: the form routes arrive in, ``flat`` (``route_add`` with next hops)
        or ``group`` (``nhgroup_set`` and ``groute_add`` by group id: a next hop that
        dies is one event whatever the number of routes through it; needs a bridge of
        protocol minor 3). The replica answers lookups the same either way.
        """
        self.events_endpoint = events
        self.control_endpoint = control
        self.heartbeat_timeout = heartbeat_timeout
        self.kinds = set(kinds) if kinds else None
        self.ports = set(ports) if ports else None
        if routes not in FORM_TOPIC:
            raise ValueError(f"routes {routes!r}: 'flat' or 'group'")
        self.topics = topics_for_kinds(self.kinds, routes)
        self.curve = curve
        self.name = name or default_name()
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"worker name {self.name!r}: 1 to 64 printable characters, no spaces")
        if report_interval is not None and not 0.05 <= report_interval <= 60:
            raise ValueError(f"report_interval {report_interval}: 0.05 to 60 seconds, or None")
        identity = None
        if report_interval is not None:
            identity = Identity(
                name=self.name,
                instance=secrets.randbits(63) or 1,
                host=socket.gethostname()[:64],
                pid=os.getpid(),
                client=_client(),
                interval=report_interval,
            )
        self._machine = SyncMachine(
            self.topics,
            self.kinds,
            self.ports,
            heartbeat_timeout=heartbeat_timeout,
            request_timeout=request_timeout,
            now=time.monotonic(),
            identity=identity,
        )
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
        self._closed = False
        self._stopping = False

    @property
    def state(self) -> Replica:
        """The replica: what the events delivered so far (and any snapshot) describe."""
        return self._machine.state

    @property
    def stats(self) -> SubscriberStats:
        """Counters of what happened so far."""
        return self._machine.stats

    @property
    def epoch(self) -> int | None:
        """The bridge epoch this subscriber follows (None before the first snapshot)."""
        return self._machine.epoch

    @property
    def seq(self) -> int:
        """The last sequence number applied."""
        return self._machine.seq

    @property
    def applied(self) -> tuple[int, int]:
        """(epoch, seq) of the last events the application is done with (what it reports).

        Events a :meth:`poll` returned count as applied when the next poll is made.
        """
        return self._machine.applied

    @property
    def synced(self) -> bool:
        """True once the first snapshot is applied."""
        return self._machine.synced

    # ---- public API -------------------------------------------------------------

    def sync(self, timeout: float = 5.0) -> None:
        """Subscribe, take a snapshot, apply it; return once consistent (TimeoutError if not)."""
        deadline = time.monotonic() + timeout
        self._act(self._machine.start(time.monotonic()))
        while not self.synced:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                why = self._machine.refusal
                missing = missing_socket(self.control_endpoint) or missing_socket(
                    self.events_endpoint
                )
                raise TimeoutError(
                    f"no snapshot from {self.control_endpoint} within {timeout}s"
                    + (f": the bridge refuses it ({why})" if why else "")
                    + (f": {missing}" if missing else "")
                )
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
        machine = self._machine
        # Coming back for more: whatever the last poll returned has been applied.
        machine.applied_all_taken()
        self._service_control()
        while len(out) < max_events:
            ready = machine.take(max_events - len(out))
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
        self._act(machine.tick(time.monotonic()))
        return out

    def run(self, callbacks: Callbacks, duration: float | None = None) -> None:
        """Call ``callbacks.<kind>(event)`` for every event until :meth:`stop` (or
        ``duration``, or Ctrl-C: the loop of a program run from a terminal ends as it
        would end by :meth:`stop`, without a traceback)."""
        end = None if duration is None else time.monotonic() + duration
        self._stopping = False
        try:
            while not self._stopping and not self._closed:
                if end is not None and time.monotonic() >= end:
                    return
                for e in self.poll(max_events=256, timeout=0.1):
                    self.dispatch(callbacks, e)
        except KeyboardInterrupt:
            log.info("interrupted: run() ends")

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
        """Close the sockets; a worker that reported says it is leaving."""
        self._closed = True
        self._sub.close()
        if self._ctl is not None:
            bye = self._machine.farewell()
            if bye is not None:
                # Not waited for: a short linger lets it out. Without it, the bridge
                # would count this worker stalled, and wait for it, while the process lives.
                self._ctl.setsockopt(zmq.LINGER, 200)
                with suppress(zmq.ZMQError):
                    self._ctl.send_multipart([b"", codec.encode_request(bye)], zmq.NOBLOCK)
            self._ctl.close()
            self._ctl = None

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def repairing(self) -> bool:
        """True while a journal or snapshot repair is under way."""
        return self._machine.repairing

    # ---- sockets --------------------------------------------------------------------

    def _wait(self, seconds: float) -> None:
        ms = int(max(seconds, 0.0) * 1000)
        if self._ctl is None or not self._machine.repairing:
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
        try:
            msg = codec.decode_message(frames)
        except codec.CodecError as exc:
            self._machine.on_bad_message()
            log.warning("dropping malformed message: %s", exc)
            return True
        self._act(self._machine.on_message(msg, time.monotonic()))
        return True

    def _read_available(self) -> None:
        while self._read_one():
            pass

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

    def _act(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, ResetControl):
                if self._ctl is not None:
                    self._ctl.close()
                    self._ctl = None
                continue
            if not isinstance(action, SendReport):
                log.info("%s repair: %s", action.command.cmd, action.reason)
            payload = codec.encode_request(action.command)
            self._socket().send_multipart([b"", payload])

    def _service_control(self) -> None:
        machine = self._machine
        if not machine.awaiting_reply:
            self._act(machine.tick(time.monotonic()))
            return
        sock = self._socket()
        while machine.awaiting_reply:
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
                self._act(machine.on_reply(reply, time.monotonic()))
        self._act(machine.tick(time.monotonic()))
