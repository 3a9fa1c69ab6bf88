"""Command handling: bytes in, exactly one reply out, whatever the bytes were.

The controller owns no socket. The daemon hands it each request and sends back
what it returns; side effects go through the :class:`Effects` it was given.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ifpx.schemas import codec
from ifpx.schemas import commands as c
from ifpx.schemas.events import EVENT_TYPES, EventBase
from ifpx.schemas.state import Binding
from ifpx.schemas.version import negotiate

from .bindings import BindingTable, Entry
from .core import BridgeCore, LinkState
from .journal import JournalGap
from .publisher import Publisher

log = logging.getLogger(__name__)

SERVER = "ifpx-bridge/0.1"

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
    }
)
"""Commands a read-only control endpoint (``--control-ro``) answers."""


_LAST_RESORT = codec.encode_reply(
    codec.error_reply(c.ErrorCode.INTERNAL, "the bridge could not answer this request")
)


class CommandError(Exception):
    """A command that cannot be carried out, with its wire error code."""

    def __init__(self, code: c.ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class Effects(Protocol):
    """What commands may do to the world beyond the core."""

    def persist(self, table: BindingTable) -> None:
        """Write ``table`` durably as the bindings; OSError if it could not be written."""

    def refresh_links(self) -> None:
        """Bring the mirror's links up to date with the kernel right now."""

    def create_tap(self, name: str, mac: str | None, mtu: int | None) -> tuple[int, bool]:
        """Create (or reuse) a tap; return (ifindex, created)."""

    def is_tap(self, name: str) -> bool:
        """True if ``name`` is a tun/tap interface (the only kind destroy_proxy removes)."""

    def destroy_tap(self, name: str) -> None:
        """Remove a tap."""


@dataclass
class ControlStats:
    """Commands answered, by outcome, and by (command, result code)."""

    ok: int = 0
    errors: int = 0
    by_result: dict[tuple[str, str], int] = field(default_factory=dict)

    def count(self, cmd: str, result: str) -> None:
        """One more answer to ``cmd`` with ``result`` ("ok" or an error code)."""
        key = (cmd, result)
        self.by_result[key] = self.by_result.get(key, 0) + 1


def _binding(e: Entry) -> Binding:
    return Binding(
        port_id=e.port_id, proxy=e.proxy, ifindex=e.ifindex, state="gone" if e.gone else "active"
    )


class Controller:
    """Turns requests into replies, core changes and published events."""

    def __init__(
        self,
        core: BridgeCore,
        publisher: Publisher,
        effects: Effects,
        status_extra: Callable[[], dict[str, int]],
        netns: str | None = None,
    ) -> None:
        self.core = core
        self.pub = publisher
        self.effects = effects
        self.status_extra = status_extra
        self.netns = netns
        self.started = time.monotonic()
        self.cfg_done = False
        self.stats = ControlStats()

    def handle_frames(self, frames: list[bytes], read_only: bool = False) -> bytes:
        """Answer one request as it came off the socket (a request is a single frame).

        Never raises: a REP socket that does not send after a receive is wedged,
        and an exception here would end the bridge.
        """
        try:
            if len(frames) != 1:
                self.stats.errors += 1
                message = f"a request is one frame, got {len(frames)}"
                return codec.encode_reply(codec.error_reply(c.ErrorCode.BAD_REQUEST, message))
            return self.handle(frames[0], read_only)
        except Exception:
            log.exception("no reply could be built for a request")
            self.stats.errors += 1
            return _LAST_RESORT

    def handle(self, data: bytes, read_only: bool = False) -> bytes:
        """Answer one request. Never raises. ``read_only`` refuses commands that change things."""
        rid = 0
        name = "invalid"
        try:
            cmd = codec.decode_request(data)
            rid, name = cmd.id, cmd.cmd
            if read_only and cmd.cmd not in READ_ONLY:
                raise CommandError(
                    c.ErrorCode.PERMISSION_DENIED, f"{cmd.cmd} is not allowed on this endpoint"
                )
            result = self._dispatch(cmd)
            self.stats.ok += 1
            self.stats.count(name, "ok")
            return codec.encode_reply(c.OkReply(id=rid, result=result))
        except codec.CodecError as exc:
            reply = codec.error_reply(exc.code, str(exc), exc.request_id)
        except CommandError as exc:
            reply = codec.error_reply(exc.code, str(exc), rid)
        except Exception as exc:  # a bug must cost one request, not the bridge
            log.exception("command failed")
            reply = codec.error_reply(c.ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}", rid)
        self.stats.errors += 1
        self.stats.count(name, reply.error.code.value)
        return codec.encode_reply(reply)

    def _publish(self, events: list[EventBase]) -> None:
        if events:
            self.pub.publish(events)

    def _link(self, proxy: str | int) -> LinkState:
        link = self.core.resolve(proxy)
        if link is None:
            # A proxy made a moment ago may not have reached us through the listener yet.
            self.effects.refresh_links()
            link = self.core.resolve(proxy)
        if link is None:
            raise CommandError(c.ErrorCode.NO_SUCH_PROXY, f"no interface {proxy!r}")
        return link

    def _dispatch(self, cmd: c.Command) -> c.Result:
        handler: Callable[[c.Command], c.Result] = getattr(self, "_cmd_" + cmd.cmd)
        return handler(cmd)

    def _cmd_hello(self, cmd: c.Hello) -> c.Result:
        version = negotiate(cmd.versions)
        if version is None:
            raise CommandError(
                c.ErrorCode.UNSUPPORTED_VERSION, f"no common version in {cmd.versions}"
            )
        return c.HelloResult(
            version=version,
            epoch=self.pub.epoch,
            server=SERVER,
            capabilities=["journal", "snapshot", "batch", "topics", "create_proxy"],
        )

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

        self._write_ahead(bind)
        entry, changed, events = self.core.bind(cmd.port_id, link)
        self._publish(events)
        return c.BindResult(binding=_binding(entry), changed=changed)

    def _cmd_unbind(self, cmd: c.Unbind) -> c.Result:
        proxy = None if cmd.proxy is None else self._link(cmd.proxy)
        ifindex = None if proxy is None else proxy.ifindex
        self._write_ahead(lambda table: table.unbind(cmd.port_id, ifindex) is not None)
        removed, events = self.core.unbind(cmd.port_id, proxy)
        self._publish(events)
        return c.UnbindResult(removed=[_binding(e) for e in removed])

    def _cmd_create_proxy(self, cmd: c.CreateProxy) -> c.Result:
        ifindex, created = self.effects.create_tap(cmd.name, cmd.mac, cmd.mtu)
        self.effects.refresh_links()
        return c.CreateProxyResult(name=cmd.name, ifindex=ifindex, created=created)

    def _cmd_destroy_proxy(self, cmd: c.DestroyProxy) -> c.Result:
        link = self._link(cmd.name)
        if not self.effects.is_tap(cmd.name):
            # Checked before anything changes: a refused command leaves the bindings alone.
            raise CommandError(
                c.ErrorCode.INVALID_VALUE, f"{cmd.name} is not a tap; not removing it"
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
        self.effects.refresh_links()
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

    def _cmd_snapshot(self, _cmd: c.Snapshot) -> c.Result:
        return c.SnapshotResult(
            epoch=self.pub.epoch,
            seq=self.pub.seq,
            topic_seqs=self.pub.topic_seqs(),
            cfg_done=self.cfg_done,
            state=self.core.snapshot_wire(),
        )

    def _cmd_status(self, _cmd: c.Status) -> c.Result:
        core = self.core
        counters = {
            "netlink_records": core.counters.records,
            "events": core.counters.events,
            "compensations": core.counters.compensations,
            "resyncs": core.counters.resyncs,
            "messages": self.pub.messages,
            "bytes": self.pub.bytes,
            "commands_ok": self.stats.ok,
            "commands_failed": self.stats.errors,
            "routes_mirrored": len(core.routes),
            "links_mirrored": len(core.links),
        }
        counters.update(self.status_extra())
        return c.StatusResult(
            epoch=self.pub.epoch,
            seq=self.pub.seq,
            uptime=time.monotonic() - self.started,
            netns=self.netns,
            bindings=len(core.bindings),
            counters=counters,
        )

    def _cmd_replay(self, cmd: c.Replay) -> c.Result:
        if cmd.epoch != self.pub.epoch:
            raise CommandError(
                c.ErrorCode.JOURNAL_GAP, f"epoch {cmd.epoch} is over; this is {self.pub.epoch}"
            )
        topics = None if cmd.topics is None else set(cmd.topics)
        try:
            msgs = self.pub.journal.since(cmd.from_seq, self.pub.seq, topics)
        except JournalGap as exc:
            raise CommandError(c.ErrorCode.JOURNAL_GAP, str(exc)) from None
        return c.ReplayResult(epoch=self.pub.epoch, messages=msgs)
