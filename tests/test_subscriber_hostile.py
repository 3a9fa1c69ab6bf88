"""Both subscribers, Python and C, against a publisher that sends what no bridge should.

No root needed: a stand-in bridge (tests/fakebridge.py) on ipc sockets in a
temporary directory publishes hostile messages and counts the snapshots asked of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ctools import CSubscriber, build, have_toolchain
from fakebridge import FakeBridge
from figures import record
from samples import EVENTS

from ifpx.bridge.testing.harness import wait_for
from ifpx.subscribers import Subscriber

pytestmark = pytest.mark.reliability

ROUTE = EVENTS["route_add"].model_dump()
ROUTE2 = {**ROUTE, "dst": "10.51.0.0"}
MTU = EVENTS["mtu_change"].model_dump()


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeBridge]:
    bridge = FakeBridge(tmp_path)
    try:
        yield bridge
    finally:
        bridge.close()


@pytest.fixture(scope="module")
def ctool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not have_toolchain("msgpack", "libzmq"):
        pytest.skip("needs cc, make, pkg-config, libmsgpack-dev and libzmq3-dev (apt)")
    return build(tmp_path_factory.mktemp("cbuild")) / "ifpx_sub"


class _Py:
    """The Python Subscriber, seen the way the tests see the C one."""

    name = "python"

    def __init__(self, fake: FakeBridge) -> None:
        self.sub = Subscriber(fake.events, fake.control, heartbeat_timeout=30, request_timeout=2)
        self.sub.sync(timeout=5)

    def pump(self) -> dict[str, Any]:
        self.sub.poll(max_events=10_000, timeout=0.02)
        return {
            "epoch": self.sub.epoch,
            "stats": vars(self.sub.stats),
            "routes": sorted(dst for _fam, _table, dst, _plen, _metric in self.sub.state.routes),
        }

    def close(self) -> None:
        self.sub.close()


class _C:
    name = "c"

    def __init__(self, tool: Path, fake: FakeBridge, workdir: Path) -> None:
        self.proc = CSubscriber(
            tool, workdir, fake.events, fake.control, "--quiet", env={"PATH": "/usr/bin:/bin"}
        )
        self.proc.report()

    def pump(self) -> dict[str, Any]:
        report = self.proc.report()
        routes = sorted(r["dst"].split("/")[0] for r in report["state"]["routes"])
        return {"epoch": report["epoch"], "stats": report["stats"], "routes": routes}

    def close(self) -> None:
        self.proc.close()


@pytest.fixture(params=["python", "c"])
def subscriber(
    request: pytest.FixtureRequest, fake: FakeBridge, tmp_path: Path
) -> Iterator[_Py | _C]:
    sub: _Py | _C
    if request.param == "python":
        sub = _Py(fake)
    else:
        sub = _C(request.getfixturevalue("ctool"), fake, tmp_path)
    try:
        # Publish until the subscription is surely up: the first messages of a PUB
        # socket can go out before a SUB has joined.
        wait_for(
            lambda: fake.heartbeat() or sub.pump()["stats"]["messages"] > 0,
            10,
            what="the subscription",
        )
        yield sub
    finally:
        sub.close()


def _until(
    sub: _Py | _C, fake: FakeBridge, done: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        fake.heartbeat()
        view = sub.pump()
        return view if done(view) else None

    view = wait_for(check, 10, interval=0.05, what=what)
    assert view is not None
    return view


def test_messages_that_break_the_envelope_are_dropped(fake: FakeBridge, subscriber: Any) -> None:
    before = subscriber.pump()["stats"]["bad_messages"]
    now = {"seq": fake.seq, "tseq": 0}
    fake.send("hb", fake.message("hb", [], **now))  # an empty heartbeat
    fake.send("hb", fake.message("hb", [MTU], **now))  # a heartbeat that is no heartbeat
    # A route on the link topic, numbered as the next link message would be.
    fake.send("link", fake.message("link", [ROUTE], seq=fake.seq + 1, tseq=1))
    view = _until(subscriber, fake, lambda v: v["stats"]["bad_messages"] >= before + 3, "drops")
    assert view["routes"] == []
    fake.send("route", fake.message("route", [ROUTE2]))  # the stream goes on
    view = _until(subscriber, fake, lambda v: v["routes"] == ["10.51.0.0"], "the next route")
    assert view["stats"]["bad_messages"] == before + 3
    assert view["stats"]["snapshot_repairs"] == 0
    record(f"{subscriber.name} subscriber: envelope breakers dropped / applied", "3 / 0")


def test_one_message_of_a_huge_epoch_costs_one_snapshot(fake: FakeBridge, subscriber: Any) -> None:
    asked = fake.count("snapshot")
    epoch = fake.epoch
    bogus = fake.message("route", [ROUTE], epoch=2**64 - 1, seq=1, tseq=1)
    end = time.monotonic() + 3
    while time.monotonic() < end:  # the same bogus message, again and again
        fake.send("route", bogus)
        fake.heartbeat()
        subscriber.pump()
    extra = fake.count("snapshot") - asked
    assert 1 <= extra <= 2, extra
    record(f"{subscriber.name} subscriber: snapshots for 3 s of epoch 2**64-1", extra)
    view = subscriber.pump()
    assert view["epoch"] == epoch and view["routes"] == []
    fake.send("route", fake.message("route", [ROUTE2]))
    _until(subscriber, fake, lambda v: v["routes"] == ["10.51.0.0"], "the real stream")


def test_a_flood_of_made_up_epochs_is_rate_limited(fake: FakeBridge, subscriber: Any) -> None:
    asked = fake.count("snapshot")
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < 3:
        n += 1
        fake.send("route", fake.message("route", [ROUTE], epoch=10**15 + n, seq=1, tseq=1))
        subscriber.pump()
    seconds = time.monotonic() - start
    extra = fake.count("snapshot") - asked
    assert n >= 5 and extra <= seconds + 2, (n, extra)  # n: the C side is slower to pump
    record(f"{subscriber.name} subscriber: snapshots for {n} made-up epochs in 3 s", extra)
    assert subscriber.pump()["routes"] == []


def test_a_bridge_restarting_with_a_smaller_epoch_is_followed(
    fake: FakeBridge, subscriber: Any
) -> None:
    old = fake.epoch
    fake.restart(old - 500)  # its clock went back and its state file was lost
    fake.send("route", fake.message("route", [ROUTE2]))
    view = _until(subscriber, fake, lambda v: v["epoch"] == old - 500, "the new epoch")
    fake.send("route", fake.message("route", [ROUTE]))
    view = _until(subscriber, fake, lambda v: "10.50.0.0" in v["routes"], "the new life's route")
    # A straggler of the old life changes nothing.
    fake.send("route", fake.message("route", [ROUTE2], epoch=old, seq=99, tseq=99))
    fake.heartbeat()
    view = subscriber.pump()
    assert view["epoch"] == old - 500 and view["routes"] == ["10.50.0.0"]
    record(f"{subscriber.name} subscriber: restart with a smaller epoch followed", "yes")


def test_a_refused_snapshot_is_asked_for_again_after_a_back_off(
    fake: FakeBridge, subscriber: Any
) -> None:
    # An older bridge refuses the group form's snapshot for ever: the worker must not
    # ask again as fast as it is answered, and must sync once the bridge takes it.
    fake.refuse = "topics: extra inputs are not permitted"
    asked = fake.count("snapshot")
    old = fake.epoch
    fake.restart(old + 1)
    start = time.monotonic()
    while time.monotonic() - start < 3:
        fake.send("route", fake.message("route", [ROUTE2]))
        fake.heartbeat()
        subscriber.pump()
    extra = fake.count("snapshot") - asked
    view = subscriber.pump()
    assert view["epoch"] == old, view["epoch"]
    # At once, then after 0.5 s, 1 s and 2 s: at most four in three seconds.
    assert 2 <= extra <= 4, extra
    assert view["stats"]["snapshot_refusals"] == extra
    record(f"{subscriber.name} subscriber: snapshots asked for in 3 s, all refused", extra)
    fake.refuse = ""
    view = _until(subscriber, fake, lambda v: v["epoch"] == old + 1, "the snapshot taken")
    fake.send("route", fake.message("route", [ROUTE]))
    _until(subscriber, fake, lambda v: "10.50.0.0" in v["routes"], "the stream after it")
