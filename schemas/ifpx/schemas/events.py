"""Event models: one per kind, discriminated by ``kind``.

Kinds carry DPDK's ``rte_ifpx`` callback names in lower case, plus the bridge's
own lifecycle kinds. Port-scoped events carry the DPDK ``port_id`` and the
proxy's name and ifindex; with several ports bound to one proxy the bridge
emits one event per port, as the RFC does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, Strict, TypeAdapter

from .types import (
    U32,
    U64,
    IfIndex,
    IfName,
    IPAny,
    IPv4,
    IPv6,
    Mac,
    PortId,
    PrefixLen4,
    PrefixLen6,
)


class WireModel(BaseModel):
    """Base of every wire model: immutable, strictly typed, and unknown fields are an error."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=True, ser_json_bytes="base64", val_json_bytes="base64"
    )


class EventBase(WireModel):
    """Base of every event: ``kind`` names it (and is the union's discriminator)."""

    kind: str


class PortScoped(EventBase):
    """Fields every port-scoped event carries."""

    port_id: PortId
    proxy: IfName
    ifindex: IfIndex


class MacChange(PortScoped):
    """The proxy's MAC address is now ``mac``."""

    kind: Literal["mac_change"] = "mac_change"
    mac: Mac


class MtuChange(PortScoped):
    """The proxy's MTU is now ``mtu``."""

    kind: Literal["mtu_change"] = "mtu_change"
    mtu: Annotated[int, Field(ge=0, le=2**32 - 1)]


class LinkChange(PortScoped):
    """Administrative state (IFF_UP, ``ip link set up/down``) and carrier."""

    kind: Literal["link_change"] = "link_change"
    up: bool
    carrier: bool = False


class AddrAdd(PortScoped):
    """An IPv4 address was added to the proxy."""

    kind: Literal["addr_add"] = "addr_add"
    ip: IPv4
    prefixlen: PrefixLen4


class AddrDel(PortScoped):
    """An IPv4 address was removed from the proxy."""

    kind: Literal["addr_del"] = "addr_del"
    ip: IPv4
    prefixlen: PrefixLen4


class Addr6Add(PortScoped):
    """An IPv6 address was added to the proxy."""

    kind: Literal["addr6_add"] = "addr6_add"
    ip: IPv6
    prefixlen: PrefixLen6


class Addr6Del(PortScoped):
    """An IPv6 address was removed from the proxy."""

    kind: Literal["addr6_del"] = "addr6_del"
    ip: IPv6
    prefixlen: PrefixLen6


HopFlag = Literal["dead", "linkdown", "onlink"]
"""The kernel's flags on a next hop (RTNH_F_*): ``dead`` hops are never used;
``linkdown`` hops (no carrier) are used unless the interface's
``ignore_routes_with_linkdown`` is set; ``onlink``: the gateway is taken as on-link."""

RouteType = Literal["unicast", "blackhole", "unreachable", "prohibit", "throw"]
"""How a route forwards. Only ``unicast`` routes have next hops; ``blackhole``
drops silently, ``unreachable`` and ``prohibit`` drop with an ICMP error
(host/network unreachable, administratively prohibited); ``throw`` ends the
lookup in this table (the policy rules go on to the next)."""


class NextHop(WireModel):
    """One next hop of a route; ECMP routes carry several."""

    gateway: IPAny | None = None
    ifindex: IfIndex
    port_id: PortId | None = Field(
        default=None,
        description="lowest DPDK port bound to the next hop's proxy; null if none is bound",
    )
    weight: Annotated[int, Field(ge=1, le=256)] = 1
    # A tuple, so that next hops stay hashable (they are interned on both sides);
    # msgpack and JSON carry it as an array.
    flags: Annotated[tuple[HopFlag, ...], Field(max_length=3), Strict(False)] = Field(
        default=(), description="the kernel's next-hop flags; a forwarder never uses a dead hop"
    )


_H = TypeVar("_H")

MAX_NEXTHOPS = 256
"""Most next hops a route carries on the wire (the bridge leaves out, from the end,
hops through no bound port past it: see :func:`trimmed`)."""


def trimmed(hops: tuple[_H, ...], bound: Callable[[_H], bool]) -> tuple[_H, ...]:
    """``hops`` within :data:`MAX_NEXTHOPS`: past it, those not ``bound`` (no worker can
    use them) are left out from the end, then, if still too many, the last ones.

    A prefix on every interface (each one's fe80::/64) is published merged, one hop per
    interface: a host with hundreds of links would publish more than fits.
    """
    extra = len(hops) - MAX_NEXTHOPS
    if extra <= 0:
        return hops
    kept: list[_H] = []
    for hop in reversed(hops):
        if extra and not bound(hop):
            extra -= 1
        else:
            kept.append(hop)
    return tuple(reversed(kept))[:MAX_NEXTHOPS]


class _RouteBase(EventBase):
    table: U32 = 254
    proto: Annotated[int, Field(ge=0, le=255)] = 0
    metric: U32 = 0
    nexthops: Annotated[list[NextHop], Field(max_length=MAX_NEXTHOPS)] = Field(default_factory=list)
    type: RouteType = "unicast"
    prefsrc: IPAny | None = Field(
        default=None, description="the source address for traffic the host originates"
    )


class RouteAdd(_RouteBase):
    """An IPv4 route was added or replaced (the event carries the whole route).

    Also sent when only its next hops' liveness changed (a hop went dead or came back).
    """

    kind: Literal["route_add"] = "route_add"
    dst: IPv4
    prefixlen: PrefixLen4


class RouteDel(_RouteBase):
    """An IPv4 route was removed."""

    kind: Literal["route_del"] = "route_del"
    dst: IPv4
    prefixlen: PrefixLen4


class Route6Add(_RouteBase):
    """An IPv6 route was added or replaced (the event carries the whole route)."""

    kind: Literal["route6_add"] = "route6_add"
    dst: IPv6
    prefixlen: PrefixLen6


class Route6Del(_RouteBase):
    """An IPv6 route was removed."""

    kind: Literal["route6_del"] = "route6_del"
    dst: IPv6
    prefixlen: PrefixLen6


GroupId = Annotated[int, Field(ge=0, le=2**32 - 1)]
"""A next-hop group's id: given by the bridge, the same while routes use the group (a
kernel object's: while the object exists), free again after ``nhgroup_del``; 0 is no
group (a drop route's)."""


class NhGroupSet(EventBase):
    """A next-hop group is now ``nexthops`` (new, or its hops, their flags or ports changed).

    Routes in the group form (``groute_*``) refer to a group by id, so a next hop
    that dies, comes back or is replaced reaches a worker as one event whatever the
    number of routes through it. Sent before the first route that refers to it.
    """

    kind: Literal["nhgroup_set"] = "nhgroup_set"
    group: Annotated[int, Field(ge=1, le=2**32 - 1)]
    nexthops: Annotated[list[NextHop], Field(min_length=1, max_length=MAX_NEXTHOPS)]


class NhGroupDel(EventBase):
    """A next-hop group is gone; no route refers to it any more.

    Its id is free: a later ``nhgroup_set`` may give it to another group (before any
    route refers to it). A ``nhgroup_del`` for a group not held is harmless.
    """

    kind: Literal["nhgroup_del"] = "nhgroup_del"
    group: Annotated[int, Field(ge=1, le=2**32 - 1)]


class _GRouteBase(EventBase):
    table: U32 = 254
    proto: Annotated[int, Field(ge=0, le=255)] = 0
    metric: U32 = 0
    group: GroupId = Field(
        default=0, description="the next-hop group it forwards by; 0 for a drop route"
    )
    type: RouteType = "unicast"
    prefsrc: IPAny | None = Field(
        default=None, description="the source address for traffic the host originates"
    )


class GRouteAdd(_GRouteBase):
    """An IPv4 route in the group form was added or replaced (``route_add`` by group id)."""

    kind: Literal["groute_add"] = "groute_add"
    dst: IPv4
    prefixlen: PrefixLen4


class GRouteDel(_GRouteBase):
    """An IPv4 route in the group form was removed."""

    kind: Literal["groute_del"] = "groute_del"
    dst: IPv4
    prefixlen: PrefixLen4


class GRoute6Add(_GRouteBase):
    """An IPv6 route in the group form was added or replaced."""

    kind: Literal["groute6_add"] = "groute6_add"
    dst: IPv6
    prefixlen: PrefixLen6


class GRoute6Del(_GRouteBase):
    """An IPv6 route in the group form was removed."""

    kind: Literal["groute6_del"] = "groute6_del"
    dst: IPv6
    prefixlen: PrefixLen6


RouteEvent = (
    RouteAdd | RouteDel | Route6Add | Route6Del | GRouteAdd | GRouteDel | GRoute6Add | GRoute6Del
)
"""A route event of either form."""

_ROUTE_EVENT_TYPES: dict[tuple[bool, bool, bool], type[RouteEvent]] = {
    (False, False, False): RouteAdd,
    (False, False, True): RouteDel,
    (False, True, False): Route6Add,
    (False, True, True): Route6Del,
    (True, False, False): GRouteAdd,
    (True, False, True): GRouteDel,
    (True, True, False): GRoute6Add,
    (True, True, True): GRoute6Del,
}


def route_event_type(six: bool, deleted: bool, grouped: bool = False) -> type[RouteEvent]:
    """The route event kind for an IPv6 (``six``) or IPv4 route added or ``deleted``, in
    the group form if ``grouped``, else flat."""
    return _ROUTE_EVENT_TYPES[(grouped, six, deleted)]


RuleAction = Literal["lookup", "goto", "nop", "blackhole", "unreachable", "prohibit"]
"""What a matching policy rule does: look the destination up in ``table`` (a miss or a
``throw`` route goes on to the next rule), jump to the rule at priority ``goto``,
nothing, or drop as the route types of the same names do."""

PortRange = Annotated[
    tuple[Annotated[int, Field(ge=0, le=65535)], Annotated[int, Field(ge=0, le=65535)]],
    Strict(False),  # msgpack arrays arrive as lists
]
U32Range = Annotated[tuple[U32, U32], Strict(False)]


class RuleFields(WireModel):
    """A policy routing rule (``ip rule``): its priority, selectors and action.

    A packet matches when every selector set here matches it (``invert``: when they
    do not all match); rules are tried in ascending priority. Selectors left at
    their defaults match everything.
    """

    priority: U32 = 0
    action: RuleAction = "lookup"
    table: U32 = 0
    goto: U32 | None = Field(default=None, description="the priority a goto rule jumps to")
    src_len: Annotated[int, Field(ge=0, le=128)] = 0
    dst_len: Annotated[int, Field(ge=0, le=128)] = 0
    tos: Annotated[int, Field(ge=0, le=255)] = 0
    fwmark: U32 = 0
    fwmask: U32 = 0
    iif: IfName | None = None
    oif: IfName | None = None
    invert: bool = False
    suppress_prefixlen: Annotated[int, Field(ge=0, le=128)] | None = Field(
        default=None, description="a lookup's route of this prefix length or shorter is refused"
    )
    suppress_ifgroup: U32 | None = None
    l3mdev: bool = False
    proto: Annotated[int, Field(ge=0, le=255)] = 0
    ip_proto: Annotated[int, Field(ge=0, le=255)] | None = None
    sport: PortRange | None = None
    dport: PortRange | None = None
    uid: U32Range | None = None
    tun_id: U64 | None = None
    flow: U32 | None = Field(default=None, description="the realms selector (ip rule realms)")


class _RuleEvent(RuleFields, EventBase):
    pass


class RuleAdd(_RuleEvent):
    """An IPv4 policy rule was added (rules are identified by all their fields)."""

    kind: Literal["rule_add"] = "rule_add"
    src: IPv4 | None = None
    dst: IPv4 | None = None


class RuleDel(_RuleEvent):
    """An IPv4 policy rule was removed."""

    kind: Literal["rule_del"] = "rule_del"
    src: IPv4 | None = None
    dst: IPv4 | None = None


class Rule6Add(_RuleEvent):
    """An IPv6 policy rule was added."""

    kind: Literal["rule6_add"] = "rule6_add"
    src: IPv6 | None = None
    dst: IPv6 | None = None


class Rule6Del(_RuleEvent):
    """An IPv6 policy rule was removed."""

    kind: Literal["rule6_del"] = "rule6_del"
    src: IPv6 | None = None
    dst: IPv6 | None = None


NeighState = Annotated[str, Field(max_length=32, description="NUD state, e.g. reachable")]


class NeighAdd(PortScoped):
    """An IPv4 neighbour (ARP entry) appeared or changed."""

    kind: Literal["neigh_add"] = "neigh_add"
    ip: IPv4
    mac: Mac | None = None
    state: NeighState = "reachable"


class NeighDel(PortScoped):
    """An IPv4 neighbour was removed."""

    kind: Literal["neigh_del"] = "neigh_del"
    ip: IPv4
    mac: Mac | None = None
    state: NeighState = "none"


class Neigh6Add(PortScoped):
    """An IPv6 neighbour appeared or changed."""

    kind: Literal["neigh6_add"] = "neigh6_add"
    ip: IPv6
    mac: Mac | None = None
    state: NeighState = "reachable"


class Neigh6Del(PortScoped):
    """An IPv6 neighbour was removed."""

    kind: Literal["neigh6_del"] = "neigh6_del"
    ip: IPv6
    mac: Mac | None = None
    state: NeighState = "none"


class CfgDone(EventBase):
    """The initial dump is complete: the published state now mirrors the kernel."""

    kind: Literal["cfg_done"] = "cfg_done"


class PortBound(PortScoped):
    """A port was bound to a proxy; that proxy's configuration follows as events."""

    kind: Literal["port_bound"] = "port_bound"


class PortUnbound(PortScoped):
    """A port was unbound; subscribers forget its port-scoped state."""

    kind: Literal["port_unbound"] = "port_unbound"


class ProxyGone(PortScoped):
    """The bound proxy interface disappeared; the binding stays, marked gone."""

    kind: Literal["proxy_gone"] = "proxy_gone"


class ProxyRenamed(PortScoped):
    """The bound proxy was renamed (same ifindex); ``proxy`` is the new name."""

    kind: Literal["proxy_renamed"] = "proxy_renamed"
    old_name: IfName


class ProxyBack(PortScoped):
    """A proxy with the gone proxy's name reappeared and the binding moved to it."""

    kind: Literal["proxy_back"] = "proxy_back"
    old_ifindex: IfIndex


class ResyncBegin(EventBase):
    """The publisher's state is being re-derived from a fresh kernel dump."""

    kind: Literal["resync_begin"] = "resync_begin"
    reason: Annotated[str, Field(max_length=200)]


class ResyncEnd(EventBase):
    """The resync is over; the events between begin and end were the difference."""

    kind: Literal["resync_end"] = "resync_end"
    reason: Annotated[str, Field(max_length=200)]
    changes: Annotated[int, Field(ge=0)] = 0


class Heartbeat(EventBase):
    """Sent about once a second: the latest sequence number of every topic."""

    kind: Literal["heartbeat"] = "heartbeat"
    topic_seqs: Annotated[dict[str, U64], Field(max_length=64)]
    interval: float = 1.0


Event = Annotated[
    MacChange
    | MtuChange
    | LinkChange
    | AddrAdd
    | AddrDel
    | Addr6Add
    | Addr6Del
    | RouteAdd
    | RouteDel
    | Route6Add
    | Route6Del
    | NhGroupSet
    | NhGroupDel
    | GRouteAdd
    | GRouteDel
    | GRoute6Add
    | GRoute6Del
    | RuleAdd
    | RuleDel
    | Rule6Add
    | Rule6Del
    | NeighAdd
    | NeighDel
    | Neigh6Add
    | Neigh6Del
    | CfgDone
    | PortBound
    | PortUnbound
    | ProxyGone
    | ProxyRenamed
    | ProxyBack
    | ResyncBegin
    | ResyncEnd
    | Heartbeat,
    Field(discriminator="kind"),
]
"""Any event; validate with :data:`EVENT_ADAPTER`."""

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

EVENT_TYPES: dict[str, type[EventBase]] = {
    cls.model_fields["kind"].default: cls for cls in get_args(get_args(Event)[0])
}
"""Every event kind, by name."""

DPDK_KINDS: tuple[str, ...] = (
    "mac_change",
    "mtu_change",
    "link_change",
    "addr_add",
    "addr_del",
    "addr6_add",
    "addr6_del",
    "route_add",
    "route_del",
    "route6_add",
    "route6_del",
    "neigh_add",
    "neigh_del",
    "neigh6_add",
    "neigh6_del",
    "cfg_done",
)
"""The kinds named after DPDK's ``rte_ifpx`` callbacks."""

KIND_ORDER: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        0,
        (
            *("mac_change", "mtu_change", "link_change"),
            *("addr_add", "addr_del", "addr6_add", "addr6_del"),
            *("route_add", "route_del", "route6_add", "route6_del"),
            *("neigh_add", "neigh_del", "neigh6_add", "neigh6_del"),
            *("cfg_done", "port_bound", "port_unbound"),
            *("proxy_gone", "proxy_renamed", "proxy_back"),
            *("resync_begin", "resync_end", "heartbeat"),
        ),
    ),
    (1, ("rule_add", "rule_del", "rule6_add", "rule6_del")),
    (3, ("nhgroup_set", "nhgroup_del", "groute_add", "groute_del", "groute6_add", "groute6_del")),
)
"""Every event kind by the protocol minor that brought it, in the order it came: the
number C's ``enum ifpx_kind`` gives it (``ifpx.schemas.cgen``). Append only: a kind's
number is part of libifpx's ABI."""
