"""The published state: what a snapshot carries and what a replica holds."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import Field, Strict, model_validator

from .events import MAX_NEXTHOPS, GroupId, NextHop, RouteType, RuleFields, WireModel
from .types import U32, IfIndex, IfName, IPAny, Mac, PortId

BindingState = Literal["active", "gone"]


class Binding(WireModel):
    """A DPDK port bound to a proxy interface (identified by its ifindex)."""

    port_id: PortId
    proxy: IfName
    ifindex: IfIndex | None = Field(description="null while the proxy is gone")
    state: BindingState = "active"


class PortState(WireModel):
    """The configuration of a bound port's proxy."""

    port_id: PortId
    proxy: IfName
    ifindex: IfIndex
    mac: Mac | None = None
    mtu: int = 0
    up: bool = False
    carrier: bool = False
    addrs: Annotated[list[str], Field(description="'ip/prefixlen', IPv4 and IPv6")] = Field(
        default_factory=list
    )


class RouteState(WireModel):
    """A route, IPv4 or IPv6; ``dst`` is 'prefix/len'."""

    family: Literal[4, 6]
    dst: Annotated[str, Field(max_length=49)]
    table: U32 = 254
    proto: Annotated[int, Field(ge=0, le=255)] = 0
    metric: U32 = 0
    nexthops: Annotated[list[NextHop], Field(max_length=MAX_NEXTHOPS)] = Field(default_factory=list)
    type: RouteType = "unicast"
    prefsrc: IPAny | None = None


class RuleState(RuleFields):
    """A policy routing rule, IPv4 or IPv6; ``src``/``dst`` are the selectors' networks."""

    family: Literal[4, 6]
    src: IPAny | None = None
    dst: IPAny | None = None

    def sort_key(self) -> tuple[int, int, str]:
        """Rules in the order the kernel tries them (then any fixed order)."""
        return (self.family, self.priority, self.model_dump_json())


class NeighState(WireModel):
    """A neighbour entry seen through a bound port."""

    port_id: PortId
    ip: IPAny
    mac: Mac | None = None
    state: Annotated[str, Field(max_length=32)] = "reachable"


class State(WireModel):
    """The whole published state, as a snapshot carries it."""

    bindings: list[Binding] = Field(default_factory=list)
    ports: list[PortState] = Field(default_factory=list)
    routes: list[RouteState] = Field(default_factory=list)
    neighs: list[NeighState] = Field(default_factory=list)
    rules: list[RuleState] = Field(default_factory=list)

    def canonical(self) -> State:
        """This state with every list in a fixed order, so equal states compare equal."""
        return State(
            bindings=sorted(self.bindings, key=lambda b: b.port_id),
            ports=[
                p.model_copy(update={"addrs": sorted(p.addrs)})
                for p in sorted(self.ports, key=lambda p: p.port_id)
            ],
            routes=sorted(self.routes, key=lambda r: (r.family, r.table, r.dst, r.metric)),
            neighs=sorted(self.neighs, key=lambda n: (n.port_id, n.ip)),
            rules=sorted(self.rules, key=RuleState.sort_key),
        )


Family = Literal[4, 6]
RouteRow = Annotated[
    tuple[
        Family,
        IPAny,
        Annotated[int, Strict(), Field(ge=0, le=128)],
        Annotated[int, Strict(), Field(ge=0, le=2**32 - 1)],
        Annotated[int, Strict(), Field(ge=0, le=255)],
        Annotated[int, Strict(), Field(ge=0, le=2**32 - 1)],
        Annotated[int, Strict(), Field(ge=0)],
    ],
    Strict(False),  # msgpack arrays arrive as lists; every item stays strictly typed
]
"""(family, dst, prefixlen, table, proto, metric, index into ``nexthop_sets``)."""

Forwarding = Annotated[
    tuple[RouteType, IPAny | None],
    Strict(False),  # as RouteRow
]
"""(type, prefsrc) of the routes that use one next-hop set."""


class RouteTable(WireModel):
    """Routes as a snapshot carries them: a full Internet table is a million of these.

    Each row is positional, and the next hops, which few routes do not share,
    are stored once in ``nexthop_sets`` and referred to by index. ``forwarding``
    holds, index for index, the type and preferred source of the routes that use
    each set; when it is empty every set is unicast without a preferred source.
    ``groups`` holds, index for index, the next-hop group id of each set (the ``group``
    of ``nhgroup_set`` and ``groute_*`` events; 0 for a drop route's empty set): a
    subscriber in the group form builds its groups from it. Sets that differ only in
    type or preferred source share a group.
    """

    nexthop_sets: list[Annotated[list[NextHop], Field(max_length=MAX_NEXTHOPS)]] = Field(
        default_factory=list
    )
    rows: list[RouteRow] = Field(default_factory=list)
    forwarding: list[Forwarding] = Field(default_factory=list)
    groups: list[GroupId] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> RouteTable:
        sets = len(self.nexthop_sets)
        if self.forwarding and len(self.forwarding) != sets:
            raise ValueError(f"{len(self.forwarding)} forwarding entries for {sets} next-hop sets")
        if self.groups and len(self.groups) != sets:
            raise ValueError(f"{len(self.groups)} group ids for {sets} next-hop sets")
        seen: dict[int, list[NextHop]] = {}
        for gid, hops in zip(self.groups, self.nexthop_sets, strict=False):
            if (gid == 0) != (not hops):
                raise ValueError(f"group {gid} with {len(hops)} next hops")
            if seen.setdefault(gid, hops) != hops:
                raise ValueError(f"group {gid} holds two different next-hop sets")
        for (rtype, _src), hops in zip(self.forwarding, self.nexthop_sets, strict=False):
            if rtype != "unicast" and hops:
                raise ValueError(f"a {rtype} route has no next hops")
        # One comprehension over a million rows (twice as fast as a loop); rows are
        # tuples (family, dst, prefixlen, table, proto, metric, next-hop set).
        bad = [
            r
            for r in self.rows
            if (r[0] == 4) == (":" in r[1]) or (r[0] == 4 and r[2] > 32) or r[6] >= sets
        ]
        if bad:
            fam, dst, plen, _t, _p, _m, nhs = bad[0]
            if (fam == 4) == (":" in dst) or (fam == 4 and plen > 32):
                raise ValueError(f"route {dst}/{plen} does not fit family {fam}")
            raise ValueError(f"route {dst}/{plen} refers to next-hop set {nhs} of {sets}")
        return self

    @classmethod
    def from_routes(cls, routes: Iterable[RouteState]) -> RouteTable:
        """The compact form of ``routes``."""
        table: RouteTableBuilder[tuple[tuple[NextHop, ...], RouteType, str | None]]
        table = RouteTableBuilder()
        group_of: dict[tuple[NextHop, ...], int] = {(): 0}
        rows: list[RouteRowT] = []
        for r in routes:
            dst, plen = r.dst.rsplit("/", 1)
            hops = tuple(r.nexthops)
            group = group_of.setdefault(hops, len(group_of))
            nhs = table.index((hops, r.type, r.prefsrc), group, r.type, r.prefsrc, hops)
            rows.append((r.family, dst, int(plen), r.table, r.proto, r.metric, nhs))
        return table.table(rows, validate=True)

    def expand(self) -> list[RouteState]:
        """One :class:`RouteState` per row."""
        fwd = self.forwarding or [("unicast", None)] * len(self.nexthop_sets)
        return [
            RouteState(
                family=fam,
                dst=f"{dst}/{plen}",
                table=table,
                proto=proto,
                metric=metric,
                nexthops=self.nexthop_sets[nhs],
                type=fwd[nhs][0],
                prefsrc=fwd[nhs][1],
            )
            for fam, dst, plen, table, proto, metric, nhs in self.rows
        ]


RouteRowT = tuple[Literal[4, 6], str, int, int, int, int, int]
"""A :data:`RouteRow` as built (family, dst, prefixlen, table, proto, metric, set)."""
_SetKey = TypeVar("_SetKey", bound=Hashable)


class RouteTableBuilder(Generic[_SetKey]):
    """The one way a :class:`RouteTable` is put together (the bridge's snapshot, a
    replica's, a list of routes): each next-hop set once, however many rows use it,
    numbered in the order sets first appear.

    A set is named by a key of the caller's (what makes two sets the same for it), and
    given with its group, type, preferred source and next hops, which are taken the
    first time the key is seen.
    """

    def __init__(self) -> None:
        self._index: dict[_SetKey, int] = {}
        self._sets: list[list[NextHop]] = []
        self._forwarding: list[tuple[RouteType, str | None]] = []
        self._groups: list[int] = []

    def index(
        self,
        key: _SetKey,
        group: int,
        route_type: RouteType,
        prefsrc: str | None,
        nexthops: Iterable[NextHop],
    ) -> int:
        """The index of the set ``key`` names, added now if it is new: only then is
        ``nexthops`` read (a generator builds the models of each set once)."""
        i = self._index.get(key)
        if i is None:
            i = self._index[key] = len(self._sets)
            self._sets.append(list(nexthops))
            self._forwarding.append((route_type, prefsrc))
            self._groups.append(group)
        return i

    def table(self, rows: list[RouteRowT], validate: bool = False) -> RouteTable:
        """The table of ``rows`` over the sets indexed; checked if ``validate`` (built as
        is otherwise: the values were checked on their way in)."""
        make = RouteTable if validate else RouteTable.model_construct
        return make(
            nexthop_sets=self._sets, rows=rows, forwarding=self._forwarding, groups=self._groups
        )


class SnapshotState(WireModel):
    """The state a ``snapshot`` reply carries: :class:`State` with compact routes."""

    bindings: list[Binding] = Field(default_factory=list)
    ports: list[PortState] = Field(default_factory=list)
    routes: RouteTable = Field(default_factory=RouteTable)
    neighs: list[NeighState] = Field(default_factory=list)
    rules: list[RuleState] = Field(default_factory=list)

    @classmethod
    def from_state(cls, state: State) -> SnapshotState:
        """The wire form of ``state``."""
        return cls(
            bindings=state.bindings,
            ports=state.ports,
            routes=RouteTable.from_routes(state.routes),
            neighs=state.neighs,
            rules=state.rules,
        )

    def expand(self) -> State:
        """The readable form, one :class:`RouteState` per route."""
        return State(
            bindings=self.bindings,
            ports=self.ports,
            routes=self.routes.expand(),
            neighs=self.neighs,
            rules=self.rules,
        )

    def canonical(self) -> State:
        """``expand().canonical()``: comparable with any other state."""
        return self.expand().canonical()
