"""The bridge's order of work (cycle.py) on scripted dumps: no kernel, no sockets."""

from __future__ import annotations

import socket
from typing import Any

from ifpx.bridge import nlmsg
from ifpx.bridge.core import BridgeCore
from ifpx.bridge.cycle import Cycle
from ifpx.bridge.reconciler import SETTLE
from ifpx.schemas.events import EventBase

AF4 = socket.AF_INET


def _link(ifindex: int, name: str, up: bool = True) -> nlmsg.Link:
    return nlmsg.Link(False, ifindex, name, 1500, f"02:00:00:00:00:0{ifindex}", up, up)


def _route(dst: str, *hops: tuple[str, int], dead: int = 0) -> nlmsg.Route:
    down = nlmsg.RTNH_F_DEAD | nlmsg.RTNH_F_LINKDOWN
    nexthops = tuple((gw, ifx, 1, down if ifx == dead else 0) for gw, ifx in hops)
    return nlmsg.Route(False, AF4, 254, dst, 24, 0, 4, 1, 0, 0, nexthops)


class Kernel:
    """Scripted dumps: what each (kind, family, oif) dump returns, and who asked."""

    def __init__(self, core: BridgeCore) -> None:
        self.core = core
        self.answers: dict[tuple[str, int, int], list[Any]] = {}
        self.asked: list[tuple[str, int, int]] = []

    def dump(self, kind: str, family: int, oif: int) -> list[EventBase]:
        self.asked.append((kind, family, oif))
        records = self.answers.get((kind, family, oif), [])
        return self.core.reconcile(kind, records, family, oif)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _bridge(batch: int = 4096) -> tuple[BridgeCore, Kernel, Clock, list[list[str]], Cycle]:
    core = BridgeCore()
    core.out.grouped = True
    core.out.defer_flat = True  # as the daemon runs it
    core.apply_all([_link(2, "tap0"), _link(3, "tap1")])
    core.bind(0, core.links[2])
    core.bind(1, core.links[3])
    kernel, clock = Kernel(core), Clock()
    published: list[list[str]] = []
    cycle = Cycle(core, kernel.dump, lambda evs: published.append([e.kind for e in evs]),
                  clock, batch)  # fmt: skip
    return core, kernel, clock, published, cycle


def test_the_group_form_then_the_flat_forms_slices_then_the_redumps() -> None:
    core, kernel, _clock, published, cycle = _bridge(batch=2)
    ecmp = [_route(f"10.{i}.0.0", ("10.0.0.2", 2), ("10.1.0.2", 3)) for i in range(5)]
    cycle.records(ecmp)
    published.clear()
    kernel.answers[("route", AF4, 3)] = [
        _route(f"10.{i}.0.0", ("10.0.0.2", 2), ("10.1.0.2", 3), dead=3) for i in range(5)
    ]
    cycle.records([_link(3, "tap1", up=False)])
    # The link and the one group change first; the flat form's five route_adds then, in
    # slices of two; the re-dumps, which find the mirror right, publish nothing.
    assert published[0] == ["link_change", "nhgroup_set"]
    assert published[1:] == [["route_add"] * 2, ["route_add"] * 2, ["route_add"]]
    assert kernel.asked == [("nexthop", 0, 0), ("route", AF4, 3), ("route", 10, 3)]
    assert core.counters.compensations == 3


def test_each_redump_runs_again_once_the_kernel_settles() -> None:
    _core, kernel, clock, published, cycle = _bridge()
    route = _route("10.9.0.0", ("10.0.0.2", 2))
    cycle.records([nlmsg.Addr(False, 2, AF4, "10.0.0.1", 24), route])
    # The address goes: the kernel says RTM_DELADDR before it flushes the routes it
    # made reachable, so the first re-dump still lists the route.
    kernel.answers[("route", AF4, 2)] = [route]
    published.clear()
    cycle.records([nlmsg.Addr(True, 2, AF4, "10.0.0.1", 24)])
    assert kernel.asked == [("route", AF4, 2)] and published == [["addr_del"]]
    assert cycle.wake_at() == clock.now + SETTLE
    clock.now += SETTLE / 2
    cycle.settle()
    assert len(kernel.asked) == 1  # not yet
    kernel.answers[("route", AF4, 2)] = []  # flushed by now
    clock.now += SETTLE
    cycle.settle()
    assert kernel.asked == [("route", AF4, 2)] * 2 and cycle.wake_at() is None
    assert published[1:] == [["groute_del", "route_del", "nhgroup_del"]]


def test_a_resync_says_everything_between_its_markers() -> None:
    core, kernel, _clock, published, cycle = _bridge()
    cycle.records([_route("10.9.0.0", ("10.0.0.2", 2))])
    published.clear()
    kernel.answers[("link", 0, 0)] = [_link(2, "tap0"), _link(3, "tap1")]
    kernel.answers[("route", AF4, 0)] = [_route("10.8.0.0", ("10.1.0.2", 3))]
    assert cycle.resync("netlink overrun") == len(published[0]) - 2
    kinds = published[0]
    assert kinds[0] == "resync_begin" and kinds[-1] == "resync_end"
    assert {"route_add", "route_del", "groute_add", "groute_del"} <= set(kinds)
    assert core.counters.resyncs == 1
    assert [k for k, _f, _o in kernel.asked] == [
        "link", "addr", "nexthop", "route", "route", "rule", "rule", "neigh"
    ]  # fmt: skip


def test_an_expiring_ipv6_route_brings_a_dump_of_its_family_when_it_expires() -> None:
    _core, kernel, clock, _published, cycle = _bridge()
    cycle.records([nlmsg.Expiry(3.0), nlmsg.Expiry(3.05)])
    assert cycle.wake_at() is not None and 103.0 < cycle.wake_at() <= 103.5  # type: ignore[operator]
    clock.now = 102.9
    cycle.settle()
    assert ("route", socket.AF_INET6, 0) not in kernel.asked
    clock.now = 103.5
    cycle.settle()
    # Both expiries fall in one slot: one dump of the family finds what expired.
    assert kernel.asked.count(("route", socket.AF_INET6, 0)) == 1
    assert cycle.wake_at() is None


def test_a_proxy_that_came_back_or_was_renamed_is_written_before_it_is_published() -> None:
    core, kernel, _clock, _published, _cycle = _bridge()
    log: list[str] = []

    def persist() -> None:
        entry = core.bindings.entries()[0]
        log.append(f"written {entry.proxy} {entry.ifindex}")

    cycle = Cycle(core, kernel.dump, lambda evs: log.extend(e.kind for e in evs),
                  persist=persist)  # fmt: skip
    cycle.records([nlmsg.Link(True, 2, "tap0", 1500, None, False, False)])
    assert "proxy_gone" in log and not any(x.startswith("written") for x in log)
    log.clear()
    cycle.records([_link(7, "tap0")])
    assert log[:2] == ["written tap0 7", "proxy_back"]
    log.clear()
    cycle.records([nlmsg.Link(False, 7, "tapx", 1500, "02:00:00:00:00:07", True, True)])
    assert log[:2] == ["written tapx 7", "proxy_renamed"]
    log.clear()
    cycle.records([_link(7, "tapx")])  # nothing moved
    assert not any(x.startswith("written") for x in log)


def test_running_changing_alone_asks_the_kernel_again() -> None:
    _core, kernel, _clock, _published, cycle = _bridge()
    lost = nlmsg.Link(False, 2, "tap0", 1500, "02:00:00:00:00:02", True, False, True)
    cycle.records([lost])  # carrier lost first: looked at once
    kernel.asked.clear()
    cycle.records([nlmsg.Link(False, 2, "tap0", 1500, "02:00:00:00:00:02", True, False, False)])
    # RUNNING follows when the kernel has flagged the hops: looked at again.
    assert ("route", AF4, 2) in kernel.asked and ("route", socket.AF_INET6, 2) in kernel.asked
