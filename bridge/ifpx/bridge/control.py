"""Command handling: bytes in, exactly one reply and the events to publish out.

The controller owns no socket, publishes nothing and reads no clock. The daemon
hands it each request (with the time and what the transport says about the
sender), publishes the events it returns, then sends the reply;
changes to the world beyond the core (the state file, taps, a fresh link dump)
go through the :class:`Effects` it was given, and what it reports about the
stream and the counters comes from the :class:`Stream` and the stats function.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from ifpx.schemas import codec
from ifpx.schemas import commands as c
from ifpx.schemas.events import EVENT_TYPES, EventBase
from ifpx.schemas.journal import Journal, JournalGap
from ifpx.schemas.serving import CommandError, CommandStats, Packed, Server, hello
from ifpx.schemas.state import Binding

from .bindings import BindingTable, Entry
from .core import BridgeCore, LinkState
from .forms import RouteForms
from .stats import BridgeStats
from .workers import Peer, WorkerTable

log = logging.getLogger(__name__)

SERVER = "ifpx-bridge/0.1"
CAPABILITIES = [
    *("journal", "snapshot", "batch", "topics", "create_proxy", "route_types", "hop_flags"),
    *("nexthop_objects", "policy_rules", "workers", "nhgroups"),
]
"""What ``hello`` says this bridge offers."""
SNAPSHOT_SHARE = 3.0
"""After a snapshot build, the next waits this many times as long (the bridge spends
at most a quarter of its time building snapshots, however many are asked for under
churn, however quick each one is); one asked for sooner is answered ``busy`` (the
subscriber asks again later)."""
SNAPSHOT_SHARE_BEHIND = 9.0
"""The same while the kernel's messages queue up (the daemon read a full batch): a
tenth of the time, so that a flood of snapshots does not hold back what the workers
are waiting for; never nothing, so that a worker starting under churn still gets one."""
SNAPSHOT_BURST = 0.1
"""Seconds of that wait the builds may run ahead by: workers starting together get
their quick snapshots at once, a flood of them gets its share."""
SNAPSHOT_REUSE = 5.0
"""Seconds a packed snapshot is kept to answer the next ``snapshot`` asking for the same
state (workers starting together; a million routes are 20 MB packed)."""


@dataclass(frozen=True, slots=True)
class _Kept:
    """A snapshot packed: what state it was of (see ``Controller._state_key``), when, and
    its bytes."""

    key: tuple[int, ...]
    at: float
    data: bytes


READ_ONLY = frozenset(
    {
        "hello",
        "list_bindings",
        "proxy_of_port",
        "ports_of_proxy",
        "proxy_info",
        "events_available",
        "snapshot",
        "status",
        "replay",
        "list_workers",
        "wait_applied",
        # A report changes nothing anyone forwards by; workers may have this endpoint only.
        "report",
    }
)
"""Commands a read-only control endpoint (``--control-ro``) answers."""


class Effects(Protocol):
    """What commands may do to the world beyond the core."""

    def persist(self, table: BindingTable) -> None:
        """Write ``table`` durably as the bindings; OSError if it could not be written."""

    def refresh_links(self) -> list[EventBase]:
        """Bring the mirror's links up to date with the kernel now; return what changed."""

    def create_tap(self, name: str, mac: str | None, mtu: int | None) -> tuple[int, bool]:
        """Create a tap (an existing one is left as it is); return (ifindex, created)."""

    def made_by_ifpx(self, name: str) -> bool:
        """True if ``name`` is a tap ``create_tap`` made (it carries ifpx's alias)."""

    def is_tap(self, name: str) -> bool:
        """True if ``name`` is a tun/tap interface (the only kind destroy_proxy removes)."""

    def destroy_tap(self, name: str) -> None:
        """Remove a tap."""

    def process_start(self, pid: int) -> int | None:
        """When process ``pid`` (of the bridge's pid namespace) started (a number that
        tells it from a later process given the same pid), or None if there is none."""

    def catch_up(self) -> bool:
        """Publish what the kernel has told the bridge by now; False if it could not finish."""


class Stream(Protocol):
    """The published stream as commands see it (the publisher is one)."""

    epoch: int
    seq: int
    journal: Journal

    def topic_seqs(self) -> dict[str, int]:
        """The latest ``tseq`` of every topic."""

    def last_seq_of(self, topics: Iterable[str]) -> int:
        """The ``seq`` of the latest message on any of ``topics``."""

    def published_at(self, seq: int) -> float | None:
        """About when ``seq`` was published (the daemon's monotonic clock)."""


def _binding(e: Entry) -> Binding:
    return Binding(
        port_id=e.port_id, proxy=e.proxy, ifindex=e.ifindex, state="gone" if e.gone else "active"
    )


Handler = Callable[["Controller", Any], c.Result | Packed]
"""A command's handler: the controller and the command (of that handler's own type)."""


class Controller:
    """Turns requests into replies, core changes and the events to publish."""

    def __init__(
        self,
        core: BridgeCore,
        stream: Stream,
        effects: Effects,
        stats: Callable[[], BridgeStats],
        netns: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.core = core
        self.clock = clock
        """What snapshot builds are timed by (a test passes its own)."""
        self.stream = stream
        self.effects = effects
        self.stats_now = stats
        self.netns = netns
        self.cfg_done = False
        self.workers = WorkerTable(effects.process_start)
        self.forms = RouteForms()
        """Which route forms someone takes: what the daemon builds events in."""
        self._events: list[EventBase] = []
        self._peer = Peer()
        self._now = 0.0
        self._snapshot: _Kept | None = None
        self.snapshots_built = 0
        """Snapshots built and packed; the rest of the ``snapshot`` requests reused one."""
        self.snapshots_refused = 0
        """``snapshot`` requests answered ``busy`` (see :data:`SNAPSHOT_SHARE`)."""
        self._next_build = 0.0
        self._last_build = 0.0
        self.behind = False
        """Set by the daemon: the kernel's messages are queuing up (see
        :data:`SNAPSHOT_SHARE_BEHIND`)."""
        self.server = Server(
            {name: partial(handler, self) for name, handler in HANDLERS.items()}, READ_ONLY
        )

    def expire(self, now: float) -> None:
        """Let go of a packed snapshot kept longer than :data:`SNAPSHOT_REUSE`."""
        if self._snapshot is not None and now - self._snapshot.at > SNAPSHOT_REUSE:
            self._snapshot = None

    def _state_key(self) -> tuple[int, ...]:
        # What a snapshot shows changes only with a record applied (every kernel change,
        # published or not: with no route subscriber, routes change without a message),
        # a binding, the stream, or cfg_done.
        return (
            self.stream.epoch,
            self.stream.seq,
            self.core.counters.records,
            self.core.bindings.generation,
            self.cfg_done,
        )

    def use_forms(self, now: float) -> None:
        """Build events in the route forms someone takes now."""
        self.core.out.flat = self.forms.wanted("route", now)
        self.core.out.grouped = self.forms.wanted("fib", now)

    def handle_frames(
        self,
        frames: list[bytes],
        read_only: bool = False,
        peer: Peer | None = None,
        now: float = 0.0,
    ) -> tuple[bytes, list[EventBase]]:
        """Answer one request as it came off the socket (a request is a single frame).

        ``peer`` is what the transport says about the sender, ``now`` the daemon's
        monotonic clock. Returns the reply and the events to publish before it is
        sent (a command that fails half-way may still have changed something).
        Never raises.
        """
        self._peer = peer or Peer()
        self._now = now
        reply = self.server.answer(frames, read_only)
        events, self._events = self._events, []
        return reply, events

    @property
    def stats(self) -> CommandStats:
        """Commands answered, by outcome."""
        return self.server.stats

    def _publish(self, events: list[EventBase]) -> None:
        self._events.extend(events)

    def _refresh_links(self) -> None:
        self._publish(self.effects.refresh_links())

    def _link(self, proxy: str | int) -> LinkState:
        link = self.core.resolve(proxy)
        if link is None:
            # A proxy made a moment ago may not have reached us through the listener yet.
            self._refresh_links()
            link = self.core.resolve(proxy)
        if link is None:
            raise CommandError(c.ErrorCode.NO_SUCH_PROXY, f"no interface {proxy!r}")
        return link

    def _cmd_hello(self, cmd: c.Hello) -> c.Result:
        return hello(cmd, SERVER, self.stream.epoch, CAPABILITIES)

    def _write_ahead(self, change: Callable[[BindingTable], bool]) -> bool:
        """Make ``change`` on a copy of the bindings and write that copy durably.

        Only then may the caller make the change in memory and acknowledge it: a
        write that fails leaves the bindings as they were, on disk and in memory.
        ``change`` returns whether it changed anything; so does this.
        """
        preview = self.core.bindings.copy()
        if not change(preview):
            return False
        try:
            self.effects.persist(preview)
        except OSError as exc:
            why = f"nothing changed: cannot write the state file: {exc.strerror or exc}"
            raise CommandError(c.ErrorCode.STATE_NOT_SAVED, why) from None
        return True

    def _cmd_bind(self, cmd: c.Bind) -> c.Result:
        link = self._link(cmd.proxy)

        def bind(table: BindingTable) -> bool:
            entry, old = table.bind(cmd.port_id, link.name, link.ifindex)
            return old is not entry

        previous = self.core.bindings.get(cmd.port_id)
        other = previous if previous is not None and previous.ifindex != link.ifindex else None
        if cmd.exclusive and other is not None and not other.gone:
            raise CommandError(
                c.ErrorCode.ALREADY_EXISTS,
                f"port {cmd.port_id} is bound to {other.proxy}: unbind it first,"
                " or bind without exclusive to move it",
            )
        moved_from = previous.proxy if previous is not None else None
        self._write_ahead(bind)
        entry, changed, events = self.core.bind(cmd.port_id, link)
        self._publish(events)
        if changed:
            log.info(
                "bind port=%d proxy=%s ifindex=%d%s",
                cmd.port_id,
                link.name,
                link.ifindex,
                f" moved_from={moved_from}" if moved_from else "",
            )
        moved = moved_from if changed and moved_from != link.name else None
        return c.BindResult(binding=_binding(entry), changed=changed, moved_from=moved)

    def _cmd_unbind(self, cmd: c.Unbind) -> c.Result:
        proxy = None if cmd.proxy is None else self._link(cmd.proxy)
        ifindex = None if proxy is None else proxy.ifindex
        self._write_ahead(lambda table: table.unbind(cmd.port_id, ifindex) is not None)
        removed, events = self.core.unbind(cmd.port_id, proxy)
        self._publish(events)
        for e in removed:
            log.info("unbind port=%d proxy=%s", e.port_id, e.proxy)
        return c.UnbindResult(removed=[_binding(e) for e in removed])

    def _cmd_create_proxy(self, cmd: c.CreateProxy) -> c.Result:
        self._refresh_links()  # what the kernel holds now, not what the listener got to
        existing = self.core.link_by_name(cmd.name)
        if existing is not None:
            if not self.effects.is_tap(cmd.name):
                raise CommandError(
                    c.ErrorCode.ALREADY_EXISTS, f"{cmd.name} exists and is not a tap"
                )
            # An existing tap is reused as it is: asking for other settings is refused
            # rather than applied behind the back of whoever made it.
            differs = []
            if cmd.mtu is not None and cmd.mtu != existing.mtu:
                differs.append(f"mtu {existing.mtu} (asked {cmd.mtu})")
            if cmd.mac is not None and cmd.mac != existing.mac:
                differs.append(f"mac {existing.mac} (asked {cmd.mac})")
            if differs:
                raise CommandError(
                    c.ErrorCode.ALREADY_EXISTS,
                    f"{cmd.name} exists with {' and '.join(differs)}; nothing changed"
                    " (ip link set changes it)",
                )
        ifindex, created = self.effects.create_tap(cmd.name, cmd.mac, cmd.mtu)
        log.info("create_proxy name=%s ifindex=%d created=%s", cmd.name, ifindex, created)
        self._refresh_links()
        return c.CreateProxyResult(name=cmd.name, ifindex=ifindex, created=created)

    def _cmd_destroy_proxy(self, cmd: c.DestroyProxy) -> c.Result:
        link = self._link(cmd.name)
        if not self.effects.is_tap(cmd.name):
            # Checked before anything changes: a refused command leaves the bindings alone.
            raise CommandError(
                c.ErrorCode.INVALID_VALUE, f"{cmd.name} is not a tap; not removing it"
            )
        if not cmd.force and not self.effects.made_by_ifpx(cmd.name):
            raise CommandError(
                c.ErrorCode.INVALID_VALUE,
                f"{cmd.name} was not made by ifpx (net_tap's, or made by hand); not removing"
                " it without force",
            )
        ports = list(self.core.bindings.ports(link.ifindex))

        def unbind_all(table: BindingTable) -> bool:
            return any([table.unbind(port) is not None for port in ports])

        self._write_ahead(unbind_all)
        removed: list[Entry] = []
        events: list[EventBase] = []
        for port in ports:
            gone, evs = self.core.unbind(port)
            removed.extend(gone)
            events.extend(evs)
        self._publish(events)
        self.effects.destroy_tap(cmd.name)
        log.info("destroy_proxy name=%s unbound=%s", cmd.name, ",".join(str(p) for p in ports))
        self._refresh_links()
        return c.DestroyProxyResult(name=cmd.name, removed_bindings=[_binding(e) for e in removed])

    def _cmd_list_bindings(self, _cmd: c.ListBindings) -> c.Result:
        return c.ListBindingsResult(bindings=[_binding(e) for e in self.core.bindings.entries()])

    def _cmd_proxy_of_port(self, cmd: c.ProxyOfPort) -> c.Result:
        entry = self.core.bindings.get(cmd.port_id)
        if entry is None:
            raise CommandError(c.ErrorCode.NOT_BOUND, f"port {cmd.port_id} is not bound")
        return c.ProxyOfPortResult(binding=_binding(entry))

    def _cmd_ports_of_proxy(self, cmd: c.PortsOfProxy) -> c.Result:
        link = self.core.resolve(cmd.proxy)
        if link is None:
            # A gone proxy is still known by name through its bindings.
            ports = [e.port_id for e in self.core.bindings.entries() if e.proxy == cmd.proxy]
            if not ports:
                raise CommandError(c.ErrorCode.NO_SUCH_PROXY, f"no interface {cmd.proxy!r}")
            return c.PortsOfProxyResult(proxy=str(cmd.proxy), ifindex=None, port_ids=ports)
        return c.PortsOfProxyResult(
            proxy=link.name, ifindex=link.ifindex, port_ids=self.core.bindings.ports(link.ifindex)
        )

    def _cmd_proxy_info(self, cmd: c.ProxyInfo) -> c.Result:
        link = self._link(cmd.proxy)
        addrs = sorted(self.core.addrs.get(link.ifindex, ()))
        return c.ProxyInfoResult(
            name=link.name,
            ifindex=link.ifindex,
            mac=link.mac,
            mtu=link.mtu,
            up=link.up,
            carrier=link.carrier,
            addrs=[f"{ip}/{plen}" for _f, ip, plen in addrs],
            port_ids=self.core.bindings.ports(link.ifindex),
        )

    def _cmd_events_available(self, _cmd: c.EventsAvailable) -> c.Result:
        return c.EventsAvailableResult(kinds=list(EVENT_TYPES))

    def _cmd_snapshot(self, cmd: c.Snapshot) -> Packed:
        self.forms.lease(cmd.topics, self._now)
        self.use_forms(self._now)
        # Workers that start together ask for the same state: at a million routes each
        # build and pack is most of a second the bridge spends silent, so it is done once.
        key = self._state_key()
        kept = self._snapshot
        if kept is not None and kept.key == key and self._now - kept.at <= SNAPSHOT_REUSE:
            return Packed(kept.data)
        start = self.clock()
        wait = self._next_build - SNAPSHOT_BURST - start
        if wait > 0:
            self.snapshots_refused += 1
            raise CommandError(
                c.ErrorCode.BUSY,
                f"the last snapshot took {self._last_build:.2f} s to build; "
                f"ask again in {wait:.2f} s",
            )
        self._snapshot = None  # not two full tables in memory at once
        result = c.SnapshotResult(
            epoch=self.stream.epoch,
            seq=self.stream.seq,
            topic_seqs=self.stream.topic_seqs(),
            cfg_done=self.cfg_done,
            state=self.core.snapshot_wire(),
        )
        data = codec.pack_snapshot(result)
        end = self.clock()
        self._last_build = end - start
        # Quick ones too: under churn every request is a new state, and hundreds of
        # quick builds a second starve the netlink socket as surely as slow ones.
        share = SNAPSHOT_SHARE_BEHIND if self.behind else SNAPSHOT_SHARE
        self._next_build = max(self._next_build, start) + (1 + share) * self._last_build
        self.snapshots_built += 1
        self._snapshot = _Kept(key, self._now, data)
        return Packed(data)

    def _cmd_status(self, _cmd: c.Status) -> c.Result:
        stats = self.stats_now()
        return c.StatusResult(
            epoch=stats.epoch,
            seq=stats.seq,
            uptime=stats.uptime,
            netns=self.netns,
            bindings=stats.bindings,
            counters=stats.counters(),
        )

    def _cmd_replay(self, cmd: c.Replay) -> c.Result:
        stream = self.stream
        if cmd.epoch != stream.epoch:
            raise CommandError(
                c.ErrorCode.JOURNAL_GAP, f"epoch {cmd.epoch} is over; this is {stream.epoch}"
            )
        topics = None if cmd.topics is None else set(cmd.topics)
        try:
            msgs = stream.journal.since(cmd.from_seq, stream.seq, topics)
        except JournalGap as exc:
            raise CommandError(c.ErrorCode.JOURNAL_GAP, str(exc)) from None
        return c.ReplayResult(epoch=self.stream.epoch, messages=msgs)

    def _cmd_report(self, cmd: c.Report) -> c.Result:
        self.workers.report(cmd, self._peer, self._now, self.stream)
        return c.ReportResult(epoch=self.stream.epoch, seq=self.stream.seq)

    def _cmd_list_workers(self, _cmd: c.ListWorkers) -> c.Result:
        stream = self.stream
        workers = self.workers.infos(stream, self._now)
        return c.ListWorkersResult(epoch=stream.epoch, seq=stream.seq, workers=workers)

    def _cmd_wait_applied(self, cmd: c.WaitApplied) -> c.Result:
        stream = self.stream
        if cmd.epoch is not None and cmd.epoch != stream.epoch:
            raise CommandError(
                c.ErrorCode.INVALID_VALUE,
                f"epoch {cmd.epoch} is over (the bridge restarted); this is {stream.epoch}",
            )
        if cmd.seq is None and not self.effects.catch_up():
            log.warning("wait_applied: the kernel's changes outran the catch-up; waiting for less")
        seq = stream.seq if cmd.seq is None else cmd.seq
        if seq > stream.seq:
            raise CommandError(
                c.ErrorCode.INVALID_VALUE, f"seq {seq} is not published yet (now {stream.seq})"
            )
        return self.workers.wait(seq, cmd.workers, stream, self._now)


HANDLERS: dict[str, Handler] = {
    "hello": Controller._cmd_hello,
    "bind": Controller._cmd_bind,
    "unbind": Controller._cmd_unbind,
    "create_proxy": Controller._cmd_create_proxy,
    "destroy_proxy": Controller._cmd_destroy_proxy,
    "list_bindings": Controller._cmd_list_bindings,
    "proxy_of_port": Controller._cmd_proxy_of_port,
    "ports_of_proxy": Controller._cmd_ports_of_proxy,
    "proxy_info": Controller._cmd_proxy_info,
    "events_available": Controller._cmd_events_available,
    "snapshot": Controller._cmd_snapshot,
    "status": Controller._cmd_status,
    "replay": Controller._cmd_replay,
    "report": Controller._cmd_report,
    "list_workers": Controller._cmd_list_workers,
    "wait_applied": Controller._cmd_wait_applied,
}
"""The handler of every command (``tests/test_control.py`` holds it to the command list)."""
