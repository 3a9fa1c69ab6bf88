"""The re-dump schedule, with time passed in (pure: no kernel, no clock)."""

from __future__ import annotations

from ifpx.bridge.reconciler import Reconciler
from ifpx.bridge.redump import AF4, AF6, NEXTHOP_REDUMP, Counters, Redump


def test_requests_run_next_hop_objects_first_then_by_family_and_interface() -> None:
    wanted = {Redump(AF6, 3), Redump(AF4, 3), NEXTHOP_REDUMP, Redump(AF4)}
    counters = Counters()
    rec = Reconciler(wanted, counters)
    order = []
    while (req := rec.next()) is not None:
        order.append(req)
    assert order == [NEXTHOP_REDUMP, Redump(AF4), Redump(AF4, 3), Redump(AF6, 3)]
    assert counters.compensations == 4 and not wanted


def test_a_request_made_while_dumping_runs_in_the_same_burst() -> None:
    wanted = {Redump(AF4, 2)}
    rec = Reconciler(wanted, Counters())
    first = rec.next()
    wanted.add(NEXTHOP_REDUMP)  # what the core asks while the first dump is applied
    assert first == Redump(AF4, 2) and rec.next() == NEXTHOP_REDUMP and rec.next() is None


def test_each_re_dump_is_looked_at_again_once_the_burst_settles() -> None:
    wanted = {Redump(AF4, 2), Redump(AF6, 2)}
    rec = Reconciler(wanted, Counters(), settle=0.05)
    assert rec.wake_at() is None and rec.due(100.0) == []
    rec.ran(rec.next() or NEXTHOP_REDUMP, now=10.0)
    rec.ran(rec.next() or NEXTHOP_REDUMP, now=10.03)  # the deadline is the first's
    assert rec.wake_at() == 10.05
    assert rec.due(10.049) == []
    assert rec.due(10.05) == [Redump(AF4, 2), Redump(AF6, 2)]
    assert rec.due(10.06) == [] and rec.wake_at() is None  # each handed out once
    rec.ran(Redump(AF4, 2), now=20.0)  # a later burst has its own deadline
    assert rec.wake_at() == 20.05


def test_a_whole_dump_covers_what_was_asked() -> None:
    wanted = {Redump(AF4, 2), NEXTHOP_REDUMP}
    rec = Reconciler(wanted, Counters())
    rec.covered()
    assert rec.next() is None and not wanted


def test_many_redumps_through_interfaces_become_one_of_the_whole_family() -> None:
    wanted = {Redump(AF6, i) for i in range(1, 9)} | {Redump(AF4, 3), Redump(AF4, 4)}
    rec = Reconciler(wanted, Counters())
    order = []
    while (req := rec.next()) is not None:
        order.append(req)
    assert order == [Redump(AF4, 3), Redump(AF4, 4), Redump(AF6)]
