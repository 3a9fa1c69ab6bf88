"""The bridge against the real kernel: iproute2 in a test netns, events on a real SUB socket."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator

import msgpack
import pytest
from netutil import EventTap, wait_bridge_equals_kernel

from ifpx.bridge.testing.harness import BridgeProcess, Netns, bridge
from ifpx.schemas import codec
from ifpx.schemas import commands as c
from ifpx.schemas import events as ev

pytestmark = pytest.mark.netns


@pytest.fixture
def tap(br: BridgeProcess) -> Iterator[EventTap]:
    t = EventTap(br.events)
    t.ready()
    yield t
    t.close()


def _bind(br: BridgeProcess, port: int, proxy: str) -> c.BindResult:
    result = br.result(c.Bind(port_id=port, proxy=proxy))
    assert isinstance(result, c.BindResult)
    return result


def test_every_event_kind_reaches_a_subscriber(ns: Netns, br: BridgeProcess, tap: EventTap) -> None:
    i0 = _bind(br, 0, "tap0").binding.ifindex
    i1 = _bind(br, 1, "tap1").binding.ifindex
    _bind(br, 2, "tap1")  # one proxy, two ports
    tap.expect("port_bound", port_id=2, proxy="tap1", ifindex=i1)

    ns.ip("link", "set", "tap0", "mtu", "1400")
    (e,) = tap.expect("mtu_change", mtu=1400)
    assert (e.port_id, e.proxy, e.ifindex) == (0, "tap0", i0)  # type: ignore[attr-defined]
    ns.ip("link", "set", "tap1", "address", "02:00:00:00:00:11")
    got = tap.expect("mac_change", mac="02:00:00:00:00:11")
    assert sorted(e.port_id for e in got) == [1, 2]  # type: ignore[attr-defined]
    ns.ip("link", "set", "tap0", "up")
    tap.expect("link_change", port_id=0, up=True, carrier=False)
    ns.ip("link", "set", "tap1", "up")
    assert len(tap.expect("link_change", up=True, proxy="tap1")) == 2

    ns.ip("addr", "add", "192.0.2.1/24", "dev", "tap0")
    tap.expect("addr_add", port_id=0, ip="192.0.2.1", prefixlen=24)
    ns.ip("addr", "add", "198.51.100.1/24", "dev", "tap1")
    assert len(tap.expect("addr_add", ip="198.51.100.1")) == 2
    ns.ip("-6", "addr", "add", "2001:db8:1::1/64", "dev", "tap0", "nodad")
    tap.expect("addr6_add", port_id=0, ip="2001:db8:1::1", prefixlen=64)

    ns.ip("route", "add", "203.0.113.0/24", "via", "192.0.2.254", "proto", "static", "metric", "7")
    (r,) = tap.expect("route_add", dst="203.0.113.0")
    assert isinstance(r, ev.RouteAdd)
    assert (r.prefixlen, r.proto, r.metric, r.table) == (24, 4, 7, 254)
    assert [(h.gateway, h.port_id, h.ifindex) for h in r.nexthops] == [("192.0.2.254", 0, i0)]
    ns.cmd(
        "route add 10.50.0.0/16 nexthop via 192.0.2.2 dev tap0"
        " nexthop via 198.51.100.2 dev tap1 weight 3"
    )
    (r,) = tap.expect("route_add", dst="10.50.0.0")
    assert isinstance(r, ev.RouteAdd)
    assert [(h.gateway, h.port_id, h.weight) for h in r.nexthops] == [
        ("192.0.2.2", 0, 1),
        ("198.51.100.2", 1, 3),
    ]
    ns.ip("route", "del", "203.0.113.0/24")
    tap.expect("route_del", dst="203.0.113.0", prefixlen=24)
    ns.ip("-6", "route", "add", "2001:db8:99::/48", "via", "2001:db8:1::2")
    (r6,) = tap.expect("route6_add", dst="2001:db8:99::", prefixlen=48)
    assert isinstance(r6, ev.Route6Add) and r6.nexthops[0].gateway == "2001:db8:1::2"
    ns.ip("-6", "route", "del", "2001:db8:99::/48")
    tap.expect("route6_del", dst="2001:db8:99::")

    ns.ip("neigh", "add", "192.0.2.2", "lladdr", "02:00:00:00:00:02", "dev", "tap0")
    tap.expect("neigh_add", port_id=0, ip="192.0.2.2", mac="02:00:00:00:00:02", state="permanent")
    ns.ip("neigh", "del", "192.0.2.2", "dev", "tap0")
    tap.expect("neigh_del", port_id=0, ip="192.0.2.2")
    ns.ip("-6", "neigh", "add", "2001:db8:1::2", "lladdr", "02:00:00:00:00:03", "dev", "tap0")
    tap.expect("neigh6_add", port_id=0, ip="2001:db8:1::2")
    ns.ip("-6", "neigh", "del", "2001:db8:1::2", "dev", "tap0")
    tap.expect("neigh6_del", port_id=0, ip="2001:db8:1::2")
    ns.ip("-6", "addr", "del", "2001:db8:1::1/64", "dev", "tap0")
    tap.expect("addr6_del", port_id=0, ip="2001:db8:1::1")

    # Link down: the kernel drops the IPv4 routes through tap1 without telling anyone.
    ns.ip("link", "set", "tap1", "down")
    assert len(tap.expect("link_change", up=False, proxy="tap1")) == 2
    tap.expect("route_del", dst="198.51.100.0")
    ns.ip("addr", "del", "192.0.2.1/24", "dev", "tap0")
    tap.expect("addr_del", port_id=0, ip="192.0.2.1")
    wait_bridge_equals_kernel(br)
    status = br.result(c.Status())
    assert isinstance(status, c.StatusResult) and status.counters["compensations"] >= 1


def test_bind_while_running_replays_the_proxy(ns: Netns, br: BridgeProcess, tap: EventTap) -> None:
    ns.ip("link", "set", "tap1", "up")
    ns.ip("addr", "add", "198.51.100.1/24", "dev", "tap1")
    ns.ip("route", "add", "10.60.0.0/16", "via", "198.51.100.2")
    ns.ip("neigh", "add", "198.51.100.2", "lladdr", "02:00:00:00:00:02", "dev", "tap1")
    wait_bridge_equals_kernel(br)
    tap.clear()
    assert tap.events == []
    _bind(br, 5, "tap1")
    tap.expect("neigh_add", port_id=5)
    kinds = [e.kind for e in tap.events]
    assert kinds[0] == "port_bound"
    for kind in ("mac_change", "mtu_change", "link_change", "addr_add", "route_add"):
        assert kind in kinds
    # Idempotent: a second bind changes nothing and publishes nothing.
    tap.clear()
    again = _bind(br, 5, "tap1")
    assert not again.changed
    result = br.result(c.Unbind(port_id=5))
    assert isinstance(result, c.UnbindResult) and [b.port_id for b in result.removed] == [5]
    tap.expect("port_unbound", port_id=5)
    assert not [e for e in tap.events if e.kind == "port_bound"]


def test_rename_delete_and_recreate(ns: Netns, br: BridgeProcess, tap: EventTap) -> None:
    old_ifindex = _bind(br, 0, "tap0").binding.ifindex
    ns.ip("link", "set", "tap0", "name", "wan0")
    tap.expect("proxy_renamed", port_id=0, proxy="wan0", old_name="tap0")
    ns.ip("link", "set", "wan0", "name", "tap0")
    tap.expect("proxy_renamed", port_id=0, proxy="tap0", old_name="wan0")
    ns.ip("addr", "add", "192.0.2.1/24", "dev", "tap0")
    tap.expect("addr_add", port_id=0)
    ns.ip("tuntap", "del", "dev", "tap0", "mode", "tap", "multi_queue")
    tap.expect("proxy_gone", port_id=0, ifindex=old_ifindex)
    listing = br.result(c.ListBindings())
    assert isinstance(listing, c.ListBindingsResult)
    assert [(b.port_id, b.state) for b in listing.bindings] == [(0, "gone")]
    ns.add_tap("tap0")
    (back,) = tap.expect("proxy_back", port_id=0, old_ifindex=old_ifindex)
    assert back.ifindex != old_ifindex  # type: ignore[attr-defined]
    tap.expect("mtu_change", port_id=0, ifindex=back.ifindex)  # type: ignore[attr-defined]
    # The old interface's address never shows up on the new one.
    snap = wait_bridge_equals_kernel(br)
    assert snap.ports[0].addrs == []


def test_restart_keeps_bindings_and_initial_dump_ends_in_cfg_done(ns: Netns) -> None:
    from ifpx.subscribers import Subscriber

    ns.ip("link", "set", "tap0", "mtu", "1400")
    ns.ip("addr", "add", "192.0.2.1/24", "dev", "tap0")
    with bridge(ns) as br:
        _bind(br, 3, "tap0")
        state_file = br.state
        text = state_file.read_text()
        assert '"port_id": 3' in text
        workdir = br.workdir
        br.stop()
        restarted = BridgeProcess(ns, workdir)
        restarted.start()
        try:
            listing = restarted.result(c.ListBindings())
            assert isinstance(listing, c.ListBindingsResult)
            assert [(b.port_id, b.proxy, b.state) for b in listing.bindings] == [
                (3, "tap0", "active")
            ]
            with Subscriber(restarted.events, restarted.control) as sub:
                sub.sync(timeout=5)
                events = sub.poll(max_events=100)
                assert events[-1].kind == "cfg_done"
                assert (
                    ev.MtuChange(
                        port_id=3, proxy="tap0", ifindex=listing.bindings[0].ifindex or 0, mtu=1400
                    )
                    in events
                )
                assert sub.state.ports[3].addrs == {"192.0.2.1/24"}
        finally:
            restarted.stop()


def test_create_and_destroy_proxy(ns: Netns, br: BridgeProcess, tap: EventTap) -> None:
    made = br.result(c.CreateProxy(name="px9", mac="02:00:00:00:00:99", mtu=1504))
    assert isinstance(made, c.CreateProxyResult) and made.created
    details = ns.ip("-d", "link", "show", "px9")
    assert "multi_queue" in details and "persist on" in details and "mtu 1504" in details
    _bind(br, 9, "px9")  # bindable at once, without waiting for the listener
    tap.expect("mac_change", port_id=9, mac="02:00:00:00:00:99")
    gone = br.result(c.DestroyProxy(name="px9"))
    assert isinstance(gone, c.DestroyProxyResult) and [
        b.port_id for b in gone.removed_bindings
    ] == [9]
    assert "px9" not in ns.ip("link", "show")
    reply = br.request(c.DestroyProxy(name="lo"))
    assert isinstance(reply, c.ErrorReply)  # lo is not a tap: refused
    assert reply.error.code in (c.ErrorCode.INVALID_VALUE, c.ErrorCode.NO_SUCH_PROXY)
    # A bound interface that is not a tap: refused, and its binding untouched.
    ns.cmd("link add vpx0 type veth peer name vpx1")
    _bind(br, 5, "vpx0")
    refused = br.request(c.DestroyProxy(name="vpx0"))
    assert isinstance(refused, c.ErrorReply) and refused.error.code == c.ErrorCode.INVALID_VALUE
    listing = br.result(c.ListBindings())
    assert isinstance(listing, c.ListBindingsResult)
    assert [(b.port_id, b.proxy) for b in listing.bindings] == [(5, "vpx0")]
    assert "vpx0" in ns.ip("link", "show")
    # A tap made by hand (or by net_tap) is reused as it is, and removed only when forced.
    again = br.result(c.CreateProxy(name="tap1"))
    assert isinstance(again, c.CreateProxyResult) and not again.created
    other_mtu = br.request(c.CreateProxy(name="tap1", mtu=1400))
    assert isinstance(other_mtu, c.ErrorReply)
    assert (
        other_mtu.error.code == c.ErrorCode.ALREADY_EXISTS and "mtu 1500" in other_mtu.error.message
    )
    assert "mtu 1500" in ns.ip("link", "show", "tap1")  # nothing changed
    by_hand = br.request(c.DestroyProxy(name="tap1"))
    assert isinstance(by_hand, c.ErrorReply) and "not made by ifpx" in by_hand.error.message
    assert "tap1" in ns.ip("link", "show")
    assert isinstance(br.result(c.DestroyProxy(name="tap1", force=True)), c.DestroyProxyResult)
    assert "tap1" not in ns.ip("link", "show")


def test_random_iproute2_operations_keep_bridge_equal_to_kernel(
    ns: Netns, br: BridgeProcess
) -> None:
    _bind(br, 0, "tap0")
    _bind(br, 1, "tap1")
    _bind(br, 2, "tap1")
    rng = random.Random(20261124)
    ns.ip("link", "set", "tap0", "up")
    ns.ip("link", "set", "tap1", "up")
    ns.ip("addr", "add", "10.0.0.1/24", "dev", "tap0")
    ns.ip("addr", "add", "10.1.0.1/24", "dev", "tap1")
    for _ in range(120):
        dev = rng.choice(["tap0", "tap1"])
        net = rng.randrange(1, 40)
        choice = rng.randrange(10)
        args: list[str]
        if choice == 0:
            args = ["link", "set", dev, "mtu", str(rng.choice([1280, 1400, 1500, 9000]))]
        elif choice == 1:
            args = ["link", "set", dev, "address", f"02:00:00:00:00:{rng.randrange(256):02x}"]
        elif choice == 2:
            args = ["link", "set", dev, rng.choice(["up", "down"])]
        elif choice == 3:
            args = [
                "addr",
                rng.choice(["add", "del"]),
                f"10.{9 if dev == 'tap0' else 8}.{net}.1/24",
                "dev",
                dev,
            ]
        elif choice in (4, 5):
            args = ["route", "replace", f"172.16.{net}.0/24", "dev", dev]
        elif choice == 6:
            args = (
                f"route replace 172.17.{net}.0/24 nexthop via 10.0.0.2 dev tap0"
                f" nexthop via 10.1.0.2 dev tap1 weight {rng.randrange(1, 5)}"
            ).split()
        elif choice == 7:
            args = ["route", "del", f"172.1{rng.randrange(6, 8)}.{net}.0/24"]
        elif choice == 8:
            args = [
                "neigh",
                "replace",
                f"10.0.0.{net}",
                "lladdr",
                f"02:00:00:00:01:{net:02x}",
                "dev",
                "tap0",
            ]
        else:
            args = [
                "-6",
                "addr",
                rng.choice(["add", "del"]),
                f"2001:db8:{net}::1/64",
                "dev",
                dev,
                "nodad",
            ]
        ns.ip(*args, check=False)  # some operations are refused (link down, missing route)
        if rng.randrange(4) == 0:
            ns.ip("link", "set", dev, "up")
    ns.ip("link", "set", "tap0", "up")
    ns.ip("link", "set", "tap1", "up")
    ns.ip("addr", "replace", "10.0.0.1/24", "dev", "tap0")
    ns.ip("addr", "replace", "10.1.0.1/24", "dev", "tap1")
    ns.cmd(
        "route replace 172.18.0.0/16 nexthop via 10.0.0.2 dev tap0 nexthop via 10.1.0.2 dev tap1"
    )
    state = wait_bridge_equals_kernel(br)
    assert state.routes and state.ports and len(state.ports) == 3


def test_garbage_never_kills_the_bridge(br: BridgeProcess) -> None:
    bad: list[bytes | list[bytes]] = [
        b"",
        b"\xc1",
        b"\xff" * 100,
        msgpack.packb([1, 2, 3]),
        msgpack.packb({"v": 1}),
        msgpack.packb({"v": 1, "cmd": "bind", "port_id": -1, "proxy": "tap0"}),
        msgpack.packb({"v": 1, "cmd": "bind", "port_id": 1, "proxy": "no-such-if"}),
        msgpack.packb({"v": 1, "cmd": "nope"}),
        msgpack.packb({"v": 2, "cmd": "status"}),
        [b"two", b"frames"],
    ]
    codes = []
    for payload in bad:
        reply = codec.decode_reply(br.raw(payload, timeout=5))
        assert isinstance(reply, c.ErrorReply)
        codes.append(reply.error.code)
    assert c.ErrorCode.NO_SUCH_PROXY in codes and c.ErrorCode.UNKNOWN_COMMAND in codes
    # Larger than a request may be: a typed error at once, and the bridge goes on.
    too_big = codec.decode_reply(br.raw(b"\x00" * (codec.MAX_REQUEST_BYTES + 10), timeout=5))
    assert isinstance(too_big, c.ErrorReply) and too_big.error.code == c.ErrorCode.TOO_LARGE
    # Larger than the socket reads at all: the connection is dropped, the bridge goes on.
    with pytest.raises(TimeoutError):
        br.raw(b"\x00" * (codec.MAX_REQUEST_FRAME + 10), timeout=1)
    status = br.result(c.Status())
    assert isinstance(status, c.StatusResult) and status.counters["commands_failed"] >= len(bad)


def test_a_second_bridge_on_the_same_endpoint_refuses_to_start(
    ns: Netns, br: BridgeProcess
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ifpx.subscribers", "bridge", "--netns", ns.name,
         "--events", br.events, "--control", br.control, "--state", str(br.workdir / "other.json")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2 and "belongs to a running bridge" in proc.stderr
    assert isinstance(br.result(c.Status()), c.StatusResult)


def test_sub_topic_filter_sees_only_its_topic(ns: Netns, br: BridgeProcess) -> None:
    routes = EventTap(br.events, topics=("route", "hb"))
    try:
        routes.ready()
        _bind(br, 0, "tap0")
        ns.ip("link", "set", "tap0", "up")
        ns.ip("route", "add", "10.77.0.0/16", "dev", "tap0")
        routes.expect("route_add", dst="10.77.0.0")
        got = [m for m in routes.messages if m.topic != "hb"]
        assert {m.topic for m in got} == {"route"}
        assert [m.tseq for m in got] == list(range(1, len(got) + 1))
        assert len({m.seq for m in got}) == len(got)
    finally:
        routes.close()


def test_tcp_endpoints_stay_in_the_callers_namespace(ns: Netns) -> None:
    # The bridge listens to ns's netlink, but subscribers reach it from here over tcp.
    import socket as pysocket

    ports = []
    for _ in range(2):
        with pysocket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    events, control = (f"tcp://127.0.0.1:{p}" for p in ports)
    with bridge(ns, ["--events", events, "--control", control, "--insecure"]) as br:
        tap = EventTap(br.events)
        try:
            tap.ready()
            _bind(br, 0, "tap0")
            ns.ip("link", "set", "tap0", "mtu", "1300")
            tap.expect("mtu_change", port_id=0, mtu=1300)
        finally:
            tap.close()
        made = br.result(c.CreateProxy(name="px5"))
        assert isinstance(made, c.CreateProxyResult)
        assert "px5" in ns.ip("link", "show")  # made in the bridge's netns, not here


def test_two_bridges_side_by_side(ns: Netns) -> None:
    from ifpx.bridge.testing.harness import netns

    with netns("ifpx-test-b") as other, bridge(ns) as a, bridge(other) as b:
        other.add_tap("tapz")
        _bind(a, 0, "tap0")
        _bind(b, 0, "tapz")
        la, lb = a.result(c.ListBindings()), b.result(c.ListBindings())
        assert isinstance(la, c.ListBindingsResult) and isinstance(lb, c.ListBindingsResult)
        assert [x.proxy for x in la.bindings] == ["tap0"]
        assert [x.proxy for x in lb.bindings] == ["tapz"]
