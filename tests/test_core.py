"""The bridge's pure core on synthetic netlink records: events, quirks, bindings, snapshots."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ifpx.bridge import nlmsg
from ifpx.bridge.bindings import Entry
from ifpx.bridge.core import BridgeCore, Redump
from ifpx.schemas import events as ev
from ifpx.schemas.topics import KIND_TOPIC
from ifpx.subscribers.replica import Replica

AF4, AF6 = socket.AF_INET, socket.AF_INET6


def link(
    ifindex: int, name: str, mtu: int = 1500, mac: str = "02:00:00:00:00:01", up: bool = False
) -> nlmsg.Link:
    return nlmsg.Link(False, ifindex, name, mtu, mac, up, False)


def route(
    dst: str, plen: int, *hops: tuple[str | None, int, int], deleted: bool = False, metric: int = 0
) -> nlmsg.Route:
    """An IPv4 unicast route with next hops (gateway, ifindex, weight), no flags."""
    nexthops = tuple((gw, ifx, w, 0) for gw, ifx, w in hops)
    return nlmsg.Route(deleted, AF4, 254, dst, plen, 0, 4, 1, 0, metric, nexthops)


def kinds(events: list[ev.EventBase]) -> list[str]:
    return [e.kind for e in events]


def core_with_taps() -> BridgeCore:
    core = BridgeCore()
    core.apply_all([link(2, "tap0"), link(3, "tap1"), link(4, "eth0")])
    return core


def test_link_changes_emit_only_what_changed_per_port() -> None:
    core = core_with_taps()
    core.bind(0, core.links[2])
    core.bind(1, core.links[3])
    core.bind(2, core.links[3])
    assert core.apply(link(3, "tap1")) == []
    out = core.apply(link(3, "tap1", mtu=9000, mac="02:00:00:00:00:99"))
    assert kinds(out) == ["mac_change", "mac_change", "mtu_change", "mtu_change"]
    assert [e.port_id for e in out] == [1, 2, 1, 2]  # type: ignore[attr-defined]
    out = core.apply(link(2, "tap0", up=True))
    assert out == [ev.LinkChange(port_id=0, proxy="tap0", ifindex=2, up=True, carrier=False)]
    assert core.apply(link(4, "eth0", mtu=1400)) == []  # not bound: silent


def test_addresses_and_neighbours() -> None:
    core = core_with_taps()
    core.bind(0, core.links[2])
    add = nlmsg.Addr(False, 2, AF4, "192.0.2.1", 24)
    assert kinds(core.apply(add)) == ["addr_add"]
    assert core.apply(add) == []
    assert kinds(core.apply(nlmsg.Addr(False, 2, AF6, "2001:db8::1", 64))) == ["addr6_add"]
    assert kinds(core.apply(nlmsg.Addr(True, 2, AF4, "192.0.2.1", 24))) == ["addr_del"]
    assert Redump(AF4, 2) in core.redumps  # the kernel may have dropped routes silently
    n = nlmsg.Neigh(False, 2, AF4, "192.0.2.9", "02:00:00:00:00:09", 0x02)
    assert kinds(core.apply(n)) == ["neigh_add"]
    assert core.apply(n) == []
    stale = nlmsg.Neigh(False, 2, AF4, "192.0.2.9", "02:00:00:00:00:09", 0x04)
    out = core.apply(stale)
    assert isinstance(out[0], ev.NeighAdd) and out[0].state == "stale"
    noarp = nlmsg.Neigh(False, 2, AF6, "ff02::16", "33:33:00:00:00:16", 0x40)
    assert core.apply(noarp) == []  # the kernel's own, for a multicast address
    assert core.apply(noarp._replace(family=AF4, ip="224.0.0.22")) == []
    assert core.apply(noarp._replace(family=AF4, ip="255.255.255.255")) == []
    static = nlmsg.Neigh(False, 2, AF4, "198.51.100.14", "02:00:00:00:00:0e", 0x40)
    out = core.apply(static)  # `ip neigh add ... nud noarp`: an operator's, used
    assert isinstance(out[0], ev.NeighAdd) and out[0].state == "noarp"
    assert kinds(core.apply(nlmsg.Neigh(True, 2, AF4, "192.0.2.9", None, 0))) == ["neigh_del"]


def test_routes_through_bound_proxies_with_ecmp_port_ids() -> None:
    core = core_with_taps()
    core.bind(0, core.links[2])
    core.bind(5, core.links[3])
    core.bind(1, core.links[3])
    assert core.apply(route("10.9.0.0", 16, (None, 4, 1))) == []  # via eth0: not published
    out = core.apply(route("10.50.0.0", 16, ("10.0.0.2", 2, 1), ("10.1.0.2", 3, 2)))
    assert len(out) == 1 and isinstance(out[0], ev.RouteAdd)
    assert [(h.port_id, h.weight) for h in out[0].nexthops] == [(0, 1), (1, 2)]
    assert core.apply(route("10.50.0.0", 16, ("10.0.0.2", 2, 1), ("10.1.0.2", 3, 2))) == []
    out = core.apply(route("10.50.0.0", 16, ("10.0.0.2", 2, 1), deleted=True))
    assert kinds(out) == ["route_del"]
    all_core = BridgeCore(all_routes=True)
    all_core.apply(link(4, "eth0"))
    assert kinds(all_core.apply(route("10.9.0.0", 16, (None, 4, 1)))) == ["route_add"]


def test_non_unicast_and_cloned_routes_are_ignored() -> None:
    core = core_with_taps()
    core.bind(0, core.links[2])
    local = nlmsg.Route(False, AF4, 255, "192.0.2.1", 32, 0, 2, 2, 0, 0, ((None, 2, 1, 0),))
    cloned = nlmsg.Route(False, AF6, 254, "2001:db8::9", 128, 0, 2, 1, 0x200, 0, ((None, 2, 1, 0),))
    assert core.apply(local) == [] and core.apply(cloned) == []
    assert not core.fib.routes


def carrier(ifindex: int, name: str, up: bool, has_carrier: bool) -> nlmsg.Link:
    return nlmsg.Link(False, ifindex, name, 1500, "02:00:00:00:00:01", up, has_carrier)


def test_a_link_nothing_published_goes_through_asks_for_no_redump() -> None:
    core = core_with_taps()
    core.bind(0, core.links[2])
    core.apply_all([carrier(i, n, True, True) for i, n in ((2, "tap0"), (3, "tap1"), (4, "eth0"))])
    core.apply(route("10.50.0.0", 16, ("10.0.1.2", 4, 1)))  # through eth0 alone
    core.redumps.clear()
    # Unbound, and nothing published goes through it: thousands of these must not stall
    # the bound ports with re-dumps (its routes still follow it, as the kernel's do).
    out = core.apply(carrier(3, "tap1", False, False))
    assert out == [] and core.redumps == set()
    core.apply(carrier(4, "eth0", True, False))
    assert core.redumps == set()
    # A multipath route mixes it with a bound port: it is asked about.
    core.apply(route("10.70.0.0", 16, ("10.0.0.2", 2, 1), ("10.0.1.2", 4, 1)))
    core.redumps.clear()
    core.apply(carrier(4, "eth0", True, True))
    assert {Redump(AF4, 4), Redump(AF6, 4), Redump(0, 0, "nexthop")} <= core.redumps
    # A bound one always.
    core.redumps.clear()
    core.apply(carrier(2, "tap0", True, False))
    assert {Redump(AF4, 2), Redump(AF6, 2), Redump(0, 0, "nexthop")} <= core.redumps


def test_link_down_derives_liveness_asks_for_redumps_and_reconcile_sweeps() -> None:
    core = core_with_taps()
    core.bind(0, core.links[2])
    core.bind(1, core.links[3])
    core.apply_all([carrier(2, "tap0", True, True), carrier(3, "tap1", True, True)])
    core.apply(route("10.50.0.0", 16, ("10.0.0.2", 2, 1)))
    core.apply(route("10.60.0.0", 16, ("10.0.0.3", 2, 1)))
    core.apply(route("10.70.0.0", 16, ("10.0.0.2", 2, 1), ("10.0.1.2", 3, 1)))
    core.redumps.clear()

    # Carrier lost: hops through tap0 are linkdown (the kernel says nothing for IPv4).
    out = core.apply(carrier(2, "tap0", True, False))
    assert kinds(out) == ["link_change", "route_add", "route_add", "route_add"]
    assert {e.nexthops[0].flags for e in out[1:]} == {("linkdown",)}  # type: ignore[attr-defined]
    assert {Redump(AF4, 2), Redump(AF6, 2), Redump(0, 0, "nexthop")} <= core.redumps

    # Down: routes left without a live hop go; an ECMP route keeps its other hop.
    out = core.apply(carrier(2, "tap0", False, False))
    assert [(e.kind, getattr(e, "dst", None)) for e in out] == [
        ("link_change", None),
        ("route_del", "10.50.0.0"),
        ("route_del", "10.60.0.0"),
        ("route_add", "10.70.0.0"),
    ]
    ecmp = out[3]
    assert [h.flags for h in ecmp.nexthops] == [("dead", "linkdown"), ()]  # type: ignore[attr-defined]

    # Up with carrier: the surviving hop lives again; deleted routes stay deleted.
    out = core.apply(carrier(2, "tap0", True, True))
    assert [(e.kind, getattr(e, "dst", None)) for e in out] == [
        ("link_change", None),
        ("route_add", "10.70.0.0"),
    ]
    assert [h.flags for h in out[1].nexthops] == [(), ()]  # type: ignore[attr-defined]

    # The kernel's answer to the re-dump is the judge: the sweep removes what it lacks.
    out = core.reconcile("route", [], AF4, oif=3)
    assert [(e.kind, e.dst) for e in out] == [("route_del", "10.70.0.0")]  # type: ignore[attr-defined]
    # A re-dump of one family through a link leaves the other family's routes alone.
    v6 = nlmsg.Route(False, AF6, 254, "2001:db8::", 64, 0, 3, 1, 0, 256, ((None, 2, 1, 0),))
    core.apply(v6)
    core.apply(route("10.50.0.0", 16, ("10.0.0.2", 2, 1)))
    assert core.reconcile("route", [], AF4, oif=2) != []
    assert core.reconcile("route", [v6], AF6, oif=2) == []
    assert len(core.fib.routes) == 1


def test_delete_and_recreate_proxy_with_same_name() -> None:
    core = core_with_taps()
    core.bind(0, core.links[2])
    core.apply(nlmsg.Addr(False, 2, AF4, "192.0.2.1", 24))
    core.apply(route("10.50.0.0", 16, ("192.0.2.2", 2, 1)))
    out = core.apply(nlmsg.Link(True, 2, "tap0", 1500, None, False, False))
    assert kinds(out) == ["addr_del", "route_del", "proxy_gone"]
    assert core.bindings.get(0) == Entry(0, "tap0", None, 2)
    out = core.apply(link(9, "tap0", mtu=1400))
    assert out[0] == ev.ProxyBack(port_id=0, proxy="tap0", ifindex=9, old_ifindex=2)
    assert kinds(out)[1:] == ["mac_change", "mtu_change", "link_change"]
    # Nothing of the old interface survives on the new one.
    assert core.snapshot().ports[0].addrs == []


def test_rename_keeps_binding() -> None:
    core = core_with_taps()
    core.bind(0, core.links[2])
    out = core.apply(link(2, "wan0"))
    assert out == [ev.ProxyRenamed(port_id=0, proxy="wan0", ifindex=2, old_name="tap0")]
    assert core.bindings.get(0) == Entry(0, "wan0", 2)


def test_bind_replays_and_is_idempotent_unbind_reroutes() -> None:
    core = core_with_taps()
    core.apply_all(
        [
            nlmsg.Addr(False, 3, AF4, "198.51.100.1", 24),
            nlmsg.Neigh(False, 3, AF4, "198.51.100.2", "02:00:00:00:00:02", 0x80),
            route("10.50.0.0", 16, ("198.51.100.2", 3, 1)),
        ]
    )
    entry, changed, out = core.bind(7, core.links[3])
    assert changed
    replay = ["port_bound", "mac_change", "mtu_change", "link_change"]
    assert kinds(out) == [*replay, "addr_add", "neigh_add", "route_add"]
    assert core.bind(7, core.links[3])[1:] == (False, [])
    removed, out = core.unbind(7)
    assert removed == [entry] and kinds(out) == ["port_unbound", "route_del"]
    assert core.unbind(7) == ([], [])


def test_restore_rules() -> None:
    core = core_with_taps()
    out = core.restore(
        [
            Entry(0, "tap0", 2),  # same name, same ifindex
            Entry(1, "tap1", 77),  # re-created while we were down: follows the name
            Entry(2, "old", 4),  # renamed while down: follows the ifindex
            Entry(3, "gone0", 5),  # nowhere: kept, marked gone
        ]
    )
    assert kinds(out).count("port_bound") == 3
    assert core.bindings.get(1) == Entry(1, "tap1", 3)
    assert core.bindings.get(2) == Entry(2, "eth0", 4)
    assert core.bindings.get(3) == Entry(3, "gone0", None, 5)


# ---- the events a core emits rebuild exactly the state it snapshots ---------------

names = ["tap0", "tap1", "tap2"]
ops = st.one_of(
    st.tuples(
        st.just("link"), st.integers(2, 4), st.sampled_from([1400, 1500, 9000]), st.booleans()
    ),
    st.tuples(st.just("rename"), st.integers(2, 4), st.sampled_from(["tap0", "wan", "tap1"])),
    st.tuples(st.just("dellink"), st.integers(2, 4)),
    st.tuples(st.just("addr"), st.integers(2, 4), st.integers(1, 3), st.booleans()),
    st.tuples(
        st.just("route"), st.integers(1, 4), st.integers(2, 4), st.integers(2, 4), st.booleans()
    ),
    st.tuples(
        st.just("neigh"), st.integers(2, 4), st.integers(1, 3), st.sampled_from([0, 2, 4, 64, 128])
    ),
    st.tuples(st.just("neighdel"), st.integers(2, 4), st.integers(1, 3)),
    # IPv4 routes appended or prepended behind (or in front of) the first of a key.
    st.tuples(
        st.just("alias"),
        st.integers(1, 4),
        st.integers(2, 4),
        st.sampled_from(["append", "prepend", "replace", "del"]),
    ),
    # Device routes: the kernel keeps one per interface under the same prefix and metric.
    st.tuples(st.just("devroute"), st.integers(1, 2), st.integers(2, 4), st.booleans()),
    st.tuples(st.just("bind"), st.integers(0, 3), st.integers(2, 4)),
    st.tuples(st.just("unbind"), st.integers(0, 3)),
    st.tuples(st.just("carrier"), st.integers(2, 4), st.booleans(), st.booleans()),
    # Drop routes (IPv6 ones name "lo" as their interface: ifindex 1 here).
    st.tuples(st.just("drop"), st.integers(1, 5), st.sampled_from([6, 7, 8, 9]), st.booleans()),
    # Next-hop objects: single hops 1-3, groups 10-11, routes through any of them.
    st.tuples(st.just("nh"), st.integers(1, 3), st.integers(2, 4), st.booleans()),
    st.tuples(st.just("nhgroup"), st.integers(10, 11), st.sets(st.integers(1, 3)), st.booleans()),
    st.tuples(st.just("nhroute"), st.integers(1, 5), st.sampled_from([1, 2, 3, 10, 11, 12])),
    st.tuples(st.just("nhroutedel"), st.integers(1, 5)),
    # Policy rules: the same priority twice with other selectors, both families.
    st.tuples(
        st.just("rule"), st.integers(1, 3), st.sampled_from([1, 6, 7]), st.booleans(), st.booleans()
    ),
)


def rule(deleted: bool, priority: int, action: int, six: bool, src: bool) -> nlmsg.Rule:
    """A policy rule from ``10.0.0.0/8`` (or ``2001:db8::/32``) or from all."""
    net = ("2001:db8::", 32) if six else ("10.0.0.0", 8)
    return nlmsg.Rule(
        deleted, AF6 if six else AF4, priority, action, 100 if action == 1 else 0, None,
        net[0] if src else None, net[1] if src else 0, None, 0, 0, 0, 0, None, None, False,
        None, None, False, 0, None, (1, 2) if src else None, None, None, None, None,
    )  # fmt: skip


def _apply_op(core: BridgeCore, op: tuple) -> list[ev.EventBase]:  # type: ignore[type-arg]
    kind = op[0]
    if kind == "link":
        old = core.links.get(op[1])
        name = old.name if old else names[op[1] - 2]
        return core.apply(nlmsg.Link(False, op[1], name, op[2], "02:00:00:00:00:01", op[3], False))
    if kind == "rename":
        old = core.links.get(op[1])
        if old is None or core.link_by_name(op[2]):
            return []
        return core.apply(nlmsg.Link(False, op[1], op[2], old.mtu, old.mac, old.up, False))
    if kind == "dellink":
        return core.apply(nlmsg.Link(True, op[1], "x", 0, None, False, False))
    if kind == "addr":
        return core.apply(nlmsg.Addr(op[3], op[1], AF4, f"192.0.2.{op[2]}", 24))
    if kind == "route":
        hops = (
            ((f"10.0.0.{op[2]}", op[2], 1),)
            if op[2] == op[3]
            else ((f"10.0.0.{op[2]}", op[2], 1), (f"10.0.1.{op[3]}", op[3], 2))
        )
        rec = route(f"10.{op[1]}.0.0", 16, *hops, deleted=op[4])
        return core.apply(rec._replace(prefsrc="192.0.2.1") if op[1] % 2 else rec)
    if kind == "neigh":
        return core.apply(
            nlmsg.Neigh(False, op[1], AF4, f"192.0.2.{op[2]}", "02:00:00:00:00:02", op[3])
        )
    if kind == "alias":
        flags = {
            "append": nlmsg.NLM_F_CREATE | nlmsg.NLM_F_APPEND,
            "prepend": nlmsg.NLM_F_CREATE,
            "replace": nlmsg.NLM_F_REPLACE,
            "del": 0,
        }[op[3]]
        rec = route(f"10.{op[1]}.0.0", 16, (f"10.0.0.{op[2]}", op[2], 1), deleted=op[3] == "del")
        return core.apply(rec._replace(nlflags=flags))
    if kind == "devroute":
        return core.apply(route(f"10.{op[1]}.0.0", 16, (None, op[2], 1), deleted=op[3]))
    if kind == "neighdel":
        return core.apply(nlmsg.Neigh(True, op[1], AF4, f"192.0.2.{op[2]}", None, 0))
    if kind == "bind":
        link_ = core.links.get(op[2])
        return core.bind(op[1], link_)[2] if link_ else []
    if kind == "carrier":
        old = core.links.get(op[1])
        if old is None:
            return []
        return core.apply(nlmsg.Link(False, op[1], old.name, old.mtu, old.mac, op[2], op[3]))
    if kind == "drop":
        dst = f"10.{op[1]}.0.0"
        return core.apply(
            nlmsg.Route(op[3], AF4, 254, dst, 16, 0, 4, op[2], 0, 0, ((None, 1, 1, 0),))
        )
    if kind == "nh":
        obj = nlmsg.NhObject(op[3], op[1], AF4, f"10.0.9.{op[1]}", op[2], 0, False, False, ())
        return core.apply(obj)
    if kind == "nhgroup":
        group = tuple((m, m) for m in sorted(op[2]))
        if not group and not op[3]:
            return []  # the kernel refuses an empty group
        return core.apply(nlmsg.NhObject(op[3], op[1], 0, None, 0, 0, False, False, group))
    if kind == "nhroute":
        if op[2] not in core.fib.nh_objects.objects:
            return []  # the kernel refuses a route through an unknown object
        dst = f"10.{op[1] + 100}.0.0"
        return core.apply(nlmsg.Route(False, AF4, 254, dst, 16, 0, 4, 1, 0, 0, (), None, op[2]))
    if kind == "nhroutedel":
        dst = f"10.{op[1] + 100}.0.0"
        return core.apply(nlmsg.Route(True, AF4, 254, dst, 16, 0, 4, 1, 0, 0, (), None, 0))
    if kind == "rule":
        return core.apply(rule(op[4], op[1], op[2], op[3], src=op[1] % 2 == 1))
    return core.unbind(op[1])[1]


@settings(max_examples=300, deadline=None)
@given(st.lists(ops, max_size=40), st.lists(ops, max_size=40))
def test_replica_fed_with_core_events_equals_core_snapshot(pre: list, post: list) -> None:  # type: ignore[type-arg]
    core = BridgeCore()
    core.apply_all([link(2, "tap0"), link(3, "tap1"), link(4, "tap2")])
    for op in pre:
        _apply_op(core, op)
    replica = Replica()
    replica.load(core.snapshot())  # late join
    for op in post:
        if op[0] == "dellink" and op[1] not in core.links:
            continue
        replica.apply_all(_apply_op(core, op))
        core.redumps.clear()
    assert replica.to_state() == core.snapshot().canonical()


@settings(max_examples=300, deadline=None)
@given(st.lists(ops, max_size=40), st.lists(ops, max_size=40), st.booleans())
# A group a snapshot carried, unpublished by an unbind: withdrawn, not left behind.
@example([("bind", 0, 3), ("devroute", 1, 3, False)], [("bind", 0, 2), ("dellink", 3)], False)
def test_the_group_form_and_the_flat_form_hold_the_same_routes(
    pre: list,  # type: ignore[type-arg]
    post: list,  # type: ignore[type-arg]
    defer: bool,
) -> None:
    core = BridgeCore()
    core.out.grouped = True
    core.out.defer_flat = defer  # the daemon's way: the flat form's republishing comes after
    core.apply_all([link(2, "tap0"), link(3, "tap1"), link(4, "tap2")])
    for op in pre:
        _apply_op(core, op)
    flat, grouped = Replica(), Replica("group")
    wire = core.snapshot_wire()
    flat.load(wire)
    grouped.load(wire)
    for op in post:
        if op[0] == "dellink" and op[1] not in core.links:
            continue
        events = _apply_op(core, op) + list(core.fib.deferred())
        flat.apply_all(e for e in events if KIND_TOPIC[e.kind] != "fib")
        grouped.apply_all(e for e in events if KIND_TOPIC[e.kind] != "route")
        core.redumps.clear()
    assert not grouped.routes and not flat.groutes  # each took its own form only
    for group in core.fib.groups():  # the keys a small group keeps are its routes'
        if group.keys is not None:
            assert group.keys == {k for k, v in core.fib.routes.items() if v[1] is group}
    _assert_groups_reclaimed(core)
    # The group form holds the groups its routes name, and none the bridge has forgotten
    # (one may stay announced while a route of the mirror uses it: a device route's,
    # published merged with another's).
    named = {r[1] for r in grouped.groutes.values()} - {0}
    assert named <= set(grouped.groups) <= {g.gid for g in core.fib.groups()}
    assert grouped.to_state() == flat.to_state() == core.snapshot().canonical()
    for dst in ("10.1.0.1", "10.2.3.4", "10.101.0.1", "10.7.0.9"):
        assert grouped.lookup(dst) == flat.lookup(dst)


def _assert_groups_reclaimed(core: BridgeCore) -> None:
    """Every group the mirror keeps is in use, counted right, with its own id."""
    groups = list(core.fib.groups())
    assert len({g.gid for g in groups}) == len(groups)
    published = {id(v[1]) for p in core.fib.variants if (v := core.fib.published(p)) is not None}
    for group in groups:
        refs = sum(1 for v in core.fib.routes.values() if v[1] is group)
        assert group.refs == refs
        if group.bare is not None:
            assert refs > 0, "a group of a set of next hops no route uses is forgotten"
        elif group not in core.fib.nhg.by_object.values():
            assert id(group) in published, "so is a merged route's no route is published by"
    live = {id(g) for g in groups}
    assert all(id(v[1]) in live for v in core.fib.nhg.values.values() if v[1].gid)
    assert not set(core.fib.nhg._free_gids) & {g.gid for g in groups}


def test_a_group_no_route_uses_is_withdrawn_and_its_id_reused() -> None:
    core = core_with_taps()
    core.out.grouped, core.out.flat = True, False
    core.bind(0, core.links[2])
    first = core.apply(route("10.1.0.0", 16, ("10.0.0.2", 2, 1)))
    assert kinds(first) == ["nhgroup_set", "groute_add"]
    gid = first[0].group  # type: ignore[attr-defined]
    assert kinds(core.apply(route("10.2.0.0", 16, ("10.0.0.3", 2, 1)))) == [
        "nhgroup_set",
        "groute_add",
    ]
    # The route goes first, then the group it left unused.
    gone = core.apply(route("10.1.0.0", 16, ("10.0.0.2", 2, 1), deleted=True))
    assert kinds(gone) == ["groute_del", "nhgroup_del"] and gone[1].group == gid  # type: ignore[attr-defined]
    # BGP's churn through ever-new gateways: ids stay as few as the groups in use.
    for i in range(4, 1000):
        core.apply(route(f"10.{i % 200}.1.0", 24, (f"10.0.{i // 250}.{i % 250}", 2, 1)))
        core.apply(
            route(f"10.{i % 200}.1.0", 24, (f"10.0.{i // 250}.{i % 250}", 2, 1), deleted=True)
        )
    assert max(g.gid for g in core.fib.groups()) <= 3 and len(core.fib.nhg.values) <= 2
    # A group in a snapshot is withdrawn too, though not announced since.
    core.snapshot_wire()
    core.fib.forget_sent()
    assert kinds(core.apply(route("10.2.0.0", 16, ("10.0.0.3", 2, 1), deleted=True))) == [
        "groute_del",
        "nhgroup_del",
    ]
    # A kernel object's group is withdrawn with its last route, and keeps its id while
    # the object exists.
    core.apply(nlmsg.NhObject(False, 7, AF4, "10.0.0.9", 2, 0, False, False, ()))
    via = nlmsg.Route(False, AF4, 254, "10.3.0.0", 16, 0, 4, 1, 0, 0, (), None, 7)
    added = core.apply(via)
    assert kinds(added) == ["nhgroup_set", "groute_add"]
    assert kinds(core.apply(via._replace(deleted=True))) == ["groute_del", "nhgroup_del"]
    again = core.apply(via)
    assert kinds(again) == ["nhgroup_set", "groute_add"]
    assert again[0].group == added[0].group  # type: ignore[attr-defined]
    _assert_groups_reclaimed(core)


def test_a_merged_route_follows_its_parts_liveness_in_its_own_group() -> None:
    core = core_with_taps()
    core.out.grouped, core.out.flat = True, False
    core.bind(0, core.links[2])
    core.bind(1, core.links[3])
    core.apply(route("10.9.0.0", 16, (None, 2, 1)))
    both = core.apply(route("10.9.0.0", 16, (None, 3, 1)))
    assert kinds(both) == ["nhgroup_set", "groute_add"]
    merged = both[1].group  # type: ignore[attr-defined]
    # tap1 loses its carrier: the kernel marks the hop linkdown, the route stays.
    out = core.apply(nlmsg.Link(False, 3, "tap1", 1500, "02:00:00:00:00:01", True, False))
    sets = [e for e in out if isinstance(e, ev.NhGroupSet) and e.group == merged]
    assert len(sets) == 1 and sets[0].nexthops[1].flags == ("linkdown",)
    assert not [e for e in out if e.kind in ("groute_add", "groute_del", "nhgroup_del")]
    back = core.apply(nlmsg.Link(False, 3, "tap1", 1500, "02:00:00:00:00:01", True, True))
    assert [e.group for e in back if isinstance(e, ev.NhGroupSet)].count(merged) == 1
    _assert_groups_reclaimed(core)


def test_a_link_failure_is_one_group_event_whatever_the_number_of_routes() -> None:
    core = core_with_taps()
    core.out.grouped, core.out.flat = True, False
    for ifindex, name in ((2, "tap0"), (3, "tap1")):
        core.apply(nlmsg.Link(False, ifindex, name, 1500, "02:00:00:00:00:01", True, True))
    core.bind(0, core.links[2])
    core.bind(1, core.links[3])
    hops = ((None, 2, 1, 0), (None, 3, 1, 0))
    ecmp = ((("10.0.0.2", 2, 1, 0), ("10.0.1.2", 3, 1, 0)), hops)
    added = core.apply_all(
        nlmsg.Route(False, AF4, 254, f"10.{i // 256}.{i % 256}.0", 24, 0, 4, 1, 0, 0,
                    ecmp[i % 2][:1] if i == 7 else ecmp[0])
        for i in range(5000)
    )  # fmt: skip
    assert kinds(added).count("nhgroup_set") == 2 and kinds(added).count("groute_add") == 5000
    down = core.apply(nlmsg.Link(False, 3, "tap1", 1500, "02:00:00:00:00:01", False, False))
    assert kinds(down) == ["link_change", "nhgroup_set"]
    assert down[1].nexthops[1].flags == ("dead", "linkdown")  # type: ignore[attr-defined]
    assert down[1].group == added[-2].group  # type: ignore[attr-defined]
    # The flat form says the same of every route: what a `route` subscriber costs.
    core.out.flat = True
    up = core.apply(nlmsg.Link(False, 3, "tap1", 1500, "02:00:00:00:00:01", True, True))
    assert kinds(up)[:2] == ["link_change", "nhgroup_set"] and len(up) == 2 + 4999
    # Put off (the daemon's way), the group form's event comes without them...
    core.out.defer_flat = True
    down = core.apply(nlmsg.Link(False, 3, "tap1", 1500, "02:00:00:00:00:01", False, False))
    assert kinds(down) == ["link_change", "nhgroup_set"]
    owed = list(core.fib.deferred())  # ...and the flat form's after, as the routes are then
    assert kinds(owed) == ["route_add"] * 4999 and not list(core.fib.deferred())
    assert all(e.nexthops[1].flags == ("dead", "linkdown") for e in owed)  # type: ignore[attr-defined]


@settings(max_examples=200, deadline=None)
@given(st.lists(ops, max_size=40))
def test_unvalidated_construction_matches_validated(seq: list) -> None:  # type: ignore[type-arg]
    from ifpx.schemas import codec

    fast, checked = BridgeCore(), BridgeCore(validate=True)
    for core in (fast, checked):
        core.apply_all([link(2, "tap0"), link(3, "tap1"), link(4, "tap2")])
    for op in seq:
        a, b = _apply_op(fast, op), _apply_op(checked, op)
        assert a == b
        assert [codec.dump(e) for e in a] == [codec.dump(e) for e in b]
    snap = fast.snapshot_wire()
    assert codec.dump(snap) == codec.dump(type(snap).model_validate(snap.model_dump()))


def test_device_routes_under_one_prefix_are_published_merged() -> None:
    core = core_with_taps()
    core.bind(0, core.links[2])
    core.bind(1, core.links[3])
    first = core.apply(route("10.9.0.0", 16, (None, 2, 1)))
    assert [len(e.nexthops) for e in first] == [1]  # type: ignore[attr-defined]
    both = core.apply(route("10.9.0.0", 16, (None, 3, 1)))
    assert kinds(both) == ["route_add"]
    assert [(h.ifindex, h.port_id) for h in both[0].nexthops] == [(2, 0), (3, 1)]  # type: ignore[attr-defined]
    assert core.redumps  # the new route may have replaced the other: a dump will tell
    gone = core.apply(route("10.9.0.0", 16, (None, 2, 1), deleted=True))
    assert kinds(gone) == ["route_add"]
    assert [h.ifindex for h in gone[0].nexthops] == [3]  # type: ignore[attr-defined]
    last = core.apply(route("10.9.0.0", 16, (None, 3, 1), deleted=True))
    assert kinds(last) == ["route_del"]
    assert core.snapshot().routes == []


def test_initial_route_load_streams_and_an_interrupted_one_is_swept_on_retry() -> None:
    core = core_with_taps()
    core.bind(0, core.links[2])

    def interrupted() -> Iterator[nlmsg.Record]:
        yield route("10.1.0.0", 16, ("10.0.0.2", 2, 1))
        yield route("10.2.0.0", 16, ("10.0.0.2", 2, 1))
        raise RuntimeError("dump interrupted")

    with core.fib.quiet():
        with pytest.raises(RuntimeError):
            core.fib.load_routes(interrupted())
        assert len(core.fib.routes) == 2  # what came before the interruption stays
        # The retry is a full reconcile: 10.2/16 went away meanwhile and is swept.
        core.reconcile("route", [route("10.1.0.0", 16, ("10.0.0.2", 2, 1))], AF4)
    assert [r.dst for r in core.snapshot().routes] == ["10.1.0.0/16"]


def test_routes_via_an_interface_after_a_bulk_load_and_live_changes() -> None:
    core = core_with_taps()
    core.bind(0, core.links[2])
    core.bind(1, core.links[3])
    with core.fib.quiet():
        core.fib.load_routes(
            [
                route("10.1.0.0", 16, ("10.0.0.2", 2, 1)),
                route("10.2.0.0", 16, ("10.0.0.2", 2, 1)),
                route("10.3.0.0", 16, ("10.0.1.2", 3, 1)),
            ]
        )
    assert len(core.fib.routes_via(2)) == 2 and len(core.fib.routes_via(3)) == 1
    core.apply(route("10.4.0.0", 16, ("10.0.0.2", 2, 1), ("10.0.1.2", 3, 1)))
    assert {k[2] for k in core.fib.routes_via(3)} == {"10.3.0.0", "10.4.0.0"}
    core.apply(route("10.4.0.0", 16, ("10.0.0.2", 2, 1), ("10.0.1.2", 3, 1), deleted=True))
    assert len(core.fib.routes_via(2)) == 2 and len(core.fib.routes_via(3)) == 1
    assert not core.fib.routes_via(9)
    out = core.apply(nlmsg.Link(True, 3, "tap1", 1500, None, False, False))
    assert [(e.kind, getattr(e, "dst", None)) for e in out if e.kind.startswith("route")] == [
        ("route_del", "10.3.0.0")
    ]
    assert not core.fib.routes_via(3) and len(core.fib.routes) == 2


def _plain(core: BridgeCore) -> dict[object, object]:
    """The mirror's routes with each group as its next hops (groups compare by identity)."""
    return {k: (v[0], v[1].hops, *v[2:]) for k, v in core.fib.routes.items()}


def test_bulk_load_equals_one_by_one_for_routes_through_objects() -> None:
    def nh(nid: int, gw: str) -> nlmsg.NhObject:
        return nlmsg.NhObject(False, nid, AF4, gw, 2, 0, False, False, ())

    objects = [nh(1, "10.0.0.2"), nh(2, "10.0.0.3"), nlmsg.NhObject(False, 3, 0, None, 0, 0, False,
               False, ((1, 1), (2, 3)))]  # fmt: skip
    records = []
    for i in range(40):
        nhid = (0, 1, 3, 9)[i % 4]  # 9: an object not (yet) known
        hops = ((f"10.0.1.{i % 3}", 2, 1, 0),) if nhid in (0, 9) else ()
        src = "192.0.2.1" if i % 5 == 0 else None
        records.append(
            nlmsg.Route(False, AF4, 254, f"10.{i}.0.0", 16, 0, 186, 1, 0, 20, hops, src, nhid)
        )
    records.append(route("10.3.0.0", 16, ("10.0.1.9", 2, 1)))  # a repeated key: replaced
    bulk, single = core_with_taps(), core_with_taps()
    for core in (bulk, single):
        core.bind(0, core.links[2])
        core.apply_all(objects)
    with bulk.fib.quiet():
        bulk.fib.load_routes(iter(records))
    with single.fib.quiet():
        single.apply_all(records)
    assert _plain(bulk) == _plain(single)
    assert bulk.snapshot() == single.snapshot()
    resolved = bulk.fib.routes[(AF4, 254, "10.2.0.0", 16, 0, 20)]
    assert [h[0] for h in resolved[1].hops] == ["10.0.0.2", "10.0.0.3"] and resolved[4] == 3


def test_routes_through_the_same_hops_keep_their_own_liveness_as_the_kernel_does() -> None:
    # The kernel keeps hop flags per fib_info: routes that differ in table, metric,
    # protocol or preferred source have their own. A hop it marked dead in one (its
    # link's last IPv4 address removed) is alive in a route made later in another.
    core = core_with_taps()
    core.bind(0, core.links[2])
    core.bind(1, core.links[3])
    hops = ((None, 2, 3, 0), (None, 3, 1, 0))
    dead = ((None, 2, 3, nlmsg.RTNH_F_DEAD), (None, 3, 1, 0))
    a = nlmsg.Route(False, AF4, 10, "192.168.10.0", 24, 0, 3, 1, 0, 10, hops)
    core.apply(a)
    core.reconcile("route", [a._replace(nexthops=dead)], AF4, 2)  # what the kernel says now
    b = nlmsg.Route(False, AF4, 254, "172.16.4.0", 24, 0, 3, 1, 0, 0, hops)
    (added,) = [e for e in core.apply(b) if isinstance(e, ev.RouteAdd)]
    assert [h.flags for h in added.nexthops] == [(), ()]
    flags = {r.dst: [h.flags for h in r.nexthops] for r in core.snapshot().routes if r.family == 4}
    assert flags == {"192.168.10.0/24": [("dead",), ()], "172.16.4.0/24": [(), ()]}
    # A route of the first one's scope shares its fib_info, so the kernel says it dead too.
    c = a._replace(dst="192.168.11.0", nexthops=dead)
    (added,) = [e for e in core.apply(c) if isinstance(e, ev.RouteAdd)]
    assert [h.flags for h in added.nexthops] == [("dead",), ()]
    assert (
        core.fib.routes[(AF4, 10, "192.168.10.0", 24, 0, 10)][1]
        is core.fib.routes[(AF4, 10, "192.168.11.0", 24, 0, 10)][1]
    )


def test_a_links_first_ipv4_address_asks_the_kernel_for_its_routes_again() -> None:
    # The kernel brings a link's dead IPv4 hops back when it gets an IPv4 address again
    # (fib_sync_up), without a route message.
    core = core_with_taps()
    dead = ((None, 2, 1, nlmsg.RTNH_F_DEAD), (None, 3, 1, 0))
    core.apply(nlmsg.Route(False, AF4, 10, "192.168.10.0", 24, 0, 3, 1, 0, 0, dead))
    core.apply(nlmsg.Addr(False, 2, AF6, "2001:db8::1", 64))
    core.apply(nlmsg.Addr(False, 4, AF4, "10.9.0.1", 24))  # no dead hop through eth0
    assert not core.redumps
    core.apply(nlmsg.Addr(False, 2, AF4, "10.0.0.1", 24))
    assert core.redumps == {Redump(AF4, 2)}
    core.redumps.clear()
    core.apply(nlmsg.Addr(False, 2, AF4, "10.0.1.1", 24))  # not the first: nothing moves
    assert not core.redumps


def test_a_prefix_on_hundreds_of_links_is_published_within_the_wire_limit() -> None:
    # Each link's fe80::/64 is published merged: a host with more links than a route may
    # carry next hops keeps the bound ports' hops and leaves out others from the end.
    core = BridgeCore()
    core.apply_all([carrier(i, f"x{i}", True, True) for i in range(2, 402)])
    core.bind(0, core.links[3])
    core.bind(1, core.links[401])
    for i in range(2, 402):
        core.apply(nlmsg.Route(False, AF6, 254, "fe80::", 64, 0, 2, 1, 0, 256, ((None, i, 1, 0),)))
    snap = core.snapshot()
    state = type(snap).model_validate(snap.model_dump())  # what a subscriber accepts
    [r] = [r for r in state.routes if r.dst == "fe80::/64"]
    assert len(r.nexthops) == ev.MAX_NEXTHOPS
    assert [h.port_id for h in r.nexthops if h.port_id is not None] == [0, 1]
    assert [h.ifindex for h in r.nexthops][:3] == [2, 3, 4]  # the kernel's order kept
    assert ev.trimmed((1, 2, 3), lambda h: False) == (1, 2, 3)
