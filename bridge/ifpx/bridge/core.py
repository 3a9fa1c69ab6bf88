"""The bridge's pure core: kernel mirror + bindings -> events and snapshots.

Every netlink record goes through :meth:`BridgeCore.apply`, which updates the
mirror and returns the events for what really changed, as seen through the
bindings. Nothing here does I/O: the daemon feeds records and commands in and
carries events out. Where the kernel changes state without telling (IPv4
routes removed on link down or address removal), the core asks the daemon for
a targeted re-dump through :attr:`BridgeCore.redumps` and reconciles it with
:meth:`BridgeCore.reconcile`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ifpx.schemas import events as ev
from ifpx.schemas.state import (
    SnapshotState,
    State,
)

from . import nlmsg, siblings, snapshot
from .bindings import BindingTable, Entry
from .fastmodel import trusted
from .groups import IN_SNAPSHOT, NhView
from .policy import PolicyRules
from .redump import AF4, AF6, NEXTHOP_REDUMP, Counters, Redump
from .render import Build, Renderer, validated
from .routes import RouteMirror

__all__ = [
    "AF4",
    "AF6",
    "BridgeCore",
    "Counters",
    "LinkState",
    "Redump",
]


@dataclass(slots=True)
class LinkState:
    """What the mirror keeps of a link."""

    ifindex: int
    name: str
    mtu: int
    mac: str | None
    up: bool
    carrier: bool
    running: bool = False


_APPEND = nlmsg.NLM_F_APPEND


def _publishable_neigh(rec: nlmsg.Neigh) -> bool:
    # A NOARP entry of a unicast address is one an operator made (`ip neigh add ... nud
    # noarp`): a forwarder uses it. The kernel makes its own for multicast and broadcast
    # addresses, whose MACs a forwarder derives; `ip neigh show` hides those, so do we.
    if not rec.state:
        return False
    return not rec.state & nlmsg.NUD_NOARP or not _group_address(rec.family, rec.ip)


def _group_address(family: int, ip: str) -> bool:
    """A multicast or the limited broadcast address."""
    if family == AF4:
        return int(ip.split(".", 1)[0]) >= 224  # 224/4 multicast, 240/4 and 255.255.255.255
    return ip.lower().startswith("ff")


def _nud_name(state: int) -> str:
    for bit, name in nlmsg.NUD_STATES.items():
        if state & bit:
            return name
    return "none"


class BridgeCore:
    """Kernel mirror, binding table and the translation between them."""

    def __init__(self, all_routes: bool = False, validate: bool = False) -> None:
        self.validate = validate
        self.bindings = BindingTable()
        # Our own decoder produced the values, so by default the models are built
        # without re-validation (several times cheaper per event); ``validate=True``
        # takes the checked path, and a test holds the two to identical output.
        self._ev: Build = validated if validate else trusted
        self.out = Renderer(self.bindings, all_routes, self._ev)
        """The route forms wanted (``out.flat``, ``out.grouped``) and their events."""
        self.links: dict[int, LinkState] = {}
        self.addrs: dict[int, set[tuple[int, str, int]]] = {}
        self.neighs: dict[int, dict[tuple[int, str], tuple[str | None, str]]] = {}
        """ifindex -> (family, ip) -> (mac, NUD state name)."""
        self.counters = Counters()
        self.policy = PolicyRules()
        self.redumps: set[Redump] = set()
        self.expiring: list[float] = []
        """Seconds until IPv6 routes just seen expire: at each, their family is dumped
        again (an expired route is left out of a dump; the kernel says nothing)."""
        self.fib = RouteMirror(self.out, self.counters, self.redumps, self.apply)
        """The routes, their next-hop groups and the kernel's next-hop objects."""

    # ---- lookups ------------------------------------------------------------

    def link_by_name(self, name: str) -> LinkState | None:
        """The mirrored link called ``name``."""
        for link in self.links.values():
            if link.name == name:
                return link
        return None

    def resolve(self, proxy: str | int) -> LinkState | None:
        """A link by name or ifindex."""
        if isinstance(proxy, int):
            return self.links.get(proxy)
        return self.link_by_name(proxy)

    # ---- netlink records ------------------------------------------------------

    def apply(self, rec: nlmsg.Record) -> list[ev.EventBase]:
        """Apply one record to the mirror; return the events it causes."""
        self.counters.records += 1
        if isinstance(rec, nlmsg.Route):
            if rec.family == AF6 and (rec.deleted or rec.nlflags & _APPEND) and not rec.nhid:
                rec = self._sibling(rec)
            out = self.fib.route(rec)
        elif isinstance(rec, nlmsg.NhObject):
            out = self._nexthop(rec)
        elif isinstance(rec, nlmsg.Rule):
            out = self.policy.apply(rec)
            if self.out.quiet:
                out = []
        elif isinstance(rec, nlmsg.Link):
            out = self._link_deleted(rec.ifindex) if rec.deleted else self._link(rec)
        elif isinstance(rec, nlmsg.Addr):
            out = self._addr(rec)
        elif isinstance(rec, nlmsg.Neigh):
            out = self._neigh(rec)
        elif isinstance(rec, nlmsg.Expiry):
            self.expiring.append(rec.seconds)
            out = []
        else:
            out = []
        self.counters.events += len(out)
        return out

    def _sibling(self, rec: nlmsg.Route) -> nlmsg.Route:
        """An IPv6 deletion or append as the kernel meant it (see :mod:`.siblings`): a
        deletion of one sibling of a multipath route leaves the route through the others;
        an append lists the hops in the kernel's order."""
        held = self.fib.routes.get((AF6, rec.table, rec.dst, rec.prefixlen, rec.tos, rec.metric))
        if held is None or held[4]:
            return rec
        if not rec.deleted:
            return siblings.appended(rec, held[1].hops)
        if len(held[1].hops) < 2:
            return rec
        return siblings.remaining(rec, held[1].hops) or rec

    def apply_all(self, records: Iterable[nlmsg.Record]) -> list[ev.EventBase]:
        """Apply records in order; return all their events."""
        out: list[ev.EventBase] = []
        for rec in records:
            out.extend(self.apply(rec))
        return out

    def _port_event(
        self, cls: type[ev.PortScoped], link: LinkState, **kw: Any
    ) -> list[ev.EventBase]:
        return [
            self._ev(cls, port_id=p, proxy=link.name, ifindex=link.ifindex, **kw)
            for p in self.bindings.ports(link.ifindex)
        ]

    def _link_config(self, link: LinkState, ports: list[int]) -> list[ev.EventBase]:
        out: list[ev.EventBase] = []
        for p in ports:
            common: dict[str, Any] = {"port_id": p, "proxy": link.name, "ifindex": link.ifindex}
            # The port's fields first, in the models' order: trusted()'s shortcut.
            if link.mac is not None:
                out.append(self._ev(ev.MacChange, **common, mac=link.mac))
            out.append(self._ev(ev.MtuChange, **common, mtu=link.mtu))
            out.append(self._ev(ev.LinkChange, **common, up=link.up, carrier=link.carrier))
        return out

    def _link(self, rec: nlmsg.Link) -> list[ev.EventBase]:
        new = LinkState(rec.ifindex, rec.name, rec.mtu, rec.mac, rec.up, rec.carrier, rec.running)
        old = self.links.get(rec.ifindex)
        self.links[rec.ifindex] = new
        out: list[ev.EventBase] = []
        if old is None:
            back = self.bindings.come_back(new.name, new.ifindex)
            ports = [e.port_id for e, _ in back]
            for entry, old_ifindex in back:
                out.append(
                    self._ev(
                        ev.ProxyBack,
                        port_id=entry.port_id,
                        proxy=new.name,
                        ifindex=new.ifindex,
                        old_ifindex=old_ifindex,
                    )
                )
            for port in ports:
                out.extend(self._replay_port(port, new))
            return out
        if self.bindings.is_bound(new.ifindex):
            out.extend(self._link_changes(old, new))
        if (old.up, old.carrier) != (new.up, new.carrier):
            # After the link_change: a worker sees the cause before its effect on routes.
            out.extend(self.fib.follow_link(new.ifindex, new.up, new.carrier))
        state_changed = (old.up, old.carrier, old.running) != (new.up, new.carrier, new.running)
        if state_changed and self._published_via(new.ifindex):
            # What the kernel did silently, it may have done differently: ask it. Carrier
            # loss is said twice (LOWER_UP first, RUNNING when the kernel's link watch has
            # flagged the hops), and only the second look sees the hops as they end up.
            # Not for a link nothing published goes through: thousands of unbound links
            # coming up must not stall the bound ports (the mirror follows them as the
            # kernel does, see RouteMirror.follow_link; only the confirmation is skipped).
            self.confirm_link(new.ifindex)
        return out

    def _published_via(self, ifindex: int) -> bool:
        """Whether what is published may go through link ``ifindex``: it is bound, or a
        group through it goes through a bound port too (multipath, next-hop objects)."""
        bound = self.bindings.is_bound
        if bound(ifindex):
            return True
        return any(g.via(ifindex) and any(bound(h[1]) for h in g.hops) for g in self.fib.groups())

    def confirm_link(self, ifindex: int) -> None:
        """Ask the kernel again for what it may have done silently through ``ifindex``."""
        self.redumps.update((NEXTHOP_REDUMP, Redump(AF4, ifindex), Redump(AF6, ifindex)))

    def _link_changes(self, old: LinkState, new: LinkState) -> list[ev.EventBase]:
        """A bound proxy's changes as events."""
        out: list[ev.EventBase] = []
        if old.name != new.name:
            for entry, old_name in self.bindings.rename(new.ifindex, new.name):
                out.append(
                    self._ev(
                        ev.ProxyRenamed,
                        port_id=entry.port_id,
                        proxy=new.name,
                        ifindex=new.ifindex,
                        old_name=old_name,
                    )
                )
        if new.mac != old.mac and new.mac is not None:
            out.extend(self._port_event(ev.MacChange, new, mac=new.mac))
        if new.mtu != old.mtu:
            out.extend(self._port_event(ev.MtuChange, new, mtu=new.mtu))
        if new.up != old.up or new.carrier != old.carrier:
            out.extend(self._port_event(ev.LinkChange, new, up=new.up, carrier=new.carrier))
        return out

    def _nexthop(self, rec: nlmsg.NhObject) -> list[ev.EventBase]:
        changed = self.fib.nh_objects.apply(rec)
        if rec.deleted and changed:
            # Groups lost the member silently; confirm what they hold now.
            self.redumps.add(NEXTHOP_REDUMP)
        return self.fib.nexthop_objects_changed(changed)

    def _link_deleted(self, ifindex: int) -> list[ev.EventBase]:
        link = self.links.get(ifindex)
        if link is None:
            return []
        out: list[ev.EventBase] = []
        for fam, ip, plen in sorted(self.addrs.get(ifindex, ())):
            out.extend(self._addr(nlmsg.Addr(True, ifindex, fam, ip, plen)))
        for (fam, ip), (mac, _st) in sorted(self.neighs.get(ifindex, {}).items()):
            out.extend(self._neigh(nlmsg.Neigh(True, ifindex, fam, ip, mac, 0)))
        out.extend(self.fib.link_deleted(ifindex))
        for entry in self.bindings.mark_gone(ifindex):
            out.append(
                self._ev(ev.ProxyGone, port_id=entry.port_id, proxy=link.name, ifindex=ifindex)
            )
        del self.links[ifindex]
        self.addrs.pop(ifindex, None)
        self.neighs.pop(ifindex, None)
        return out

    def _addr(self, rec: nlmsg.Addr) -> list[ev.EventBase]:
        key = (rec.family, rec.ip, rec.prefixlen)
        have = self.addrs.setdefault(rec.ifindex, set())
        if rec.deleted:
            if key not in have:
                return []
            have.discard(key)
            if rec.family == AF4:
                # Routes whose gateway only this address made reachable go silently.
                self.redumps.add(Redump(AF4, rec.ifindex))
        else:
            if key in have:
                return []
            if rec.family == AF4 and self._revives(rec.ifindex, have):
                self.redumps.add(Redump(AF4, rec.ifindex))
            have.add(key)
        link = self.links.get(rec.ifindex)
        if link is None or not self.bindings.is_bound(rec.ifindex):
            return []
        cls: type[ev.PortScoped]
        if rec.family == AF4:
            cls = ev.AddrDel if rec.deleted else ev.AddrAdd
        else:
            cls = ev.Addr6Del if rec.deleted else ev.Addr6Add
        return self._port_event(cls, link, ip=rec.ip, prefixlen=rec.prefixlen)

    def _revives(self, ifindex: int, have: set[tuple[int, str, int]]) -> bool:
        """Whether an IPv4 address added to ``ifindex`` (holding ``have``) brings hops
        back: a link's first IPv4 address makes the kernel revive its dead IPv4 hops
        (fib_sync_up), without a route message."""
        if any(fam == AF4 for fam, _ip, _plen in have):
            return False
        return any(
            h[1] == ifindex and h[3] & nlmsg.RTNH_F_DEAD for g in self.fib.groups() for h in g.hops
        )

    def _neigh(self, rec: nlmsg.Neigh) -> list[ev.EventBase]:
        key = (rec.family, rec.ip)
        table = self.neighs.setdefault(rec.ifindex, {})
        old = table.get(key)
        if rec.deleted or not _publishable_neigh(rec):
            if old is None:
                return []
            del table[key]
            new = None
        else:
            new = (rec.mac, _nud_name(rec.state))
            if old == new:
                return []
            table[key] = new
        link = self.links.get(rec.ifindex)
        if link is None or not self.bindings.is_bound(rec.ifindex):
            return []
        cls: type[ev.PortScoped]
        if new is None:
            cls = ev.NeighDel if rec.family == AF4 else ev.Neigh6Del
            assert old is not None
            return self._port_event(cls, link, ip=rec.ip, mac=old[0], state="none")
        cls = ev.NeighAdd if rec.family == AF4 else ev.Neigh6Add
        return self._port_event(cls, link, ip=rec.ip, mac=new[0], state=new[1])

    # ---- resync ---------------------------------------------------------------

    def reconcile(
        self, kind: str, records: Iterable[nlmsg.Record], family: int = 0, oif: int = 0
    ) -> list[ev.EventBase]:
        """Make the mirror equal a complete dump; return exactly the difference as events.

        ``kind`` is ``link``, ``addr``, ``nexthop``, ``route`` (of ``family``, via
        ``oif`` if non-zero), ``rule`` (of ``family``) or ``neigh``. Entries in the
        mirror's scope that the dump lacks are deleted (sweep); dumped entries are
        applied (no event if unchanged).
        """
        if kind == "route":
            return self.fib.reconcile(records, family, oif)
        dumped = list(records)
        if kind == "nexthop":
            objs = [r for r in dumped if isinstance(r, nlmsg.NhObject)]
            return self.fib.nexthop_objects_changed(self.fib.nh_objects.reconcile(objs))
        if kind == "link":
            out = self._sweep_links(dumped)
        elif kind == "addr":
            out = self._sweep_addrs(dumped)
        elif kind == "rule":
            out = self.policy.sweep(family, [r for r in dumped if isinstance(r, nlmsg.Rule)])
        elif kind == "neigh":
            out = self._sweep_neighs(dumped)
        else:
            raise ValueError(f"unknown dump kind {kind!r}")
        out.extend(self.apply_all(dumped))
        return out

    def _sweep_links(self, dumped: list[nlmsg.Record]) -> list[ev.EventBase]:
        seen = {r.ifindex for r in dumped if isinstance(r, nlmsg.Link)}
        out: list[ev.EventBase] = []
        for ifindex in sorted(set(self.links) - seen):
            out.extend(self._link_deleted(ifindex))
        return out

    def _sweep_addrs(self, dumped: list[nlmsg.Record]) -> list[ev.EventBase]:
        seen = {
            (r.ifindex, r.family, r.ip, r.prefixlen) for r in dumped if isinstance(r, nlmsg.Addr)
        }
        out: list[ev.EventBase] = []
        for ifindex, have in list(self.addrs.items()):
            for fam, ip, plen in sorted(have):
                if (ifindex, fam, ip, plen) not in seen:
                    out.extend(self._addr(nlmsg.Addr(True, ifindex, fam, ip, plen)))
        return out

    def _sweep_neighs(self, dumped: list[nlmsg.Record]) -> list[ev.EventBase]:
        seen = {(r.ifindex, r.family, r.ip) for r in dumped if isinstance(r, nlmsg.Neigh)}
        out: list[ev.EventBase] = []
        for ifindex, entries in list(self.neighs.items()):
            for (fam, ip), (mac, _st) in sorted(entries.items()):
                if (ifindex, fam, ip) not in seen:
                    out.extend(self._neigh(nlmsg.Neigh(True, ifindex, fam, ip, mac, 0)))
        return out

    # ---- bindings -------------------------------------------------------------

    def bind(self, port_id: int, link: LinkState) -> tuple[Entry, bool, list[ev.EventBase]]:
        """Bind ``port_id`` to ``link``; return (entry, changed, events)."""
        entry, old = self.bindings.bind(port_id, link.name, link.ifindex)
        if old is entry:
            return entry, False, []
        out: list[ev.EventBase] = []
        if old is not None:
            out.extend(self._unbound(old))
        out.append(self._ev(ev.PortBound, port_id=port_id, proxy=link.name, ifindex=link.ifindex))
        out.extend(self._replay_port(port_id, link))
        return entry, True, out

    def _replay_port(self, port_id: int, link: LinkState) -> list[ev.EventBase]:
        out = self._link_config(link, [port_id])
        common: dict[str, Any] = {"port_id": port_id, "proxy": link.name, "ifindex": link.ifindex}
        for fam, ip, plen in sorted(self.addrs.get(link.ifindex, ())):
            cls = ev.AddrAdd if fam == AF4 else ev.Addr6Add
            out.append(self._ev(cls, **common, ip=ip, prefixlen=plen))
        for (fam, ip), (mac, st) in sorted(self.neighs.get(link.ifindex, {}).items()):
            ncls = ev.NeighAdd if fam == AF4 else ev.Neigh6Add
            out.append(self._ev(ncls, **common, ip=ip, mac=mac, state=st))
        # The groups through the link now name the port: said before any route uses them.
        for group in self.fib.groups():
            view = self.out.gview(group) if group.via(link.ifindex) else None
            if view is not None and group.sent is not None:
                out.extend(self.out.announce(group, view))
        for pkey in self.fib.paced(self.fib.published_keys(self.fib.routes_via(link.ifindex))):
            val = self.fib.published(pkey)
            out.extend(self.out.route_change(pkey, val, val, force=True))
        return out

    def unbind(
        self, port_id: int, proxy: LinkState | None = None
    ) -> tuple[list[Entry], list[ev.EventBase]]:
        """Unbind ``port_id`` (only from ``proxy`` if given); return (removed, events)."""
        entry = self.bindings.unbind(port_id, None if proxy is None else proxy.ifindex)
        if entry is None:
            return [], []
        return [entry], self._unbound(entry)

    def _unbound(self, entry: Entry) -> list[ev.EventBase]:
        ifindex = entry.ifindex if entry.ifindex is not None else 0
        out: list[ev.EventBase] = [
            self._ev(ev.PortUnbound, port_id=entry.port_id, proxy=entry.proxy, ifindex=ifindex)
        ]
        if entry.ifindex is None:
            return out
        # Routes via this proxy now carry other port ids, or stop being published.
        for pkey in self.fib.paced(self.fib.published_keys(self.fib.routes_via(entry.ifindex))):
            val = self.fib.published(pkey)
            assert val is not None
            view = self.out.view(val)
            if view is None:
                out.extend(self.out.deleted(pkey, val, self._view_with(val[1].hops, entry)))
            else:
                out.extend(self.out.added(pkey, val, view))
        for group in self.fib.groups():
            if group.via(entry.ifindex) and self.out.gview(group) is None:
                out.extend(self.out.retire(group))
        return out

    def _view_with(self, hops: tuple[nlmsg.NextHopT, ...], entry: Entry) -> NhView:
        # The view as it was while ``entry`` was still bound: the last published form.
        return tuple(
            (gw, ifx, entry.port_id if ifx == entry.ifindex else None, w, f)
            for gw, ifx, w, f in hops
        )

    def restore(self, saved: list[Entry]) -> list[ev.EventBase]:
        """Re-establish bindings from the state file against the mirrored links."""
        out: list[ev.EventBase] = []
        for item in saved:
            link = None
            if item.ifindex is not None:
                cand = self.links.get(item.ifindex)
                if cand is not None and cand.name == item.proxy:
                    link = cand
            if link is None:
                link = self.link_by_name(item.proxy)
            if link is None and item.ifindex is not None:
                link = self.links.get(item.ifindex)
            if link is None:
                self.bindings.add_gone(item.port_id, item.proxy, item.ifindex)
                continue
            _entry, _changed, events = self.bind(item.port_id, link)
            out.extend(events)
        return out

    # ---- snapshot -------------------------------------------------------------

    def snapshot_wire(self) -> SnapshotState:
        """The published state, as a ``snapshot`` reply carries it (built without
        re-validation). Whoever loads it holds the groups its routes use, and no other:
        the group form says them again before a route refers to them."""
        state, held = snapshot.build(self)
        self.fib.forget_sent()
        for group in held:
            group.sent = IN_SNAPSHOT
        return state

    def snapshot(self) -> State:
        """The published state in its readable form (one model per route)."""
        return self.snapshot_wire().expand()
