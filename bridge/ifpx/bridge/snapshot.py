"""The bridge's snapshot: the published state as a ``snapshot`` reply carries it (pure).

Built from the mirror without re-validation, a million routes in one pass over their
interned values: each value's published form and next-hop set are worked out once.
Building changes nothing; the caller records which groups the snapshot's loaders hold
(:meth:`~ifpx.bridge.core.BridgeCore.snapshot_wire`).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import TYPE_CHECKING

from ifpx.schemas import events as ev
from ifpx.schemas.state import (
    Binding,
    NeighState,
    PortState,
    RouteRowT,
    RouteTable,
    RouteTableBuilder,
    SnapshotState,
)

from .groups import NO_GROUP, Group, NhView
from .render import AF4, TYPE_NAMES, hop_flag_names

if TYPE_CHECKING:
    from .core import BridgeCore


def build(core: BridgeCore) -> tuple[SnapshotState, list[Group]]:
    """The snapshot of ``core``'s published state, and the groups its routes use."""
    bindings, ports, neighs = _ports(core)
    routes, held = _routes(core)
    state = SnapshotState.model_construct(
        bindings=bindings, ports=ports, routes=routes, neighs=neighs, rules=core.policy.states()
    )
    return state, held


def _ports(core: BridgeCore) -> tuple[list[Binding], list[PortState], list[NeighState]]:
    entries = core.bindings.entries()
    bindings = [
        Binding.model_construct(
            port_id=e.port_id,
            proxy=e.proxy,
            ifindex=e.ifindex,
            state="gone" if e.gone else "active",
        )
        for e in entries
    ]
    ports = []
    neighs = []
    for e in entries:
        if e.ifindex is None:
            continue
        link = core.links[e.ifindex]
        addrs = [f"{ip}/{plen}" for _f, ip, plen in sorted(core.addrs.get(e.ifindex, ()))]
        ports.append(
            PortState.model_construct(
                port_id=e.port_id,
                proxy=link.name,
                ifindex=link.ifindex,
                mac=link.mac,
                mtu=link.mtu,
                up=link.up,
                carrier=link.carrier,
                addrs=addrs,
            )
        )
        for (_fam, ip), (mac, st) in sorted(core.neighs.get(e.ifindex, {}).items()):
            neighs.append(NeighState.model_construct(port_id=e.port_id, ip=ip, mac=mac, state=st))
    return bindings, ports, neighs


def _routes(core: BridgeCore) -> tuple[RouteTable, list[Group]]:
    table: RouteTableBuilder[tuple[int, NhView, int, str | None]] = RouteTableBuilder()
    variants = core.fib.variants
    merged = [(pkey, core.fib.published(pkey)) for pkey in variants]
    plain = (
        core.fib.routes.items()
        if not variants
        else [(k, v) for k, v in core.fib.routes.items() if len(k) == 6 and k not in variants]
    )
    # Route values are interned: work out each one's published form and index once,
    # then build the rows in one comprehension (a million of them).
    used = {id(v): v for _k, v in chain(plain, merged) if v is not None}
    index_of: dict[int, int | None] = {}
    held: list[Group] = []
    for vid, val in used.items():
        view = core.out.view(val)
        if view is None:
            index_of[vid] = None
            continue
        group, rtype, src = val[1], val[2], val[3]
        if group is not NO_GROUP:
            held.append(group)
        index_of[vid] = table.index(
            (group.gid, view, rtype, src), group.gid, TYPE_NAMES[rtype], src, _hops(view)
        )
    rows: list[RouteRowT] = [
        (4 if k[0] == AF4 else 6, k[2], k[3], k[1], v[0], k[5], i)
        for k, v in chain(plain, merged)
        if v is not None and (i := index_of[id(v)]) is not None
    ]
    return table.table(rows), held


def _hops(view: NhView) -> Iterator[ev.NextHop]:
    for gw, ifx, port, w, f in view:
        yield ev.NextHop.model_construct(
            gateway=gw, ifindex=ifx, port_id=port, weight=w, flags=hop_flag_names(f)
        )
