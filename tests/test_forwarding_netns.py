"""Forwarding truth against the real kernel: next-hop objects, next-hop liveness, drop routes.

Each scenario checks three things after every change: the events a subscriber saw, the
bridge's snapshot against the kernel's own view (``ip -j``, next-hop objects resolved
through ``ip nexthop``), and a live Python replica's longest-prefix match, which must
forward as the kernel does.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from ctools import CSubscriber, build, have_toolchain, state_of
from netutil import (
    EventTap,
    bridge_on_veths,
    counters,
    wait_bridge_equals_kernel,
)

from ifpx.bridge.testing.harness import BridgeProcess, Netns, wait_for
from ifpx.schemas import commands as c
from ifpx.schemas import events as ev
from ifpx.subscribers import Flow, Subscriber

pytestmark = pytest.mark.netns


@pytest.fixture
def tap(vbr: BridgeProcess) -> Iterator[EventTap]:
    t = EventTap(vbr.events)
    t.ready()
    yield t
    t.close()


def _hops(route: ev.EventBase) -> list[tuple[str | None, int | None, int, tuple[str, ...]]]:
    assert isinstance(route, ev.RouteAdd | ev.Route6Add)
    return [(h.gateway, h.port_id, h.weight, h.flags) for h in route.nexthops]


def _converged(br: BridgeProcess, sub: Subscriber) -> None:
    """The bridge equals the kernel, and the subscriber's replica equals the bridge."""
    want = wait_bridge_equals_kernel(br)

    def same() -> bool:
        sub.poll(max_events=100_000)
        return sub.state.to_state() == want

    wait_for(same, 10, interval=0.05, what="the replica to equal the bridge")


def _forwards(sub: Subscriber, ip: str) -> tuple[str, list[int | None]] | None:
    found = sub.state.lookup(ip)
    return None if found is None else (found.type, [h[2] for h in found.nexthops])


@pytest.mark.parametrize("compat", [0, 1])
def test_routes_through_nexthop_objects(
    vns: Netns, vbr: BridgeProcess, tap: EventTap, sub: Subscriber, compat: int
) -> None:
    # compat 0: route messages carry only the object's id (what large deployments set).
    sysctl = ["sysctl", "-qw", f"net.ipv4.nexthop_compat_mode={compat}"]
    subprocess.run(["ip", "netns", "exec", vns.name, *sysctl], check=True, timeout=30)
    vns.batch(
        [
            "nexthop add id 1 via 10.1.0.2 dev v0",
            "nexthop add id 2 via 10.2.0.2 dev v1",
            "nexthop add id 3 group 1/2,3",
            "nexthop add id 9 blackhole",
            "route add 172.16.3.0/24 nhid 3",
            "route add 172.16.9.0/24 nhid 9",
        ]
    )
    (r,) = tap.expect("route_add", dst="172.16.3.0")
    assert _hops(r) == [("10.1.0.2", 0, 1, ()), ("10.2.0.2", 1, 3, ())]
    (b,) = tap.expect("route_add", dst="172.16.9.0")
    assert isinstance(b, ev.RouteAdd) and (b.type, b.nexthops) == ("blackhole", [])
    _converged(vbr, sub)
    assert _forwards(sub, "172.16.3.1") == ("unicast", [0, 1])
    assert _forwards(sub, "172.16.9.1") == ("blackhole", [])

    # A replaced object republishes every route through it.
    vns.cmd("nexthop replace id 1 via 10.1.0.3 dev v0")
    (r,) = tap.expect("route_add", dst="172.16.3.0")
    assert _hops(r)[0][0] == "10.1.0.3"
    _converged(vbr, sub)

    # A member deleted: the kernel shrinks the group without a word about it.
    vns.cmd("nexthop del id 2")
    (r,) = tap.expect("route_add", dst="172.16.3.0")
    assert _hops(r) == [("10.1.0.3", 0, 1, ())]
    _converged(vbr, sub)

    # The last member deleted: group and route go, the route without RTM_DELROUTE.
    vns.cmd("nexthop del id 1")
    tap.expect("route_del", dst="172.16.3.0")
    _converged(vbr, sub)
    assert _forwards(sub, "172.16.3.1") is None
    status = vbr.result(c.Status())
    assert isinstance(status, c.StatusResult) and status.counters["compensations"] >= 1

    # A late joiner's snapshot holds the object-resolved routes too.
    vns.batch(["nexthop add id 4 via 10.2.0.2 dev v1", "route add 172.16.4.0/24 nhid 4"])
    tap.expect("route_add", dst="172.16.4.0")
    with Subscriber(vbr.events, vbr.control) as late:
        late.sync(timeout=10)
        assert late.state.to_state() == wait_bridge_equals_kernel(vbr)
        assert _forwards(late, "172.16.4.1") == ("unicast", [1])
        assert _forwards(late, "172.16.9.1") == ("blackhole", [])


def test_dead_and_linkdown_hops_follow_the_links(
    vns: Netns, vbr: BridgeProcess, tap: EventTap, sub: Subscriber
) -> None:
    vns.batch(
        [
            "route add 172.16.4.0/24 nexthop via 10.1.0.2 dev v0 nexthop via 10.2.0.2 dev v1",
            "route add 2001:db8:4::/48 nexthop via 2001:db8:1::2 dev v0"
            " nexthop via 2001:db8:2::2 dev v1",
            "nexthop add id 7 via 10.2.0.2 dev v1",
            "route add 172.16.7.0/24 nhid 7",
        ]
    )
    tap.expect("route_add", dst="172.16.4.0")
    tap.expect("route6_add", dst="2001:db8:4::")
    tap.expect("route_add", dst="172.16.7.0")
    _converged(vbr, sub)
    assert _forwards(sub, "172.16.4.1") == ("unicast", [0, 1])

    # Carrier lost on v1: its hops are linkdown (still used, the kernel's default), and the
    # kernel flushes the next-hop object through v1, and the route using it, silently.
    vns.cmd("link set w1 down")
    (r,) = tap.expect("route_add", dst="172.16.4.0")
    assert _hops(r)[1][3] == ("linkdown",)
    (r6,) = tap.expect("route6_add", dst="2001:db8:4::")
    assert _hops(r6)[1][3] == ("linkdown",)
    tap.expect("route_del", dst="172.16.7.0")
    _converged(vbr, sub)
    assert _forwards(sub, "172.16.4.1") == ("unicast", [0, 1])
    found = sub.state.lookup("172.16.4.1", ignore_linkdown=True)
    assert found is not None and [h[2] for h in found.nexthops] == [0]

    # Administratively down: dead, never used.
    vns.cmd("link set v1 down")
    (r,) = tap.expect("route_add", dst="172.16.4.0")
    assert _hops(r)[1][3] == ("dead", "linkdown")
    _converged(vbr, sub)
    assert _forwards(sub, "172.16.4.1") == ("unicast", [0])
    assert _forwards(sub, "2001:db8:4::1") == ("unicast", [0])

    # Back up with carrier: alive again, again without a route message from the kernel.
    vns.cmd("link set v1 up")
    vns.cmd("link set w1 up")
    _converged(vbr, sub)
    assert _forwards(sub, "172.16.4.1") == ("unicast", [0, 1])
    assert _forwards(sub, "2001:db8:4::1") == ("unicast", [0, 1])


def test_drop_routes_and_prefsrc_are_published(
    vns: Netns, vbr: BridgeProcess, tap: EventTap, sub: Subscriber
) -> None:
    vns.batch(
        [
            "route add 172.16.0.0/16 via 10.1.0.2 src 10.1.0.1",
            "route add blackhole 172.16.5.0/24",
            "route add unreachable 172.16.6.0/24",
            "route add prohibit 172.16.7.0/24 table 100",
            "route add throw 172.16.8.0/24 table 100",
            "route add blackhole 2001:db8:5::/48",
            "route add prohibit 2001:db8:6::/48",
        ]
    )
    (r,) = tap.expect("route_add", dst="172.16.0.0")
    assert isinstance(r, ev.RouteAdd) and r.prefsrc == "10.1.0.1"
    for dst, kind, rtype, table in [
        ("172.16.5.0", "route_add", "blackhole", 254),
        ("172.16.6.0", "route_add", "unreachable", 254),
        ("172.16.7.0", "route_add", "prohibit", 100),
        ("172.16.8.0", "route_add", "throw", 100),
        ("2001:db8:5::", "route6_add", "blackhole", 254),
        ("2001:db8:6::", "route6_add", "prohibit", 254),
    ]:
        (d,) = tap.expect(kind, dst=dst)
        assert isinstance(d, ev.RouteAdd | ev.Route6Add)
        assert (d.type, d.table, d.nexthops) == (rtype, table, [])  # IPv6 ones say "dev lo"
    _converged(vbr, sub)
    # Inside the /16 a worker would otherwise forward through port 0: it must drop.
    assert _forwards(sub, "172.16.1.1") == ("unicast", [0])
    assert _forwards(sub, "172.16.5.1") == ("blackhole", [])
    assert _forwards(sub, "172.16.6.1") == ("unreachable", [])
    assert _forwards(sub, "2001:db8:6::1") == ("prohibit", [])
    found = sub.state.lookup("172.16.8.1", table=100)
    assert found is not None and found.type == "throw"

    vns.cmd("route del blackhole 172.16.5.0/24")
    tap.expect("route_del", dst="172.16.5.0")
    _converged(vbr, sub)
    assert _forwards(sub, "172.16.5.1") == ("unicast", [0])


@pytest.mark.skipif(
    not have_toolchain("libzmq", "msgpack"),
    reason="needs cc, make, pkg-config, libzmq3-dev and libmsgpack-dev (apt)",
)
def test_c_subscriber_holds_what_the_kernel_forwards_with(
    vns: Netns, vbr: BridgeProcess, sub: Subscriber, tmp_path: Path
) -> None:
    tools = build(tmp_path / "cbuild")
    csub = CSubscriber(tools / "ifpx_sub", tmp_path, vbr.events, vbr.control)
    try:

        def both_converged() -> None:
            _converged(vbr, sub)
            wait_for(
                lambda: state_of(csub.report()) == sub.state.to_state(),
                20,
                interval=0.1,
                what="the C replica to equal the Python one",
            )

        subprocess.run(
            ["ip", "netns", "exec", vns.name, "sysctl", "-qw", "net.ipv4.nexthop_compat_mode=0"],
            check=True,
            timeout=30,
        )
        vns.batch(
            [
                "nexthop add id 1 via 10.1.0.2 dev v0",
                "nexthop add id 2 via 10.2.0.2 dev v1",
                "nexthop add id 3 group 1,2/2",
                "route add 172.16.3.0/24 nhid 3 src 10.1.0.1",
                "route add 172.16.4.0/24 nexthop via 10.1.0.2 dev v0 nexthop via 10.2.0.2 dev v1",
                "route add blackhole 172.16.3.128/25",
                "route add prohibit 2001:db8:6::/48",
            ]
        )
        both_converged()
        vns.cmd("link set v1 down")  # dead hops, a flushed object, a shrunken group
        both_converged()
        vns.cmd("nexthop replace id 1 via 10.1.0.9 dev v0")
        both_converged()
        # A late C joiner takes all of it from the snapshot.
        late = CSubscriber(tools / "ifpx_sub", tmp_path, vbr.events, vbr.control)
        try:
            assert state_of(late.report()) == sub.state.to_state()
        finally:
            late.close()
    finally:
        csub.close()


_ERRORS = {
    "Invalid argument": "blackhole",
    "Network is unreachable": "unreachable",
    "Permission denied": "prohibit",
}
"""What ``ip route get`` says for each drop, by the route (or rule) type that makes it."""


def _kernel_decision(ns: Netns, args: list[str]) -> tuple[str, str | None]:
    """(type, gateway) of the kernel's own lookup (``ip route get``)."""
    proc = subprocess.run(
        ["ip", "-n", ns.name, "-j", "route", "get", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if proc.returncode:
        return _ERRORS[proc.stderr.strip().removeprefix("RTNETLINK answers: ")], None
    (found,) = json.loads(proc.stdout)
    return "unicast", found.get("gateway")


def test_policy_rules_choose_the_table_as_the_kernel_does(
    vns: Netns, vbr: BridgeProcess, tap: EventTap, sub: Subscriber
) -> None:
    vns.batch(
        [
            "route add 172.30.0.0/16 via 10.1.0.2",
            "route add 172.30.0.0/16 via 10.2.0.2 table 100",
            "route add throw 172.30.9.0/24 table 100",
            "route add default via 10.1.0.9",
            "rule add pref 100 from 10.2.0.1 lookup 100",
            "rule add pref 110 fwmark 0x10/0xff lookup 100",
            "rule add pref 120 to 172.30.66.0/24 prohibit",
            "rule add pref 130 ipproto tcp dport 22 blackhole",
            "rule add pref 140 fwmark 0x20 goto 160",
            "rule add pref 150 fwmark 0x20 unreachable",
            "rule add pref 160 fwmark 0x20 lookup 100",
            "rule add pref 170 not to 172.30.0.0/16 lookup main suppress_prefixlength 0",
        ]
    )
    (r,) = tap.expect("rule_add", priority=110)
    assert isinstance(r, ev.RuleAdd) and (r.fwmark, r.fwmask, r.table) == (16, 255, 100)
    _converged(vbr, sub)
    flows = [
        (["172.30.1.1"], Flow("172.30.1.1")),
        (["172.30.1.1", "from", "10.2.0.1"], Flow("172.30.1.1", src="10.2.0.1")),
        (["172.30.9.1", "from", "10.2.0.1"], Flow("172.30.9.1", src="10.2.0.1")),  # throw
        (["172.30.1.1", "mark", "0x10"], Flow("172.30.1.1", fwmark=0x10)),
        (["172.30.1.1", "mark", "0x110"], Flow("172.30.1.1", fwmark=0x110)),
        (["172.30.66.1"], Flow("172.30.66.1")),
        (["172.30.1.1", "ipproto", "tcp", "dport", "22"], Flow("172.30.1.1", ip_proto=6, dport=22)),
        (["172.30.1.1", "ipproto", "tcp", "dport", "23"], Flow("172.30.1.1", ip_proto=6, dport=23)),
        (["172.30.1.1", "mark", "0x20"], Flow("172.30.1.1", fwmark=0x20)),  # goto past 150
        (["192.0.2.1"], Flow("192.0.2.1")),  # the default route, after rule 170 passed
    ]
    for args, flow in flows:
        found = sub.state.resolve(flow)
        ours = ("unicast", None) if found is None else (found.type, None)
        if found is not None and found.type == "unicast":
            ours = ("unicast", found.nexthops[0][0])
        assert ours == _kernel_decision(vns, args), (args, found)
    # Rules go as they came; a late joiner has them from the snapshot.
    vns.cmd("rule del pref 120")
    tap.expect("rule_del", priority=120)
    _converged(vbr, sub)
    assert sub.state.resolve(Flow("172.30.66.1")) == sub.state.lookup("172.30.66.1")
    with Subscriber(vbr.events, vbr.control) as late:
        late.sync(timeout=10)
        assert late.state.rules == sub.state.rules


def _kernel_port(ns: Netns, ip: str) -> int | None:
    """The port the kernel forwards ``ip`` through (``ip route get``): v<i> is port i."""
    out = subprocess.run(
        ["ip", "-n", ns.name, "-j", "route", "get", ip],
        capture_output=True,
        text=True,
        check=True,
    )
    dev = json.loads(out.stdout)[0].get("dev", "")
    return int(dev[1:]) if dev.startswith("v") else None


def _before_the_marker(tap: EventTap, marker: int, dst: str) -> list[ev.EventBase]:
    """The flat form's events for ``dst`` that came before a marker route
    (172.16.<marker>.0/24) the caller added after a change: that change's, or none."""
    tap.expect("route_add", dst=f"172.16.{marker}.0")
    routes = [e for e in tap.events if isinstance(e, ev.RouteAdd | ev.RouteDel)]
    before: list[ev.EventBase] = [e for e in routes if e.dst == dst]
    tap.events.clear()
    return before


def test_ipv4_routes_appended_under_one_key_forward_by_the_first(
    vns: Netns, vbr: BridgeProcess, tap: EventTap, sub: Subscriber
) -> None:
    dst, ip = "172.16.9.0/24", "172.16.9.1"

    def agree(port: int) -> None:
        _converged(vbr, sub)
        assert _kernel_port(vns, ip) == port
        assert _forwards(sub, ip) == ("unicast", [port])

    markers = iter(range(90, 100))

    def change(line: str) -> list[ev.EventBase]:
        marker = next(markers)
        vns.batch([line, f"route add 172.16.{marker}.0/24 via 10.1.0.2"])
        return _before_the_marker(tap, marker, "172.16.9.0")

    vns.cmd(f"route add {dst} via 10.1.0.2")
    tap.expect("route_add", dst="172.16.9.0")
    agree(0)
    # Appended behind the first: the kernel still forwards through v0; nothing to say.
    assert change(f"route append {dst} via 10.2.0.2") == []
    agree(0)
    # Prepended: the new first forwards.
    (r,) = change(f"route prepend {dst} via 10.2.0.3")
    assert _hops(r) == [("10.2.0.3", 1, 1, ())]
    agree(1)
    # A hidden one deleted: nothing changes.
    assert change(f"route del {dst} via 10.1.0.2") == []
    agree(1)
    # The first deleted: the next forwards, in one change.
    (r,) = change(f"route del {dst} via 10.2.0.3")
    assert r.kind == "route_add" and _hops(r) == [("10.2.0.2", 1, 1, ())]
    agree(1)
    # The first's link goes down: the kernel drops it silently, the hidden one forwards.
    vns.cmd(f"route append {dst} via 10.1.0.2")
    vns.cmd("link set v1 down")
    (r,) = tap.expect("route_add", dst="172.16.9.0")
    assert _hops(r) == [("10.1.0.2", 0, 1, ())]
    agree(0)
    # A bridge started now finds the same in the kernel's dump (first per key wins).
    vns.cmd("link set v1 up")
    vns.cmd(f"route append {dst} via 10.2.0.2")
    vns.cmd(f"route prepend {dst} via 10.2.0.4")
    agree(1)
    with bridge_on_veths(vns) as second:
        state = wait_bridge_equals_kernel(second)
        assert state == wait_bridge_equals_kernel(vbr)
        got = [r for r in state.routes if r.dst == dst]
        assert [h.gateway for h in got[0].nexthops] == ["10.2.0.4"]
        assert counters(vbr)["routes_hidden"] == counters(second)["routes_hidden"] == 2
