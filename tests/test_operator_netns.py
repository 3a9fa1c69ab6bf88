"""What an operator does around bound proxies, against the real kernel: each a divergence
the kernel-differential walk (tests/walk.py) found, kept as its own regression test.

After each change the bridge's snapshot must equal the kernel's own view and a live
replica must equal the bridge (and forward as the kernel does where it is asked).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from netutil import (
    EventTap,
    bridge_equals_kernel,
    bridge_on_veths,
    describe_difference,
    veth_pairs,
    wait_bridge_equals_kernel,
)

from ifpx.bridge.testing.harness import BridgeProcess, Netns, netns, wait_for
from ifpx.schemas import commands as c
from ifpx.subscribers import Flow, Subscriber

pytestmark = pytest.mark.netns


def _converged(br: BridgeProcess, sub: Subscriber, timeout: float = 10.0) -> None:
    """The kernel, the bridge and the replica agree at one moment (the kernel may still
    be moving when it first looks settled: a lost carrier flags hops up to 1 s later)."""
    deadline = time.monotonic() + timeout
    while True:
        same, want, kernel = bridge_equals_kernel(br)
        sub.poll(max_events=100_000)
        got = sub.state.to_state()
        if same and got == want:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                describe_difference(want, kernel) if not same else describe_difference(got, want)
            )
        time.sleep(0.05)


def _enslave_and_release(vns: Netns, br: BridgeProcess, sub: Subscriber, release: str) -> None:
    vns.batch(["link add br1 type bridge", "link set br1 up", "link set v0 master br1"])
    vns.cmd(release)
    wait_bridge_equals_kernel(br)
    vns.ip("link", "del", "br1", check=False)  # for the next round


def test_a_port_enslaved_to_a_linux_bridge_and_released_keeps_its_state(
    vns: Netns, vbr: BridgeProcess, sub: Subscriber
) -> None:
    vns.batch(
        [
            "neigh add 10.1.0.7 lladdr 02:00:00:00:00:07 dev v0",
            "route add 2001:db8:f0::/48 via 2001:db8:1::fe dev v0",
        ]
    )
    _converged(vbr, sub)
    tap = EventTap(vbr.events)
    tap.ready()
    try:
        for release in ("link set v0 nomaster", "link del br1"):
            _enslave_and_release(vns, vbr, sub, release)

            def kept() -> bool:
                sub.poll(max_events=10_000)
                port = sub.state.ports.get(0)
                return (
                    port is not None
                    and {"10.1.0.1/24", "2001:db8:1::1/64"} <= port.addrs
                    and sub.state.lookup("2001:db8:f0::1") is not None
                    and any(n[1] == "10.1.0.7" for n in sub.state.neighs)
                )

            wait_for(kept, 10, interval=0.05, what="port 0's state to stay")
        # A bridge port's RTM_DELLINK (family AF_BRIDGE) is not the link going.
        tap.clear()
        assert not [e for e in tap.events if e.kind in ("proxy_gone", "proxy_back")]
    finally:
        tap.close()


def test_a_linux_bridge_beside_the_ports_leaves_every_replica_equal_to_the_kernel(
    vns: Netns, vbr: BridgeProcess, sub: Subscriber
) -> None:
    # The Linux bridge's own fe80::/64 joins the merged route; it loses carrier when
    # its last port leaves, and the kernel flags its hop a little later.
    vns.batch(["link add br1 type bridge", "link set br1 up", "link set v0 master br1"])
    vns.cmd("link set v0 nomaster")
    _converged(vbr, sub)
    (fe80,) = [r for r in sub.state.to_state().routes if r.dst == "fe80::/64"]
    assert len(fe80.nexthops) == 5  # v0, w0, v1, w1, br1


def test_an_ipv6_multipath_route_keeps_its_other_hops_when_one_link_goes(
    vns: Netns, vbr: BridgeProcess, sub: Subscriber
) -> None:
    with netns("ifpx-op-away") as away:
        for gone in ("link del w0", f"link set v0 netns {away.name}"):
            vns.cmd("-6 route replace 2001:db8:f0::/48 nexthop via 2001:db8:2::fd dev v1 "
                    "nexthop via 2001:db8:1::fe dev v0")  # fmt: skip
            _converged(vbr, sub)
            vns.cmd(gone)  # v0 goes with its peer, or to another namespace
            _converged(vbr, sub)
            found = sub.state.lookup("2001:db8:f0::1")
            assert found is not None and [h[2] for h in found.nexthops] == [1]
            # Back for the second round, under the same name (a new ifindex).
            if gone.startswith("link del"):
                veth_pairs_one(vns, 0)
            else:
                away.cmd(f"link set v0 netns {vns.name}")
                vns.batch(["link set v0 up", "addr add 2001:db8:1::1/64 dev v0 nodad"])


def veth_pairs_one(ns: Netns, i: int) -> None:
    """v<i>/w<i> again, as :func:`netutil.veth_pairs` makes them."""
    ns.batch(
        [
            f"link add v{i} type veth peer name w{i}",
            f"link set w{i} up",
            f"link set v{i} up",
            f"addr add 10.{i + 1}.0.1/24 dev v{i}",
            f"addr add 2001:db8:{i + 1}::1/64 dev v{i} nodad",
        ]
    )


def test_expired_ipv6_routes_stop_forwarding_when_the_kernel_stops(
    vns: Netns, vbr: BridgeProcess, sub: Subscriber
) -> None:
    # The kernel stops forwarding by them at once and deletes them (with a message) at
    # its next garbage collection, up to half a minute later.
    vns.batch(
        [
            "route add 2001:db8:f0::/48 via 2001:db8:1::fe dev v0 expires 2",
            "addr add 2001:db8:77::1/64 dev v1 nodad valid_lft 2 preferred_lft 2",
        ]
    )
    _converged(vbr, sub)
    assert sub.state.lookup("2001:db8:f0::1") is not None
    assert sub.state.lookup("2001:db8:77::5") is not None
    t0 = time.monotonic()

    def gone() -> bool:
        sub.poll(max_events=10_000)
        return (
            sub.state.lookup("2001:db8:f0::1") is None
            and sub.state.lookup("2001:db8:77::5") is None
        )

    wait_for(gone, 8, interval=0.05, what="the expired routes to go from the replica")
    assert time.monotonic() - t0 < 6  # the expiry, not the collection (20-30 s here)
    _converged(vbr, sub)


def test_a_restarted_bridge_finds_a_proxy_that_came_back_and_was_renamed(
    vns: Netns, vbr: BridgeProcess, sub: Subscriber
) -> None:
    vns.cmd("link del v0")
    veth_pairs_one(vns, 0)  # v0 again: a new ifindex
    vns.batch(["link set v0 down", "link set v0 name v0x", "link set v0x up"])
    _converged(vbr, sub)
    vbr.stop()
    vbr.start()
    listed = vbr.result(c.ListBindings())
    assert isinstance(listed, c.ListBindingsResult)
    (port0,) = [b for b in listed.bindings if b.port_id == 0]
    assert (port0.proxy, port0.state) == ("v0x", "active")
    _converged(vbr, sub)
    assert sub.state.ports[0].proxy == "v0x"


_OPENER = r"""
import fcntl, os, struct, sys, time
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH", sys.argv[1].encode(), 0x0002 | 0x1000 | 0x0100))
print("open", flush=True)
time.sleep(3600)
"""
"""Holds a multi_queue tap open (TUNSETIFF) until killed: what DPDK's net_tap does."""


def test_a_tap_closed_by_its_application_flags_its_hops_linkdown(ns: Netns) -> None:
    ns.add_tap("t0")
    veth_pairs(ns, 1)
    ns.batch(["link set t0 up", "addr add 10.9.0.1/24 dev t0"])
    with bridge_on_veths(ns, 1) as br:
        assert isinstance(br.result(c.Bind(port_id=1, proxy="t0")), c.BindResult)
        for _ in range(3):  # the kernel's order raced the re-dump about 2 runs in 3
            opener = subprocess.Popen(
                ["ip", "netns", "exec", ns.name, sys.executable, "-c", _OPENER, "t0"],
                stdout=subprocess.PIPE,
            )
            try:
                assert opener.stdout is not None and opener.stdout.readline() == b"open\n"
                ns.cmd("route replace 172.16.5.0/24 nexthop via 10.1.0.2 dev v0 "
                       "nexthop via 10.9.0.2 dev t0")  # fmt: skip
                state = wait_bridge_equals_kernel(br)
                (r,) = [r for r in state.routes if r.dst == "172.16.5.0/24"]
                assert [h.flags for h in r.nexthops] == [(), ()]
            finally:
                opener.kill()
                opener.wait(10)
            # The last descriptor closed: carrier goes, and the kernel flags the hop.
            state = wait_bridge_equals_kernel(br, timeout=5)
            (r,) = [r for r in state.routes if r.dst == "172.16.5.0/24"]
            assert "linkdown" in r.nexthops[1].flags


def test_routes_with_the_same_hops_keep_the_kernels_liveness_each(
    vns: Netns, vbr: BridgeProcess, sub: Subscriber
) -> None:
    vns.cmd("route add 192.168.10.0/24 table 10 metric 10 nexthop dev v0 weight 3 nexthop dev v1")
    _converged(vbr, sub)
    vns.cmd("addr del 10.1.0.1/24 dev v0")  # the kernel marks v0's hop dead, silently
    vns.cmd("route replace 172.16.4.0/24 nexthop dev v0 weight 3 nexthop dev v1")  # alive
    _converged(vbr, sub)
    in_table = sub.state.lookup("192.168.10.1", table=10)
    assert in_table is not None and [h[2] for h in in_table.nexthops] == [1]
    in_main = sub.state.lookup("172.16.4.1")
    assert in_main is not None and [h[2] for h in in_main.nexthops] == [0, 1]


def test_an_ipv6_route_appended_to_keeps_the_kernels_order_of_hops(
    vns: Netns, vbr: BridgeProcess, sub: Subscriber
) -> None:
    # The append's RTM_NEWROUTE lists the new hop first; the kernel's dump, last.
    vns.cmd("-6 route add 2001:db8:f0::/48 via 2001:db8:1::fe dev v0")
    vns.cmd("-6 route append 2001:db8:f0::/48 via 2001:db8:2::fe dev v1")
    _converged(vbr, sub)
    found = sub.state.lookup("2001:db8:f0::1")
    assert found is not None and [h[2] for h in found.nexthops] == [0, 1]
    vns.cmd("-6 route append 2001:db8:f0::/48 via 2001:db8:1::fd dev v0")
    _converged(vbr, sub)


def test_a_links_first_ipv4_address_brings_its_dead_hops_back(
    vns: Netns, vbr: BridgeProcess, sub: Subscriber
) -> None:
    veth_pairs_one(vns, 2)  # v2: no port bound to it
    vns.cmd(
        "route add 192.168.10.0/24 table 10 nexthop via 10.3.0.2 dev v2 nexthop via 10.2.0.2 dev v1"
    )
    vns.cmd("addr del 10.3.0.1/24 dev v2")  # v2's hop dead, silently
    _converged(vbr, sub)
    found = sub.state.lookup("192.168.10.1", table=10)
    assert found is not None and [h[1] for h in found.nexthops] == [sub.state.ports[1].ifindex]
    vns.cmd("addr add 10.3.1.1/24 dev v2")  # alive again, as silently (another subnet even)
    _converged(vbr, sub)
    found = sub.state.lookup("192.168.10.1", table=10)
    assert found is not None and len(found.nexthops) == 2


def _kernel_forwards(vns: Netns, ip: str) -> str:
    """What the kernel does with ``ip``: the interface it leaves by, or the drop type."""
    found = subprocess.run(
        ["ip", "-n", vns.name, "-j", "route", "get", ip],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if found.returncode:
        # How `ip route get` says which drop route it met.
        said = {
            "Permission denied": "prohibit",
            "Network is unreachable": "unreachable",
            "Invalid argument": "blackhole",
        }
        return said.get(found.stderr.strip().split(": ", 1)[-1], found.stderr.strip())
    return str(json.loads(found.stdout)[0]["dev"])


def test_device_routes_and_a_drop_route_under_one_key_forward_as_the_kernel_orders_them(
    vns: Netns, vbr: BridgeProcess, sub: Subscriber
) -> None:
    # Walk seed 405, step 183: a device route prepended before a drop route forwards.
    ip, dst = "172.16.2.130", "172.16.2.128/25 table 10 metric 10"
    names = {sub.state.ports[i].ifindex: f"v{i}" for i in range(2)}

    def replica_forwards() -> str:
        sub.poll(max_events=10_000)
        found = sub.state.resolve(Flow(ip))
        if found is None or found.type != "unicast":
            return "none" if found is None else found.type
        return "+".join(sorted(names[h[1]] for h in found.nexthops))

    vns.cmd("rule add pref 100 to 172.16.2.0/24 lookup 10")
    steps = [
        (f"route add prohibit {dst}", "prohibit"),
        (f"route prepend {dst} dev v0", "v0"),  # in front of the drop route
        (f"route prepend {dst} dev v1", "v0+v1"),  # device routes are published merged
        (f"route del {dst} dev v1", "v0"),
        (f"route del {dst} dev v0", "prohibit"),  # the drop route alone again
        (f"route append {dst} dev v0", "prohibit"),  # behind it: never reached
        (f"route prepend {dst} dev v1", "v1"),  # in front: v0 stays behind
        (f"route del prohibit {dst}", "v0+v1"),
        (f"route append unreachable {dst}", "v0+v1"),  # a drop route appended behind
        (f"route del {dst} dev v1", "v0"),
        (f"route prepend blackhole {dst}", "blackhole"),  # one prepended in front
        (f"route del blackhole {dst}", "v0"),  # the hidden one comes forward behind v0
        (f"route replace blackhole {dst}", "blackhole"),  # replaces the first: v0
    ]
    for line, want in steps:
        vns.cmd(line)
        assert _kernel_forwards(vns, ip) in want.split("+"), line
        wait_for(lambda want=want: replica_forwards() == want, 5, interval=0.05, what=line)  # type: ignore[misc]
        _converged(vbr, sub)
    # A bridge started now finds the same order in the kernel's dump.
    vns.cmd(f"route prepend {dst} dev v1")
    _converged(vbr, sub)
    with bridge_on_veths(vns) as second:
        assert wait_bridge_equals_kernel(second) == wait_bridge_equals_kernel(vbr)
