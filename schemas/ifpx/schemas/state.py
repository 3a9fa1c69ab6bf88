"""The published state: what a snapshot carries and what a replica holds."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .events import NextHop, WireModel
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
    nexthops: Annotated[list[NextHop], Field(max_length=256)] = Field(default_factory=list)


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
        )
