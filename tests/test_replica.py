"""The subscriber's replica: longest-prefix match, snapshot diffs, idempotence."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_core import _apply_op, link, ops

from ifpx.bridge.core import BridgeCore
from ifpx.schemas import events as ev
from ifpx.schemas.state import Binding, NeighState, PortState, State
from ifpx.subscribers.replica import Inconsistent, Replica
from ifpx.subscribers.replicadiff import diff


def _route(dst: str, plen: int, metric: int = 0, port: int = 0, table: int = 254) -> ev.RouteAdd:
    return ev.RouteAdd(
        dst=dst,
        prefixlen=plen,
        metric=metric,
        table=table,
        nexthops=[ev.NextHop(gateway="192.0.2.9", ifindex=2, port_id=port)],
    )


def test_longest_prefix_match() -> None:
    r = Replica()
    r.apply_all(
        [
            _route("0.0.0.0", 0, port=9),
            _route("10.0.0.0", 8, port=1),
            _route("10.1.0.0", 16, port=2),
            _route("10.1.2.0", 24, metric=20, port=3),
            _route("10.1.2.0", 24, metric=10, port=4),
            _route("10.1.2.0", 24, port=5, table=100),
        ]
    )

    def port(ip: str, table: int = 254) -> int | None:
        found = r.lookup(ip, table)
        return None if found is None else found.nexthops[0][2]

    assert port("10.1.2.3") == 4  # longest prefix, lowest metric
    assert port("10.1.9.9") == 2
    assert port("10.200.0.1") == 1
    assert port("8.8.8.8") == 9
    assert port("10.1.2.3", table=100) == 5
    assert r.lookup("2001:db8::1") is None
    r.apply(ev.RouteDel(dst="10.1.2.0", prefixlen=24, metric=10))
    assert port("10.1.2.3") == 3
    r.apply(ev.RouteDel(dst="10.1.2.0", prefixlen=24, metric=10))  # idempotent
    r.apply(ev.RouteDel(dst="10.1.2.0", prefixlen=24, metric=20))
    assert port("10.1.2.3") == 2
    r6 = Replica()
    r6.apply(ev.Route6Add(dst="2001:db8::", prefixlen=32, nexthops=[]))
    found = r6.lookup("2001:db8::1")
    assert found is not None and found.dst == "2001:db8::/32"


def test_lookup_passes_over_dead_hops_and_returns_drop_routes() -> None:
    def hop(port: int, *flags: ev.HopFlag) -> ev.NextHop:
        return ev.NextHop(gateway=f"192.0.2.{port}", ifindex=port + 1, port_id=port, flags=flags)

    r = Replica()
    r.apply_all(
        [
            ev.RouteAdd(dst="10.0.0.0", prefixlen=8, nexthops=[hop(1)]),
            ev.RouteAdd(dst="10.1.0.0", prefixlen=16, nexthops=[hop(2, "dead", "linkdown")]),
            ev.RouteAdd(dst="10.2.0.0", prefixlen=16, nexthops=[hop(3, "linkdown"), hop(4)]),
            ev.RouteAdd(dst="10.3.0.0", prefixlen=16, type="blackhole", prefsrc="192.0.2.99"),
            ev.Route6Add(dst="2001:db8::", prefixlen=32, type="unreachable"),
        ]
    )
    # Every hop dead: the kernel goes on to a less specific route, and so does lookup.
    found = r.lookup("10.1.2.3")
    assert found is not None and found.dst == "10.0.0.0/8"
    # linkdown hops are used unless ignore_routes_with_linkdown says otherwise.
    found = r.lookup("10.2.0.1")
    assert found is not None and [h[2] for h in found.nexthops] == [3, 4]
    found = r.lookup("10.2.0.1", ignore_linkdown=True)
    assert found is not None and [h[2] for h in found.nexthops] == [4]
    # A drop route is what the worker must act on, not a miss.
    found = r.lookup("10.3.0.1")
    assert found is not None and (found.type, found.nexthops) == ("blackhole", ())
    assert found.prefsrc == "192.0.2.99"
    found6 = r.lookup("2001:db8::1")
    assert found6 is not None and found6.type == "unreachable"
    # Liveness comes back with a route_add carrying the same route, hops alive.
    r.apply(ev.RouteAdd(dst="10.1.0.0", prefixlen=16, nexthops=[hop(2)]))
    found = r.lookup("10.1.2.3")
    assert found is not None and found.dst == "10.1.0.0/16"
    # All of it survives the snapshot form.
    again = Replica()
    again.load(r.to_wire())
    assert again.to_state() == r.to_state()
    assert again.lookup("10.3.0.1") == r.lookup("10.3.0.1")


def test_events_are_idempotent() -> None:
    r = Replica()
    evs: list[ev.EventBase] = [
        ev.PortBound(port_id=0, proxy="tap0", ifindex=2),
        ev.MtuChange(port_id=0, proxy="tap0", ifindex=2, mtu=1400),
        ev.AddrAdd(port_id=0, proxy="tap0", ifindex=2, ip="192.0.2.1", prefixlen=24),
        _route("10.0.0.0", 8),
        ev.NeighAdd(port_id=0, proxy="tap0", ifindex=2, ip="192.0.2.2", mac="02:00:00:00:00:02"),
    ]
    r.apply_all(evs)
    once = r.to_state()
    r.apply_all(evs[1:])
    assert r.to_state() == once
    assert r.ports[0].mtu == 1400 and r.ports[0].addrs == {"192.0.2.1/24"}


def _core(seq: list) -> BridgeCore:  # type: ignore[type-arg]
    core = BridgeCore()
    core.apply_all([link(2, "tap0"), link(3, "tap1"), link(4, "tap2")])
    for op in seq:
        _apply_op(core, op)
    return core


@settings(max_examples=200, deadline=None)
@given(st.lists(ops, max_size=30), st.lists(ops, max_size=30))
def test_diff_takes_any_state_to_any_other(a: list, b: list) -> None:  # type: ignore[type-arg]
    old, new = _core(a).snapshot(), _core(b).snapshot()
    r = Replica()
    r.load(old)
    r.apply_all(diff(r, new))
    assert r.to_state() == new.canonical()
    assert diff(r, new) == []


def _rebound(ifindex: int) -> State:
    return State(
        bindings=[Binding(port_id=0, proxy="tap0", ifindex=ifindex)],
        ports=[PortState(port_id=0, proxy="tap0", ifindex=ifindex, mtu=1500)],
        neighs=[NeighState(port_id=0, ip="192.0.2.1", mac="02:00:00:00:00:01")],
    )


REBOUND = (_rebound(2), _rebound(3))
"""A port bound anew to another interface that has the same neighbour: port_bound drops the
port's neighbours, so the difference must announce that neighbour again."""


def test_diff_after_rebind_announces_unchanged_neighbours() -> None:
    old, new = REBOUND
    r = Replica()
    r.load(old)
    r.apply_all(diff(r, new))
    assert r.to_state() == new.canonical()


def _hop(ifindex: int = 2) -> ev.NextHop:
    return ev.NextHop(gateway="192.0.2.2", ifindex=ifindex, port_id=0, weight=1)


def _groute(group: int, dst: str = "10.1.0.0", deleted: bool = False) -> ev.EventBase:
    cls = ev.GRouteDel if deleted else ev.GRouteAdd
    return cls(table=254, proto=4, metric=0, group=group, dst=dst, prefixlen=16)


def test_the_group_form_refuses_what_does_not_add_up() -> None:
    r = Replica("group")
    with pytest.raises(Inconsistent, match="names group 5, never announced"):
        r.apply(_groute(5))
    assert not r.groutes
    r.apply(ev.NhGroupSet(group=5, nexthops=[_hop()]))
    r.apply(_groute(5))
    r.apply(_groute(5, "10.2.0.0"))
    r.apply(_groute(0, "10.3.0.0"))  # group 0: a drop route's, never announced
    with pytest.raises(Inconsistent, match="group 5, which 2 route"):
        r.apply(ev.NhGroupDel(group=5))
    assert 5 in r.groups
    r.apply(_groute(5, deleted=True))
    r.apply(ev.NhGroupSet(group=6, nexthops=[_hop(3)]))
    r.apply(_groute(6, "10.2.0.0"))  # moved to another group: 5 is free
    r.apply(ev.NhGroupDel(group=5))
    assert 5 not in r.groups and r.groutes[(4, 254, "10.2.0.0", 16, 0)][1] == 6
    with pytest.raises(Inconsistent):
        r.apply(ev.NhGroupDel(group=6))
    # A snapshot's routes hold their groups too.
    loaded = Replica("group")
    loaded.load(r.to_state())
    with pytest.raises(Inconsistent):
        loaded.apply(ev.NhGroupDel(group=next(iter(loaded.groups))))
