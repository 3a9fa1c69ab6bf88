"""The bridge process: wires the netlink listener, the core, the publisher and the controller.

One thread does everything: it polls the netlink listener beside the control
sockets, so a change travels from the kernel to the PUB socket without a thread
hand-over (each one cost tens of microseconds). While it dumps, publishes or
answers a command, the kernel holds new messages in the listener's receive
buffer (64 MiB by default, SO_RCVBUFFORCE); if that ever overflows, the bridge
resyncs from a dump and publishes the difference. What follows from what it reads, and
in which order, is :class:`~ifpx.bridge.cycle.Cycle`'s; this module does the I/O.
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from pathlib import Path
from types import FrameType

import zmq

from ifpx.schemas import codec
from ifpx.schemas import commands as c
from ifpx.schemas.events import CfgDone, EventBase
from ifpx.schemas.instance import InstanceLock, InstanceLocked
from ifpx.schemas.journal import Journal
from ifpx.schemas.serving import CommandError

from . import endpoints, fdlimit, gcpolicy, nlmsg, nlsock, statefile
from .bindings import BindingTable, Entry
from .config import Options
from .connections import CONTROL_CONNECTIONS, CONTROL_SHARE, cap_for
from .control import Controller
from .core import BridgeCore
from .cycle import Cycle
from .netns import Namespace
from .publisher import Publisher
from .sockguard import SocketGuard
from .stats import BridgeStats
from .workers import Peer

log = logging.getLogger("ifpx.bridge")

SUBSCRIBE_FRAME = 256
"""Longest message a subscriber may send the PUB socket (a subscription is a topic
name and a byte): libzmq keeps every prefix, so a larger one is refused unread."""
REPLIES_QUEUED = 4
"""Replies a control connection may leave unread (a REQ client has one outstanding):
a client pipelining requests without reading gets the rest dropped, so it cannot make
the bridge hold a snapshot per request."""
DRAIN = 512
"""Most netlink datagrams read per wake-up before they are processed and published."""
SUBSCRIPTIONS_PER_PASS = 1024
"""Most subscription messages read per wake-up (a subscriber sends one per topic)."""
_DUMP_RETRIES = 5
_CATCH_UP = 2.0
"""Most seconds ``wait_applied`` spends reading what the kernel queued before it answers."""


class StartupError(Exception):
    """The bridge cannot start (endpoint taken, netns missing, bad state file...)."""


class DumpFailed(Exception):
    """The kernel kept interrupting a dump: the mirror cannot be made whole."""


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


class Bridge:
    """One bridge: a netns's proxies, published."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.core = BridgeCore(all_routes=opts.all_routes)
        self.core.out.defer_flat = True  # see Cycle.publish
        # A loop through a whole table that publishes nothing until it is over (a
        # link's routes dropped, a binding's republished) takes seconds at a million
        # routes: heartbeats go on meanwhile, or every subscriber would take the bridge
        # for gone and ask for snapshots it cannot answer until the loop is over.
        self.core.fib.progress = lambda: self._beat(time.monotonic())
        self.state_path = Path(opts.state)
        self._stop = threading.Event()
        self.curve: endpoints.Curve | None = None
        self.overruns = 0
        self.dump_retries = 0
        self.resync_seconds = 0.0
        self.started = time.monotonic()
        self.cycle = Cycle(self.core, self._dump, self._publish_now, persist=self._keep_bindings)
        self._next_hb = float("inf")  # no heartbeat before the loop begins (it sets it)
        self._before_rename = statefile.crash_before_rename(opts.test_crash)
        self._rxbuf = nlsock.recv_buffer()

    # ---- lifecycle ------------------------------------------------------------

    def stop(self, *_args: object) -> None:
        """Ask the main loop to finish (signal-safe)."""
        self._stop.set()

    def run(self) -> None:
        """Start, serve until stopped, clean up."""
        opts = self.opts
        gcpolicy.tune()
        before, fds = fdlimit.raise_limit()
        self.max_connections = cap_for(opts.max_connections, fds, 2 if opts.control_ro else 1)
        log.info(
            "descriptors limit=%d (was %d) max_connections=%d",
            fds,
            before,
            self.max_connections,
        )
        try:
            self.ns = Namespace(opts.netns)
        except OSError as exc:
            raise StartupError(str(exc)) from None
        locks = InstanceLock()
        try:
            saved = self._claim(locks)
            ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
            self.guard = SocketGuard(ctx)
            try:
                self._serve(ctx, saved)
            finally:
                if self.curve is not None:
                    self.curve.stop()
                self.guard.close()
                ctx.destroy(linger=0)
        finally:
            locks.release()
            self.ns.close()

    def _claim(self, locks: InstanceLock) -> list[Entry]:
        """Lock the state file and the ipc endpoints, then take this bridge's epoch.

        The epoch is written to the state file before anything is published, so the
        next bridge's epoch is larger however the wall clock moves.
        """
        opts = self.opts
        path = self.state_path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            locks.take(path, "state file")
            for endpoint in (opts.events, opts.control, opts.control_ro):
                sock = endpoints.ipc_path(endpoint) if endpoint else None
                if sock is not None:
                    endpoints.prepare_dir(sock, opts.ipc_group)
                    locks.take(sock, "endpoint")
        except InstanceLocked as exc:
            raise StartupError(str(exc)) from None
        except OSError as exc:
            where = exc.filename or path
            raise StartupError(f"cannot lock {where}: {_why(exc)}") from None
        try:
            saved = statefile.load(path)
            self.epoch = statefile.next_epoch(time.time_ns(), saved.epoch)
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        table = BindingTable()
        for e in saved.bindings:
            table.add_gone(e.port_id, e.proxy, e.ifindex)
        self._save(table, "cannot start")
        return saved.bindings

    def _keep_bindings(self) -> None:
        # The kernel already made the change: a write that fails cannot refuse it, only
        # leave the file one identity behind (a restart then finds the proxy gone).
        try:
            self.persist(self.core.bindings)
        except OSError as exc:
            log.error("cannot write %s after a proxy moved: %s", self.state_path, _why(exc))

    def _save(self, table: BindingTable, doing: str) -> None:
        try:
            statefile.save(self.state_path, table, self.epoch, self._before_rename)
        except OSError as exc:
            raise StartupError(f"{doing}: cannot write {self.state_path}: {_why(exc)}") from None

    def _serve(self, ctx: zmq.Context[zmq.Socket[bytes]], saved: list[Entry]) -> None:
        opts = self.opts
        tcp = [ep for ep in (opts.events, opts.control, opts.control_ro) if ep and "tcp://" in ep]
        if tcp and not (opts.curve_secret or opts.curve_clients) and not opts.insecure:
            raise StartupError(
                f"{', '.join(tcp)}: tcp endpoints need CURVE (--curve-secret and "
                "--curve-clients, keys from 'ifpx keygen'), or --insecure"
            )
        self.curve = endpoints.start_curve(ctx, opts.curve_secret, opts.curve_clients)
        # An XPUB, to see which topics are taken: a route form is built only then.
        pub_sock = ctx.socket(zmq.XPUB)
        pub_sock.setsockopt(zmq.SNDHWM, opts.hwm)
        pub_sock.setsockopt(zmq.MAXMSGSIZE, SUBSCRIBE_FRAME)
        pub_sock.setsockopt(zmq.LINGER, 0)
        self._secure(pub_sock)
        self.guard.watch(pub_sock, self.max_connections, name="events (--max-connections)")
        endpoints.bind(pub_sock, opts.events, opts.ipc_group)
        controls = [(self._rep(ctx, opts.control), False, opts.control.startswith("ipc://"))]
        if opts.control_ro:
            ipc = opts.control_ro.startswith("ipc://")
            controls.append((self._rep(ctx, opts.control_ro), True, ipc))

        self.pub_sock = pub_sock
        self.pub = Publisher(pub_sock, self.epoch, Journal(opts.journal))
        # A resync under a full table publishes a million events: beats between them.
        self.pub.between = lambda: self._beat(time.monotonic())
        self.controller = Controller(self.core, self.pub, self, self.stats, netns=opts.netns)
        self.latest_stats = self.stats()
        if opts.metrics:
            try:
                from . import metrics
            except ImportError:
                raise StartupError(f"--metrics needs {_EXTRA} (prometheus-client)") from None

            try:
                metrics.serve(self, opts.metrics)
            except OSError as exc:
                raise StartupError(f"--metrics {opts.metrics}: {exc.strerror or exc}") from None

        # Subscribe first, then dump: nothing that happens during the dump is lost.
        with self.ns.inside():
            self.listener = self._open_listener()
            self.dumper = nlsock.Dumper()
        try:
            log.info("bridge starting epoch=%d netns=%s", self.epoch, opts.netns or "-")
            self._initial_sync(saved)
            log.info(
                "cfg_done links=%d routes=%d bindings=%d",
                len(self.core.links),
                len(self.core.fib.routes),
                len(self.core.bindings),
            )
            self._loop(controls)
        finally:
            self._stop.set()
            self.listener.close()
            self.dumper.close()
            log.info("bridge stopped")

    def _open_listener(self) -> socket.socket:
        listener = nlsock.open_listener(self.opts.rcvbuf)
        listener.setblocking(False)
        return listener

    def _read_netlink(self) -> tuple[list[bytes], bool]:
        """What the listener holds (up to a batch), and whether the kernel overran it."""
        batch: list[bytes] = []
        while len(batch) < DRAIN:
            try:
                batch.append(nlsock.recv(self.listener, self._rxbuf))
            except BlockingIOError:
                return batch, False
            except nlsock.Overrun:
                # What is still queued on this socket predates the hole: replaying it
                # after the resync dump would resurrect deleted state. A fresh socket,
                # subscribed before the resync dumps, gives a complete suffix.
                self.listener.close()
                with self.ns.inside():
                    self.listener = self._open_listener()
                return batch, True
        return batch, False

    # ---- netlink --------------------------------------------------------------

    def _dump(self, kind: str, family: int = 0, oif: int = 0) -> list[EventBase]:
        for attempt in range(_DUMP_RETRIES):
            try:
                if kind == "link":
                    recs = list(self.dumper.links())
                elif kind == "addr":
                    recs = list(self.dumper.addrs())
                elif kind == "route" and self.core.out.quiet and attempt == 0:
                    # At start the mirror holds no routes of this family yet.
                    self.core.fib.load_routes(self.dumper.routes(family, oif))
                    return []
                elif kind == "route":
                    # Whole before it is applied (an interrupted dump changes nothing),
                    # with heartbeats through both.
                    recs = list(self._beating(self.dumper.routes(family, oif)))
                    return self.core.reconcile(kind, self._beating(recs), family, oif)
                elif kind == "nexthop":
                    recs = list(self.dumper.nexthops())
                elif kind == "rule":
                    recs = list(self.dumper.rules(family))
                else:
                    recs = list(self.dumper.neighs())
            except nlsock.DumpInterrupted:
                self.dump_retries += 1
                log.info("dump of %s interrupted, retry %d", kind, attempt + 1)
                continue
            return self.core.reconcile(kind, recs, family, oif)
        raise DumpFailed(f"dump of {kind} interrupted {_DUMP_RETRIES} times")

    def _initial_sync(self, saved: list[Entry]) -> None:
        # Nobody can hold state of this epoch yet: every subscriber, old or new, takes a
        # snapshot when it sees a new epoch. So the initial dump only fills the mirror
        # (building a million route events for nobody was most of the start-up time),
        # and the epoch's stream begins with cfg_done.
        # Nor is there anything for the cyclic collector to find while the mirror fills
        # (plain tuples and strings): it only slowed the dump down.
        with gcpolicy.paused(), self.core.fib.quiet():
            self.cycle.dump_all(saved)
        self._save(self.core.bindings, "after the initial dump")
        self.controller.cfg_done = True
        self.pub.publish([CfgDone()])
        # The mirror is long-lived and acyclic: keep the collector from rescanning it.
        gcpolicy.freeze()

    def _resync(self, reason: str) -> None:
        t0 = time.monotonic()
        log.warning("resync reason=%s", reason)
        changes = self.cycle.resync(reason)
        self.resync_seconds += time.monotonic() - t0
        log.info("resync done changes=%d seconds=%.3f", changes, time.monotonic() - t0)

    def _publish_now(self, events: Sequence[EventBase]) -> None:
        self.pub.publish(events)

    def _process(self, datagrams: list[bytes], overrun: bool) -> None:
        self.cycle.records(chain.from_iterable(nlmsg.decode(data) for data in datagrams))
        if overrun:
            self.overruns += 1
            self._resync("netlink overrun")

    # ---- main loop ------------------------------------------------------------

    def _rep(self, ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str) -> zmq.Socket[bytes]:
        rep = ctx.socket(zmq.REP)
        rep.setsockopt(zmq.MAXMSGSIZE, codec.MAX_REQUEST_FRAME)
        rep.setsockopt(zmq.SNDHWM, REPLIES_QUEUED)
        rep.setsockopt(zmq.LINGER, 0)
        self._secure(rep)
        self.guard.watch(rep, CONTROL_CONNECTIONS, CONTROL_SHARE, f"control {endpoint}")
        endpoints.bind(rep, endpoint, self.opts.ipc_group)
        return rep

    def _secure(self, sock: zmq.Socket[bytes]) -> None:
        if self.curve is not None:
            self.curve.serve(sock)

    def _loop(self, controls: list[tuple[zmq.Socket[bytes], bool, bool]]) -> None:
        listening = self.listener.fileno()
        monitors = self.guard.monitors
        poller = zmq.Poller()
        for watched in (listening, self.pub_sock, *(rep for rep, _, _ in controls), *monitors):
            poller.register(watched, zmq.POLLIN)
        self._next_hb = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            self._beat(now)
            timeout = self._poll_timeout(now)
            try:
                ready = dict(poller.poll(int(timeout * 1000)))
            except zmq.ZMQError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            for mon in monitors:
                if mon in ready:
                    self.guard.drain(mon)
            if self.pub_sock in ready:
                self._subscriptions()
            self.controller.use_forms(time.monotonic())
            batch, overrun = self._read_netlink() if listening in ready else ([], False)
            self.controller.behind = len(batch) >= DRAIN  # more queued: fewer snapshots
            if listening in ready:
                self._process(batch, overrun)
            for rep, read_only, ipc in controls:
                if rep in ready:
                    self._answer(rep, read_only, ipc)
            self.cycle.settle()
            if self.listener.fileno() != listening:
                # An overrun (here, or in a command's catch_up) gave us a fresh socket.
                poller.unregister(listening)
                listening = self.listener.fileno()
                poller.register(listening, zmq.POLLIN)

    def _poll_timeout(self, now: float) -> float:
        """Seconds the loop may wait: until the next heartbeat or second look, 0.5 at most."""
        timeout = max(0.0, min(self._next_hb - now, 0.5))
        wake = self.cycle.wake_at()
        if wake is not None:
            timeout = max(0.0, min(timeout, wake - now))
        return timeout

    def _subscriptions(self) -> None:
        # A slice a pass: a connection flooding subscriptions must not keep the loop from
        # the kernel and the operator's commands (the poller says when more are queued).
        forms = self.controller.forms
        for _ in range(SUBSCRIPTIONS_PER_PASS):
            try:
                frame = self.pub_sock.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self.guard.subscription(frame)
            forms.subscription(frame.bytes)

    def _beat(self, now: float) -> None:
        """A heartbeat, if one is due."""
        if now < self._next_hb:
            return
        self.pub.heartbeat(self.opts.heartbeat)
        self._next_hb = now + self.opts.heartbeat
        self.controller.expire(now)
        # What the metrics endpoint's thread reads: one immutable snapshot a beat.
        self.latest_stats = self.stats()

    def _beating(self, records: Iterable[nlmsg.Record]) -> Iterator[nlmsg.Record]:
        """``records``, with the heartbeats that fall due meanwhile: a re-dump of a
        million routes (a link down under a full table) takes seconds, and
        subscribers that hear nothing for 3.5 intervals would take snapshots."""
        for i, rec in enumerate(records):
            if not i & 4095:
                self._beat(time.monotonic())
            yield rec

    def _answer(self, rep: zmq.Socket[bytes], read_only: bool, ipc: bool) -> None:
        try:
            parts = rep.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return
        # Over ipc, ZeroMQ passes on the kernel's credentials of the sender (SO_PEERCRED):
        # what lets a worker report for itself only.
        peer = Peer.from_address(_peer_address(parts[0])) if ipc else Peer()
        frames = [p.bytes for p in parts]
        # A snapshot reply is a million fresh tuples and nothing cyclic: collecting while
        # it is built only rescans them (it doubled the time of a late join).
        with gcpolicy.paused():
            reply, events = self.controller.handle_frames(frames, read_only, peer, time.monotonic())
        # Published before the reply: a client that reads on sees its change.
        self.cycle.publish(events)
        rep.send(reply)

    def stats(self) -> BridgeStats:
        """Every counter now (on the main thread: nothing changes while it is built)."""
        core, pub, commands = self.core, self.pub, self.controller.stats
        workers = self.controller.workers.infos(pub, time.monotonic())
        by_state: dict[str, int] = {}
        for w in workers:
            by_state[w.state] = by_state.get(w.state, 0) + 1
        return BridgeStats(
            epoch=pub.epoch,
            seq=pub.seq,
            uptime=time.monotonic() - self.started,
            bindings=len(core.bindings),
            netlink_records=core.counters.records,
            events=core.counters.events,
            compensations=core.counters.compensations,
            resyncs=core.counters.resyncs,
            resync_seconds=self.resync_seconds,
            overruns=self.overruns,
            dump_retries=self.dump_retries,
            messages=pub.messages,
            bytes=pub.bytes,
            journal_bytes=pub.journal.bytes,
            journal_capacity=self.opts.journal,
            routes_mirrored=len(core.fib.routes),
            groups_mirrored=core.fib.group_count,
            routes_hidden=core.fib.aliases.count,
            snapshots_built=self.controller.snapshots_built,
            snapshots_refused=self.controller.snapshots_refused,
            connections=self.guard.count,
            connections_refused=self.guard.refused,
            links_mirrored=len(core.links),
            commands_ok=commands.ok,
            commands_failed=commands.errors,
            events_by_kind=dict(pub.by_kind),
            commands_by_result=dict(commands.by_result),
            worker_reports=self.controller.workers.reports,
            worker_reports_refused=self.controller.workers.refused,
            workers_by_state=by_state,
            worker_lag={w.name: (w.lag_seq, w.lag_seconds) for w in workers},
        )

    # ---- effects (for the controller) ----------------------------------------

    def persist(self, table: BindingTable) -> None:
        """Write ``table`` durably as the bindings (OSError if that fails)."""
        statefile.save(self.state_path, table, self.epoch, self._before_rename)

    def refresh_links(self) -> list[EventBase]:
        """Reconcile links with a fresh dump; return what changed (for the caller to publish)."""
        return self._dump("link")

    def create_tap(self, name: str, mac: str | None, mtu: int | None) -> tuple[int, bool]:
        """Create a persistent multi_queue tap."""
        _need_taps()
        from . import taps

        try:
            with self.ns.inside():
                return taps.create(name, mac, mtu)
        except taps.TapError as exc:
            raise CommandError(c.ErrorCode.KERNEL_ERROR, str(exc)) from None

    def is_tap(self, name: str) -> bool:
        """True if ``name`` is a tun/tap interface in the bridge's netns."""
        _need_taps()
        from . import taps

        with self.ns.inside():
            return taps.is_tap(name)

    def made_by_ifpx(self, name: str) -> bool:
        """True if ``name`` is a tap this bridge (or an earlier one) made."""
        _need_taps()
        from . import taps

        with self.ns.inside():
            return taps.made_by_ifpx(name)

    def catch_up(self) -> bool:
        """Read and publish what the kernel has queued for the listener by now.

        False if :data:`_CATCH_UP` seconds of work did not empty the queue (a
        churn that outruns us): what was read is published all the same.
        """
        end = time.monotonic() + _CATCH_UP
        while True:
            batch, overrun = self._read_netlink()
            self._process(batch, overrun)
            if overrun or len(batch) < DRAIN:
                return True  # emptied, or a resync dumped the kernel's state whole
            if time.monotonic() > end:
                return False

    def process_start(self, pid: int) -> int | None:
        """When process ``pid`` started, in clock ticks since boot (/proc/PID/stat's
        22nd field), or None if it does not exist (a peer's pid, as SO_PEERCRED gave it)."""
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            return None
        # After the command's closing parenthesis (a command may hold spaces and ")").
        fields = stat[stat.rfind(b")") + 2 :].split()
        return int(fields[19]) if len(fields) > 19 else None

    def destroy_tap(self, name: str) -> None:
        """Remove a tap."""
        _need_taps()
        from . import taps

        try:
            with self.ns.inside():
                taps.destroy(name)
        except taps.TapError as exc:
            raise CommandError(c.ErrorCode.KERNEL_ERROR, str(exc)) from None


def _peer_address(frame: zmq.Frame) -> str | None:
    try:
        address = frame.get("Peer-Address")
    except zmq.ZMQError:
        return None  # a libzmq built without it: nobody is known
    return address if isinstance(address, str) else None


_EXTRA = "the bridge's extra: pip install 'ifpx[bridge]'"


def _need_taps() -> None:
    """Refuse a tap command cleanly where pyroute2 (the bridge extra's) is missing."""
    try:
        from . import taps  # noqa: F401  # pyroute2 is needed here alone
    except ImportError:
        raise CommandError(
            c.ErrorCode.NOT_SUPPORTED, f"making and removing taps needs {_EXTRA} (pyroute2)"
        ) from None


def run(opts: Options) -> int:
    """Run a bridge until SIGINT/SIGTERM; return the exit status."""
    bridge = Bridge(opts)

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        bridge.stop()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        bridge.run()
    except (StartupError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    except zmq.ZMQError as exc:
        log.error("socket error: %s", exc)
        return 2
    except OSError as exc:
        log.error("cannot run: %s", exc)
        return 2
    except DumpFailed as exc:
        log.error("%s; stopping (the subscribers resync when a bridge is back)", exc)
        return 1
    return 0
