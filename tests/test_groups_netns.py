"""Next-hop groups on the wire against the real kernel: a link failure in a few events.

Workers in the group form (topic ``fib``) hold routes by next-hop group; a link that
goes down, a next-hop object replaced, must reach them as a handful of events
whatever the number of routes, and leave them forwarding as the kernel does (``ip
route get``), equal to a flat-form worker and to the bridge's snapshot.
"""

from __future__ import annotations

import ipaddress
import itertools
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import zmq
from ctools import CSubscriber, build, have_toolchain, state_of
from figures import record
from netutil import (
    EventTap,
    bridge_on_veths,
    counters,
    veth_pairs,
    wait_bridge_equals_kernel,
)

from ifpx.bridge.testing.harness import BridgeProcess, Netns, bridge, netns, wait_for
from ifpx.schemas import commands as c
from ifpx.schemas import events as ev
from ifpx.subscribers import Subscriber

pytestmark = pytest.mark.netns

ROUTES = 1000
"""ECMP routes of each kind (plain IPv4, plain IPv6, through a next-hop object)."""
GROUP_FORM = "link,addr,fib,rule,neigh"
"""``ifpx_sub --topics`` for the group form: ``fib`` instead of ``route``."""


@pytest.fixture
def gns() -> Iterator[Netns]:
    """Two veth pairs v0/w0 and v1/w1, up, so that the v ends have carrier."""
    with netns("ifpx-grp") as n:
        veth_pairs(n)
        # ECMP by ports too, so that `ip route get` with several flows shows every live hop.
        for family in ("ipv4", "ipv6"):
            subprocess.run(
                ["ip", "netns", "exec", n.name, "sysctl", "-qw",
                 f"net.{family}.fib_multipath_hash_policy=1"],
                check=True, timeout=30,
            )  # fmt: skip
        yield n


@pytest.fixture
def gbr(gns: Netns) -> Iterator[BridgeProcess]:
    with bridge_on_veths(gns) as b:
        yield b


def _install(ns: Netns) -> None:
    lines = [
        "nexthop add id 1 via 10.1.0.2 dev v0",
        "nexthop add id 2 via 10.2.0.2 dev v1",
        "nexthop add id 3 group 1/2",
    ]
    for i in range(ROUTES):
        lines.append(
            f"route add 172.16.{i // 256}.{i % 256}/32"
            " nexthop via 10.1.0.2 dev v0 nexthop via 10.2.0.2 dev v1"
        )
        lines.append(
            f"route add 2001:db8:7:{i:x}::/64"
            " nexthop via 2001:db8:1::2 dev v0 nexthop via 2001:db8:2::2 dev v1"
        )
        lines.append(f"route add 172.17.{i // 256}.{i % 256}/32 nhid 3")
    ns.batch(lines)


def _kernel_oifs(ns: Netns, ip: str) -> set[str]:
    """The interfaces the kernel may send ``ip`` out of (every ECMP choice, by flow)."""
    oifs = set()
    for sport in range(1000, 1016):  # several flows, so that each live hop shows up
        out = subprocess.run(
            ["ip", "netns", "exec", ns.name, "ip", "route", "get", ip, "ipproto", "udp",
             "sport", str(sport), "dport", "53"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout  # fmt: skip
        oifs.add(out.split(" dev ")[1].split()[0])
    return oifs


def _replica_oifs(sub: Subscriber, ip: str) -> set[str]:
    found = sub.state.lookup(ip)
    assert found is not None, ip
    return {f"v{h[2]}" for h in found.nexthops}


def _samples() -> list[str]:
    return [
        "172.16.0.1",
        f"172.16.{(ROUTES - 1) // 256}.{(ROUTES - 1) % 256}",
        "172.17.1.7",
        str(ipaddress.ip_address("2001:db8:7:5::1")),
    ]


def test_a_link_failure_reaches_group_form_workers_as_a_few_events(
    gns: Netns, gbr: BridgeProcess, tmp_path: Path
) -> None:
    flat = Subscriber(gbr.events, gbr.control, name="flat")
    grouped = Subscriber(gbr.events, gbr.control, name="grouped", routes="group")
    fib = EventTap(gbr.events, ("fib", "hb"))
    csub = None
    try:
        flat.sync(timeout=10)
        grouped.sync(timeout=10)
        fib.ready()
        if have_toolchain("libzmq", "msgpack"):
            tools = build(tmp_path / "cbuild")
            csub = CSubscriber(
                tools / "ifpx_sub", tmp_path, gbr.events, gbr.control, "--topics", GROUP_FORM
            )

        def since(mark: int) -> list[ev.EventBase]:
            """The group form's events from message ``mark`` on, up to a heartbeat now:
            the bridge sent it after everything it published so far."""
            n = len(fib.messages)
            fib.wait(lambda: any(m.topic == "hb" for m in fib.messages[n:]), 5, "a heartbeat")
            return [e for m in fib.messages[mark:] if m.topic == "fib" for e in m.events]

        def now() -> int:
            """A mark after everything the bridge published so far."""
            since(len(fib.messages))
            return len(fib.messages)

        def converged() -> None:
            want = wait_bridge_equals_kernel(gbr, timeout=30)
            for sub in (flat, grouped):

                def same(s: Subscriber = sub) -> bool:
                    s.poll(max_events=1_000_000)
                    return s.state.to_state() == want

                wait_for(same, 20, interval=0.05, what=f"{sub.name}'s replica to equal the bridge")
            if csub is not None:
                wait_for(
                    lambda: state_of(csub.report()) == want,
                    20,
                    interval=0.1,
                    what="the C replica (group form) to equal the bridge",
                )
            assert grouped.state.groutes and not grouped.state.routes
            for ip in _samples():
                assert _replica_oifs(grouped, ip) == _kernel_oifs(gns, ip), ip

        _install(gns)
        converged()
        assert _replica_oifs(grouped, "172.16.0.1") == {"v0", "v1"}
        assert len([e for e in since(0) if e.kind.startswith("groute")]) >= 3 * ROUTES

        mark = now()
        gns.cmd("link set v1 down")
        converged()
        assert _replica_oifs(grouped, "172.16.0.1") == {"v0"}
        assert _replica_oifs(grouped, "172.17.1.7") == {"v0"}
        # Three groups changed (the plain IPv4 and IPv6 sets, the object's group): a
        # handful of events for 3000 routes, and the re-dump that confirms it adds none.
        # The rest are the link's own routes (its subnets gone, fe80::/64 one port less)
        # and the groups they leave unused withdrawn.
        events = since(mark)
        assert len(events) <= 14, [e.kind for e in events]
        assert [e.kind for e in events].count("nhgroup_set") >= 3
        ecmp = ("172.16.", "172.17.", "2001:db8:7:")
        assert not [e for e in events if getattr(e, "dst", "").startswith(ecmp)]

        gns.cmd("link set v1 up")
        converged()
        assert _replica_oifs(grouped, "2001:db8:7:5::1") == {"v0", "v1"}
        # A next-hop object replaced: one event for the routes through it.
        mark = now()
        gns.cmd("nexthop replace id 1 via 10.1.0.9 dev v0")
        converged()
        assert [e.kind for e in since(mark)] == ["nhgroup_set"]
    finally:
        fib.close()
        flat.close()
        grouped.close()
        if csub is not None:
            csub.close()


def test_groups_of_next_hops_no_route_uses_are_withdrawn_and_their_ids_reused(
    gns: Netns, gbr: BridgeProcess
) -> None:
    # Routes through ever-new gateways (BGP churn) must not leave a group behind in
    # the bridge or in a worker, whose forwarding table has a fixed number of them.
    grouped = Subscriber(gbr.events, gbr.control, name="grouped", routes="group")
    try:
        grouped.sync(timeout=10)

        def converged() -> None:
            want = wait_bridge_equals_kernel(gbr, timeout=30)

            def same() -> bool:
                grouped.poll(max_events=1_000_000)
                return grouped.state.to_state() == want

            wait_for(same, 20, interval=0.05, what="the group form's replica to equal the bridge")

        converged()
        before = set(grouped.state.groups)
        counted = counters(gbr)["groups_mirrored"]
        for round_, (dev, net, first) in enumerate((("v0", 1, 2), ("v1", 2, 2), ("v0", 1, 102))):
            gns.batch(
                [
                    f"route add 172.20.{i}.0/24 via 10.{net}.0.{first + i} dev {dev}"
                    for i in range(100)
                ]
            )
            converged()
            groups = grouped.state.groups
            assert len(groups) >= len(before) + 100
            # Ids are reused: as dense as the groups in use, whatever the churn before.
            assert max(groups) <= len(before) + 100 + 2, max(groups)
            gns.batch([f"route del 172.20.{i}.0/24" for i in range(100)])
            converged()
            assert set(grouped.state.groups) == before, round_
            assert counters(gbr)["groups_mirrored"] == counted
    finally:
        grouped.close()


BIG = 150_000
"""Routes of each kind in the heartbeat test (ECMP over v0 and v1, through v1 alone)."""


class _BeatClock:
    """A raw SUB on ``route`` and ``hb`` in a thread: when the bridge sent each heartbeat
    (its ``ts``: a receiver lagging behind the stream would stretch the gaps), and how
    many route events came (counted without validating them)."""

    def __init__(self, endpoint: str) -> None:
        self.beats: list[float] = []
        self.routes = 0
        self._stop = threading.Event()
        self._sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
        self._sock.setsockopt(zmq.RCVHWM, 0)  # a heartbeat dropped here would be a lie
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.connect(endpoint)
        for topic in (b"route", b"hb"):
            self._sock.setsockopt(zmq.SUBSCRIBE, topic)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._sock.poll(100, zmq.POLLIN):
                continue
            topic, payload = self._sock.recv_multipart()
            doc = msgpack.unpackb(payload)
            if topic == b"hb":
                self.beats.append(doc["ts"])
            else:
                self.routes += len(doc["events"])

    def beats_since(self, mark: float) -> list[float]:
        return [t for t in list(self.beats) if t > mark]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


def test_heartbeats_go_on_while_the_bridge_works_through_a_big_table(gns: Netns) -> None:
    # A link goes down under a big table: the flat form republishes every ECMP route
    # through it, and the routes through it alone are dropped (seconds of work at a
    # million). Subscribers that heard no heartbeat for 3.5 intervals would take the
    # bridge for gone and ask for snapshots it cannot answer until it is done; a short
    # interval makes 300k routes a long enough silence to show.
    interval = 0.1
    with bridge(gns, ["--heartbeat", str(interval)]) as br:
        for port in (0, 1):
            assert isinstance(br.result(c.Bind(port_id=port, proxy=f"v{port}")), c.BindResult)
        clock = _BeatClock(br.events)
        try:
            _link_down_under_heartbeats(gns, clock, interval)
        finally:
            clock.close()


def _link_down_under_heartbeats(gns: Netns, clock: _BeatClock, interval: float) -> None:
    wait_for(lambda: len(clock.beats) >= 2, 10, what="heartbeats")

    def prefix(first: int, i: int) -> str:
        return f"172.{first + i // 65536}.{i // 256 % 256}.{i % 256}/32"

    ecmp = "nexthop via 10.1.0.2 dev v0 nexthop via 10.2.0.2 dev v1"
    gns.batch(
        [f"route add {prefix(16, i)} {ecmp}" for i in range(BIG)]
        + [f"route add {prefix(24, i)} via 10.2.0.2" for i in range(BIG)]
    )
    wait_for(lambda: clock.routes >= 2 * BIG, 120, interval=0.2, what="the routes published")
    before, mark = clock.routes, time.time()
    gns.cmd("link set v1 down")
    # Every ECMP route again (one hop dead), every route through v1 alone withdrawn.
    wait_for(lambda: clock.routes >= before + 2 * BIG, 120, interval=0.2, what="the link's work")
    done = time.time()
    wait_for(lambda: clock.beats_since(done), 10, what="a heartbeat after it")
    beats = clock.beats_since(mark)
    gap = max(b - a for a, b in itertools.pairwise([mark, *beats]))
    took = beats[-1] - mark
    record("longest heartbeat gap, a link down under 300k routes", f"{gap:.2f} s in {took:.1f} s")
    assert gap < 3.5 * interval, f"no heartbeat for {gap:.2f} s within {took:.1f} s"
