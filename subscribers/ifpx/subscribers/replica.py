"""A worker's replica of the published state (pure).

Applying events is idempotent, so replaying a journal slice or a snapshot diff
twice changes nothing. Routes are keyed by their destination as the bridge
writes it (the network address, canonical text) with interned next-hop tuples,
and indexed by prefix length for longest-prefix match on the first lookup.

A replica in the group form (``Replica(form="group")``, topic ``fib``) holds
next-hop groups and routes that refer to one by id: a hop that dies is one
``nhgroup_set``, applied in O(1) whatever the number of routes through it, and
every lookup resolves through the group.
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from ifpx.schemas import events as ev
from ifpx.schemas.state import (
    Binding,
    NeighState,
    PortState,
    RouteRowT,
    RouteTable,
    RouteTableBuilder,
    RuleState,
    SnapshotState,
    State,
)
from ifpx.schemas.topics import RouteForm

from .policy import Flow, resolve

RouteKey = tuple[int, int, str, int, int]
"""(family 4|6, table, destination network, prefixlen, metric)."""
Hop = tuple[str | None, int, int | None, int, tuple[ev.HopFlag, ...]]
"""(gateway, ifindex, port_id, weight, flags)."""
RouteVal = tuple[int, tuple[Hop, ...], ev.RouteType, str | None]
"""(proto, next hops, type, prefsrc): shared by the routes with equal values."""
GRouteVal = tuple[int, int, ev.RouteType, str | None]
"""(proto, next-hop group id, type, prefsrc): a route in the group form."""


def _hop(h: ev.NextHop) -> Hop:
    return (h.gateway, h.ifindex, h.port_id, h.weight, h.flags)


_RULE_KINDS: dict[str, tuple[Literal[4, 6], bool]] = {
    "rule_add": (4, True),
    "rule_del": (4, False),
    "rule6_add": (6, True),
    "rule6_del": (6, False),
}
"""Rule kinds -> (family, added)."""
RULE_FIELDS = tuple(ev.RuleFields.model_fields)
"""The fields every rule kind has (a rule's selector and action)."""
_ROUTE_KINDS = {"route_add": (4, True), "route_del": (4, False), "route6_add": (6, True),
                "route6_del": (6, False)}  # fmt: skip
"""Route kinds -> (family, added)."""
_GROUTE_KINDS = {"groute_add": (4, True), "groute_del": (4, False), "groute6_add": (6, True),
                 "groute6_del": (6, False)}  # fmt: skip
"""Route kinds of the group form -> (family, added)."""


@dataclass
class Port:
    """A bound port's proxy configuration."""

    port_id: int
    proxy: str
    ifindex: int
    mac: str | None = None
    mtu: int = 0
    up: bool = False
    carrier: bool = False
    addrs: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Route:
    """A route as :meth:`Replica.lookup` returns it.

    ``type`` other than ``unicast``: drop the packet (``blackhole`` silently,
    ``unreachable``/``prohibit`` with an ICMP error), or for ``throw`` go on to the
    next policy rule. ``nexthops`` are the usable ones only.
    """

    family: int
    dst: str
    table: int
    proto: int
    metric: int
    nexthops: tuple[Hop, ...]
    type: ev.RouteType = "unicast"
    prefsrc: str | None = None


def usable(hop: Hop, ignore_linkdown: bool = False) -> bool:
    """Whether the kernel forwards through ``hop``: never when dead; when its link has no
    carrier only if the interface's ``ignore_routes_with_linkdown`` is off."""
    flags = hop[4]
    return not flags or ("dead" not in flags and not (ignore_linkdown and "linkdown" in flags))


def _af(family: int) -> int:
    return socket.AF_INET if family == 4 else socket.AF_INET6


def _net(family: int, dst: str, plen: int) -> int:
    bits = 32 if family == 4 else 128
    raw = int.from_bytes(socket.inet_pton(_af(family), dst))
    return raw >> (bits - plen) << (bits - plen) if plen else 0


class Inconsistent(ValueError):
    """An event that does not add up with the replica (a route through a group never
    announced, a group deleted while routes use it): not applied; the state is to be
    taken again from a snapshot."""


class Replica:
    """Bindings, ports, routes and neighbours, kept equal to the bridge's by events.

    ``form``: how routes arrive, ``flat`` (each with its next hops) or ``group`` (by
    next-hop group); either way :meth:`lookup` and :meth:`to_state` give the same.
    """

    def __init__(self, form: RouteForm = "flat") -> None:
        self.form: RouteForm = form
        self._reset()

    def _reset(self) -> None:
        self.bindings: dict[int, Binding] = {}
        self.ports: dict[int, Port] = {}
        self.routes: dict[RouteKey, RouteVal] = {}
        self.groutes: dict[RouteKey, GRouteVal] = {}
        """Routes that arrived in the group form."""
        self.groups: dict[int, tuple[Hop, ...]] = {}
        """Next-hop group id -> its next hops (the group form)."""
        self._group_refs: dict[int, int] = {}
        """Group id -> routes of :attr:`groutes` through it (what may not be deleted)."""
        self.neighs: dict[tuple[int, str], tuple[str | None, str]] = {}
        self.rules: set[RuleState] = set()
        self.cfg_done = False
        # (family, table) -> prefixlen -> network -> keys; None until the first lookup.
        self._lpm: dict[tuple[int, int], dict[int, dict[int, list[RouteKey]]]] | None = None
        self._hops: dict[tuple[Hop, ...], tuple[Hop, ...]] = {}
        self._values: dict[tuple[int, int, str, str | None], RouteVal] = {}

    # ---- events ----------------------------------------------------------------

    def apply(self, e: ev.EventBase) -> None:  # noqa: C901
        """Apply one event (idempotent)."""
        kind: str = e.kind
        route = _ROUTE_KINDS.get(kind)
        if route is not None:
            r: ev.RouteAdd = e  # type: ignore[assignment]  # all four route kinds share fields
            fam, added = route
            if not added:
                self._route_del(fam, r.table, r.dst, r.prefixlen, r.metric)
                return
            nh = r.nexthops
            if len(nh) == 1:  # the common case, without a generator per route
                hops: tuple[Hop, ...] = (_hop(nh[0]),)
            else:
                hops = tuple(_hop(h) for h in nh)
            key = (fam, r.table, r.dst, r.prefixlen, r.metric)
            self._route_add(key, self._value(r.proto, hops, r.type, r.prefsrc))
            return
        groute = _GROUTE_KINDS.get(kind)
        if groute is not None:
            g: ev.GRouteAdd = e  # type: ignore[assignment]  # the four kinds share fields
            fam, added = groute
            gkey = (fam, g.table, g.dst, g.prefixlen, g.metric)
            refs = self._group_refs
            if not added:
                gone = self.groutes.pop(gkey, None)
                if gone is not None:
                    refs[gone[1]] -= 1
                    self._unindex(gkey)
                return
            gid = g.group
            if gid and gid not in self.groups:
                raise Inconsistent(
                    f"{kind} {g.dst}/{g.prefixlen} names group {gid}, never announced"
                )
            old = self.groutes.get(gkey)
            if old is None:
                if self._lpm is not None and gkey not in self.routes:
                    self._index(gkey)
            else:
                refs[old[1]] -= 1
            refs[gid] = refs.get(gid, 0) + 1
            self.groutes[gkey] = (g.proto, gid, g.type, g.prefsrc)
            return
        if kind == "nhgroup_set":
            gs: ev.NhGroupSet = e  # type: ignore[assignment]
            hops = tuple(_hop(h) for h in gs.nexthops)
            self.groups[gs.group] = self._hops.setdefault(hops, hops)
            return
        if kind == "nhgroup_del":
            gid = e.group  # type: ignore[attr-defined]
            if self._group_refs.get(gid, 0) > 0:
                raise Inconsistent(
                    f"nhgroup_del of group {gid}, which {self._group_refs[gid]} route(s) use"
                )
            self.groups.pop(gid, None)
            return
        rule = _RULE_KINDS.get(kind)
        if rule is not None:
            state = _rule_state(e, rule[0])
            if rule[1]:
                self.rules.add(state)
            else:
                self.rules.discard(state)
            return
        handler = getattr(self, "_on_" + kind, None)
        if handler is not None:
            handler(e)

    def apply_all(self, events: Iterable[ev.EventBase]) -> None:
        """Apply events in order."""
        for e in events:
            self.apply(e)

    def _port(self, e: ev.PortScoped) -> Port:
        port = self.ports.get(e.port_id)
        if port is None or port.ifindex != e.ifindex:
            port = Port(e.port_id, e.proxy, e.ifindex)
            self.ports[e.port_id] = port
            self.bindings[e.port_id] = Binding(port_id=e.port_id, proxy=e.proxy, ifindex=e.ifindex)
        return port

    def _drop_port(self, port_id: int) -> None:
        self.ports.pop(port_id, None)
        for key in [k for k in self.neighs if k[0] == port_id]:
            del self.neighs[key]

    def _on_port_bound(self, e: ev.PortBound) -> None:
        self.bindings[e.port_id] = Binding(port_id=e.port_id, proxy=e.proxy, ifindex=e.ifindex)
        self._drop_port(e.port_id)
        self.ports[e.port_id] = Port(e.port_id, e.proxy, e.ifindex)

    def _on_port_unbound(self, e: ev.PortUnbound) -> None:
        self.bindings.pop(e.port_id, None)
        self._drop_port(e.port_id)

    def _on_proxy_gone(self, e: ev.ProxyGone) -> None:
        self.bindings[e.port_id] = Binding(
            port_id=e.port_id, proxy=e.proxy, ifindex=None, state="gone"
        )
        self._drop_port(e.port_id)

    def _on_proxy_back(self, e: ev.ProxyBack) -> None:
        self._on_port_bound(e)  # type: ignore[arg-type]

    def _on_proxy_renamed(self, e: ev.ProxyRenamed) -> None:
        self.bindings[e.port_id] = Binding(port_id=e.port_id, proxy=e.proxy, ifindex=e.ifindex)
        self._port(e).proxy = e.proxy

    def _on_mac_change(self, e: ev.MacChange) -> None:
        self._port(e).mac = e.mac

    def _on_mtu_change(self, e: ev.MtuChange) -> None:
        self._port(e).mtu = e.mtu

    def _on_link_change(self, e: ev.LinkChange) -> None:
        port = self._port(e)
        port.up, port.carrier = e.up, e.carrier

    def _on_addr_add(self, e: ev.AddrAdd) -> None:
        self._port(e).addrs.add(f"{e.ip}/{e.prefixlen}")

    def _on_addr_del(self, e: ev.AddrDel) -> None:
        self._port(e).addrs.discard(f"{e.ip}/{e.prefixlen}")

    _on_addr6_add = _on_addr_add
    _on_addr6_del = _on_addr_del

    def _on_neigh_add(self, e: ev.NeighAdd) -> None:
        self._port(e)
        self.neighs[(e.port_id, e.ip)] = (e.mac, e.state)

    def _on_neigh_del(self, e: ev.NeighDel) -> None:
        self.neighs.pop((e.port_id, e.ip), None)

    _on_neigh6_add = _on_neigh_add
    _on_neigh6_del = _on_neigh_del

    def _on_cfg_done(self, _e: ev.CfgDone) -> None:
        self.cfg_done = True

    # ---- routes ----------------------------------------------------------------

    def _value(
        self, proto: int, hops: tuple[Hop, ...], rtype: ev.RouteType, prefsrc: str | None
    ) -> RouteVal:
        hops = self._hops.setdefault(hops, hops)
        vkey = (proto, id(hops), rtype, prefsrc)
        val = self._values.get(vkey)
        if val is None:
            val = self._values[vkey] = (proto, hops, rtype, prefsrc)
        return val

    def _route_add(self, key: RouteKey, val: RouteVal) -> None:
        if self._lpm is not None and key not in self.routes and key not in self.groutes:
            self._index(key)
        self.routes[key] = val

    def _index(self, key: RouteKey) -> None:
        assert self._lpm is not None
        fam, table, dst, plen, _metric = key
        by_len = self._lpm.setdefault((fam, table), {})
        by_len.setdefault(plen, {}).setdefault(_net(fam, dst, plen), []).append(key)

    def _route_del(self, fam: int, table: int, dst: str, plen: int, metric: int) -> None:
        key = (fam, table, dst, plen, metric)
        if self.routes.pop(key, None) is not None:
            self._unindex(key)

    def _unindex(self, key: RouteKey) -> None:
        if self._lpm is None or key in self.routes or key in self.groutes:
            return
        fam, table, dst, plen, _metric = key
        by_len = self._lpm[(fam, table)]
        net = _net(fam, dst, plen)
        keys = by_len[plen][net]
        keys.remove(key)
        if not keys:
            del by_len[plen][net]
            if not by_len[plen]:
                del by_len[plen]

    def lookup(self, ip: str, table: int = 254, ignore_linkdown: bool = False) -> Route | None:
        """Longest-prefix match of ``ip`` in ``table``, as the kernel forwards.

        The lowest metric wins a tie. A unicast route without a usable next hop (every
        hop dead, or without carrier when ``ignore_linkdown``, as the interfaces'
        ``ignore_routes_with_linkdown`` says) is passed over for a less specific one,
        as the kernel does; a drop route is returned, so the caller drops.
        """
        fam = 6 if ":" in ip else 4
        bits = 128 if fam == 6 else 32
        if self._lpm is None:
            # Built on the first lookup, not on every load: a worker that never looks up
            # (or looks up only once synced) does not pay for it per route.
            self._lpm = {}
            for key in self.routes:
                self._index(key)
            for key in self.groutes:
                if key not in self.routes:
                    self._index(key)
        by_len = self._lpm.get((fam, table))
        if not by_len:
            return None
        value = int.from_bytes(socket.inet_pton(_af(fam), ip))
        for plen in sorted(by_len, reverse=True):
            net = value >> (bits - plen) << (bits - plen) if plen else 0
            for key in sorted(by_len[plen].get(net, ()), key=lambda k: k[4]):
                val = self.routes.get(key)
                if val is None:
                    proto, gid, rtype, prefsrc = self.groutes[key]
                    hops = self.groups.get(gid, ())
                else:
                    proto, hops, rtype, prefsrc = val
                live = tuple(h for h in hops if usable(h, ignore_linkdown))
                if live or not hops:
                    dst = f"{key[2]}/{plen}"
                    return Route(fam, dst, table, proto, key[4], live, rtype, prefsrc)
        return None

    def resolve(self, flow: Flow, ignore_linkdown: bool = False) -> Route | None:
        """The route the kernel forwards ``flow`` by: its policy rules, then a table.

        See :func:`ifpx.subscribers.policy.resolve`; :meth:`lookup` is one table alone.
        """
        return resolve(self, flow, ignore_linkdown)

    # ---- snapshots -------------------------------------------------------------

    def load(self, state: State | SnapshotState) -> None:
        """Replace everything with a snapshot's state."""
        self._reset()
        for b in state.bindings:
            self.bindings[b.port_id] = b
        for p in state.ports:
            self.ports[p.port_id] = Port(
                p.port_id, p.proxy, p.ifindex, p.mac, p.mtu, p.up, p.carrier, set(p.addrs)
            )
        if isinstance(state, SnapshotState):
            table = state.routes
            fwd = table.forwarding or [("unicast", None)] * len(table.nexthop_sets)
            sets = [
                (tuple(_hop(h) for h in nexthops), rtype, prefsrc)
                for nexthops, (rtype, prefsrc) in zip(table.nexthop_sets, fwd, strict=True)
            ]
            if self.form == "group":
                gids = table.groups or RouteTable.from_routes(table.expand()).groups
                for gid, (hops, _t, _s) in zip(gids, sets, strict=True):
                    if gid:
                        self.groups[gid] = self._hops.setdefault(hops, hops)
                gvals = [
                    (gid, rtype, src) for gid, (_h, rtype, src) in zip(gids, sets, strict=True)
                ]
                self.groutes = {
                    (fam, tab, dst, plen, metric): (proto, *gvals[nhs])
                    for fam, dst, plen, tab, proto, metric, nhs in table.rows
                }
                self._group_refs = dict(Counter(v[1] for v in self.groutes.values()))
            else:
                values = _Values(self, sets)
                # One comprehension for a million rows: the snapshot is the bridge's own
                # output, in the same canonical text the events use.
                self.routes = {
                    (fam, tab, dst, plen, metric): values[(proto, nhs)]
                    for fam, dst, plen, tab, proto, metric, nhs in table.rows
                }
        elif self.form == "group":
            self.load(SnapshotState.from_state(state))
            return
        else:
            for r in state.routes:
                rdst, rplen = r.dst.rsplit("/", 1)
                hops = tuple(_hop(h) for h in r.nexthops)
                key = (r.family, r.table, rdst, int(rplen), r.metric)
                self._route_add(key, self._value(r.proto, hops, r.type, r.prefsrc))
        for n in state.neighs:
            self.neighs[(n.port_id, n.ip)] = (n.mac, n.state)
        self.rules = set(state.rules)

    def adopt(self, other: Replica) -> None:
        """Take over ``other``'s contents (this object stays the one callers hold)."""
        self.__dict__.update(other.__dict__)

    def to_wire(self) -> SnapshotState:
        """The replica as a snapshot would carry it (what a replay serves)."""
        ports = [
            PortState.model_construct(
                port_id=p.port_id,
                proxy=p.proxy,
                ifindex=p.ifindex,
                mac=p.mac,
                mtu=p.mtu,
                up=p.up,
                carrier=p.carrier,
                addrs=sorted(p.addrs),
            )
            for p in self.ports.values()
        ]
        # Sets by (group, next hops, type, prefsrc): a flat route's group is numbered
        # here (above every group id the group form holds), a group route's is its own.
        sets: RouteTableBuilder[tuple[int, tuple[Hop, ...], ev.RouteType, str | None]]
        sets = RouteTableBuilder()
        flat_ids: dict[tuple[Hop, ...], int] = {(): 0}
        top = max(self.groups, default=0)
        rows: list[RouteRowT] = []

        for (fam, table, dst, plen, metric), (proto, hops, rtype, src) in self.routes.items():
            gid = flat_ids.setdefault(hops, top + len(flat_ids))
            nhs = sets.index((gid, hops, rtype, src), gid, rtype, src, map(hop_model, hops))
            rows.append((fam, dst, plen, table, proto, metric, nhs))  # type: ignore[arg-type]
        for key, (proto, gid, rtype, src) in self.groutes.items():
            if key in self.routes:
                continue
            fam, table, dst, plen, metric = key
            hops = self.groups.get(gid, ())
            gid = gid if hops else 0
            nhs = sets.index((gid, hops, rtype, src), gid, rtype, src, map(hop_model, hops))
            rows.append((fam, dst, plen, table, proto, metric, nhs))  # type: ignore[arg-type]
        neighs = [
            NeighState.model_construct(port_id=p, ip=ip, mac=mac, state=st)
            for (p, ip), (mac, st) in self.neighs.items()
        ]
        return SnapshotState.model_construct(
            bindings=list(self.bindings.values()),
            ports=ports,
            routes=sets.table(rows),
            neighs=neighs,
            rules=sorted(self.rules, key=RuleState.sort_key),
        )

    def to_state(self) -> State:
        """The replica as a canonical :class:`State` (sorted), comparable with a snapshot."""
        return self.to_wire().canonical()


def _rule_state(e: ev.EventBase, family: Literal[4, 6]) -> RuleState:
    # From a validated event: no need to validate again.
    fields = {name: getattr(e, name) for name in RULE_FIELDS}
    return RuleState.model_construct(
        **fields,
        family=family,
        src=getattr(e, "src"),  # noqa: B009  # every rule kind has it
        dst=getattr(e, "dst"),  # noqa: B009
    )


class _Values(dict[tuple[int, int], RouteVal]):
    """(proto, next-hop set index) -> the replica's shared value, made on first use."""

    def __init__(
        self, replica: Replica, sets: list[tuple[tuple[Hop, ...], ev.RouteType, str | None]]
    ) -> None:
        super().__init__()
        self._replica = replica
        self._sets = sets

    def __missing__(self, key: tuple[int, int]) -> RouteVal:
        hops, rtype, prefsrc = self._sets[key[1]]
        val = self[key] = self._replica._value(key[0], hops, rtype, prefsrc)
        return val


def hop_model(h: Hop) -> ev.NextHop:
    """A replica's next hop as the wire's model, not validated again (the values come
    from validated events or a snapshot)."""
    g, i, p, w, f = h
    return ev.NextHop.model_construct(gateway=g, ifindex=i, port_id=p, weight=w, flags=f)
