"""Subscribers against a live bridge: late join under churn, gap repair, restarts, many workers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from netutil import counters, wait_bridge_equals_kernel

from ifpx.bridge.testing.harness import BridgeProcess, Netns, bridge, wait_for
from ifpx.bridge.testing.kernelview import kernel_state
from ifpx.schemas import commands as c
from ifpx.schemas import events as ev
from ifpx.schemas.state import State
from ifpx.subscribers import Callbacks, Subscriber

pytestmark = pytest.mark.netns


def _setup(ns: Netns, br: BridgeProcess) -> None:
    br.result(c.Bind(port_id=0, proxy="tap0"))
    br.result(c.Bind(port_id=1, proxy="tap1"))
    ns.ip("link", "set", "tap0", "up")
    ns.ip("link", "set", "tap1", "up")
    ns.ip("addr", "add", "10.0.0.1/24", "dev", "tap0")
    ns.ip("addr", "add", "10.1.0.1/24", "dev", "tap1")


def _converge(sub: Subscriber, br: BridgeProcess, timeout: float = 15.0) -> State:
    """Poll until the replica equals the bridge's snapshot and the kernel; return it."""
    deadline = time.monotonic() + timeout
    while True:
        sub.poll(max_events=100_000, timeout=0.05)
        if not sub.repairing:
            want = wait_bridge_equals_kernel(br, timeout)
            if sub.state.to_state() == want:
                return want
        if time.monotonic() > deadline:
            raise AssertionError(f"replica {sub.state.to_state()} != bridge {want}")


def _mtu_flaps(ns: Netns, count: int) -> None:
    # Alternating topics: consecutive events of one topic would share a message.
    lines = []
    for i in range(count):
        lines.append(f"link set tap0 mtu {1300 + i % 100}")
        lines.append(f"addr add 10.9.{i}.1/24 dev tap0")
    ns.batch(lines)


def test_callbacks_and_poll(ns: Netns, br: BridgeProcess) -> None:
    _setup(ns, br)
    seen: list[str] = []

    class Cbs(Callbacks):
        def mtu_change(self, e: ev.MtuChange) -> None:
            seen.append(f"mtu {e.port_id} {e.mtu}")
            if e.mtu == 1401:
                sub.stop()

        def route_add(self, e: ev.RouteAdd) -> None:
            raise RuntimeError("a broken callback must not stop the loop")

    with Subscriber(br.events, br.control) as sub:
        sub.sync(timeout=5)
        assert sub.poll(max_events=1000)[-1].kind == "cfg_done"
        assert sub.poll(max_events=10, timeout=0) == []
        t0 = time.perf_counter()
        for _ in range(1000):
            sub.poll(max_events=64, timeout=0)
        assert time.perf_counter() - t0 < 2.0  # non-blocking: never waits for the network
        ns.ip("route", "add", "10.9.0.0/16", "via", "10.0.0.2")
        ns.ip("link", "set", "tap0", "mtu", "1401")
        runner = threading.Thread(target=sub.run, args=(Cbs(),), kwargs={"duration": 10})
        runner.start()
        runner.join(15)
        assert not runner.is_alive()
        assert seen == ["mtu 0 1401"]
        assert sub.stats.callback_errors == 1
        found = sub.state.lookup("10.9.1.1")
        assert found is not None and found.nexthops[0][2] == 0


def test_late_joiner_during_route_churn_converges(ns: Netns, br: BridgeProcess) -> None:
    _setup(ns, br)
    stop = threading.Event()

    def churn() -> None:
        rounds = 0
        while not stop.is_set() and rounds < 200:
            op = "add" if rounds % 2 == 0 else "del"
            lines = [f"route {op} 172.20.{i}.0/24 via 10.0.0.2" for i in range(rounds % 7, 200, 3)]
            ns.batch(lines, force=True)
            rounds += 1

    start_seq = br.snapshot().seq
    worker = threading.Thread(target=churn)
    worker.start()
    try:
        wait_for(lambda: br.snapshot().seq > start_seq + 5, 10, what="churn to start")
        with Subscriber(br.events, br.control) as sub:
            sub.sync(timeout=10)
            for _ in range(20):
                sub.poll(max_events=10_000, timeout=0.05)
            stop.set()
            worker.join(60)
            state = _converge(sub, br)
            assert sub.state.cfg_done
            assert any(r.dst.startswith("10.0.0.0") for r in state.routes)
    finally:
        stop.set()
        worker.join(60)


@contextmanager
def _starving(
    ns: Netns, extra: tuple[str, ...] = (), kinds: set[str] | None = None
) -> Iterator[tuple[BridgeProcess, Subscriber]]:
    """A bridge and a synced subscriber, both with a high-water mark of 2: what is
    published while the subscriber does not read is partly dropped (a gap)."""
    with bridge(ns, ["--hwm", "2", "--heartbeat", "0.5", *extra]) as br:
        _setup(ns, br)
        with Subscriber(br.events, br.control, kinds=kinds, rcvhwm=2) as sub:
            sub.sync(timeout=5)
            sub.poll(max_events=1000)
            yield br, sub


def test_small_gap_is_repaired_from_the_journal(ns: Netns) -> None:
    with _starving(ns) as (br, sub):
        _mtu_flaps(ns, 60)  # while we are not reading: PUB drops past the high-water mark
        wait_for(lambda: br.snapshot().seq > sub.seq + 20, 10, what="the burst")
        state = _converge(sub, br)
        assert sub.stats.gaps >= 1 and sub.stats.journal_repairs >= 1
        assert sub.stats.snapshot_repairs == 0
        assert state.ports[0].mtu == 1300 + 59 % 100


def test_large_gap_is_repaired_by_snapshot(ns: Netns) -> None:
    with _starving(ns, ("--journal", "4")) as (br, sub):
        _mtu_flaps(ns, 60)
        wait_for(lambda: br.snapshot().seq > sub.seq + 20, 10, what="the burst")
        _converge(sub, br)
        assert sub.stats.gaps >= 1 and sub.stats.snapshot_repairs >= 1
        events = [e.kind for e in sub.poll(max_events=10_000)]
        assert "resync_begin" not in events  # already consumed by _converge's polling


def test_kinds_filter_still_detects_gaps(ns: Netns) -> None:
    with _starving(ns, kinds={"mtu_change"}) as (br, sub):
        ns.batch([f"route add 172.21.{i}.0/24 via 10.0.0.2" for i in range(50)])
        _mtu_flaps(ns, 40)
        wait_for(lambda: br.snapshot().seq > sub.seq + 20, 10, what="the burst")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = sub.poll(max_events=10_000, timeout=0.1)
            assert all(e.kind in ("mtu_change", "resync_begin", "resync_end") for e in got)
            if not sub.repairing and sub.state.ports[0].mtu == 1300 + 39:
                break
        assert sub.state.ports[0].mtu == 1339
        assert sub.stats.gaps >= 1
        assert sub.state.routes == {}  # not subscribed, not kept


def test_bridge_killed_and_restarted_subscriber_resyncs(ns: Netns, br: BridgeProcess) -> None:
    _setup(ns, br)
    with Subscriber(br.events, br.control, heartbeat_timeout=2.0, request_timeout=1.0) as sub:
        sub.sync(timeout=5)
        old_epoch = sub.epoch
        assert br.proc is not None
        br.proc.send_signal(signal.SIGKILL)
        br.proc.wait(10)
        ns.ip("link", "set", "tap1", "mtu", "1280")  # while the bridge is down
        ns.ip("route", "add", "10.88.0.0/16", "via", "10.1.0.2")
        br.start()
        seen: list[ev.EventBase] = []

        def repaired() -> bool:
            seen.extend(sub.poll(max_events=100_000, timeout=0.05))
            return not sub.repairing and any(e.kind == "resync_end" for e in seen)

        wait_for(repaired, 20, what="the repair after the restart")
        # Heartbeats were missed while it was down; what happened is that it restarted.
        reasons = {getattr(e, "reason", None) for e in seen if e.kind.startswith("resync_")}
        assert reasons == {"bridge restarted (new epoch)"}
        state = _converge(sub, br, timeout=20)
        assert sub.epoch != old_epoch
        assert sub.state.ports[1].mtu == 1280
        assert any(r.dst == "10.88.0.0/16" for r in state.routes)


@pytest.fixture
def workers(br: BridgeProcess, tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    argv = [
        sys.executable,
        "-m",
        "ifpx.subscribers.workers",
        "--quiet",
        "--dump-dir",
        str(tmp_path),
    ]
    argv += ["--events", br.events, "--control", br.control]
    procs = [
        subprocess.Popen([*argv, "--worker-id", str(i)], stdout=subprocess.DEVNULL)
        for i in range(4)
    ]
    try:
        yield procs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def test_four_worker_processes_end_equal_to_bridge_and_kernel(
    ns: Netns, br: BridgeProcess, workers: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    for i in range(4):
        wait_for((tmp_path / f"worker-{i}.ready").exists, 15, what=f"worker {i}")
    _setup(ns, br)
    ns.ip("link", "set", "tap0", "mtu", "1450")
    ns.cmd("route add 10.50.0.0/16 nexthop via 10.0.0.2 dev tap0 nexthop via 10.1.0.2 dev tap1")
    ns.batch([f"route add 172.22.{i}.0/24 via 10.1.0.2" for i in range(100)])
    ns.ip("neigh", "add", "10.0.0.2", "lladdr", "02:00:00:00:00:02", "dev", "tap0")
    want = wait_bridge_equals_kernel(br)
    assert want == kernel_state(ns.name, want.bindings).canonical()

    def replicas_equal() -> bool:
        for i, proc in enumerate(workers):
            (tmp_path / f"worker-{i}.json").unlink(missing_ok=True)
            proc.send_signal(signal.SIGUSR1)
        for i in range(4):
            path = tmp_path / f"worker-{i}.json"
            wait_for(path.exists, 5, what=f"worker {i}'s dump")
            got = State.model_validate(json.loads(path.read_text())["state"])
            if got != want:
                return False
        return True

    wait_for(replicas_equal, 15, interval=0.2, what="4 replicas equal to the bridge and kernel")


def test_ports_filter(ns: Netns, br: BridgeProcess) -> None:
    _setup(ns, br)
    with Subscriber(br.events, br.control, ports={1}) as sub:
        sub.sync(timeout=5)
        assert set(sub.state.ports) == {1} and set(sub.state.bindings) == {1}
        sub.poll(max_events=1000)
        ns.ip("link", "set", "tap0", "mtu", "1333")
        ns.ip("link", "set", "tap1", "mtu", "1444")
        got: list[ev.EventBase] = []
        wait_for(
            lambda: got.extend(sub.poll(100, 0.05)) or any(e.kind == "mtu_change" for e in got),
            10,
            what="port 1's mtu change",
        )
        assert all(getattr(e, "port_id", 1) == 1 for e in got)
        assert sub.state.ports[1].mtu == 1444 and 0 not in sub.state.ports


def test_bridge_stops_cleanly_on_sigterm(ns: Netns) -> None:
    with bridge(ns) as br:
        assert br.stop(signal.SIGTERM) == 0
        assert "bridge stopped" in br.log.read_text()


def test_workers_starting_together_cost_the_bridge_one_snapshot(
    ns: Netns, br: BridgeProcess
) -> None:
    _setup(ns, br)
    ns.batch([f"route add 10.{60 + i // 256}.{i % 256}.0/24 via 10.0.0.2" for i in range(2000)])

    wait_for(lambda: counters(br)["routes_mirrored"] >= 2000, 10, what="the routes mirrored")
    before = counters(br)["snapshots_built"]
    subs = [Subscriber(br.events, br.control, name=f"w{i}") for i in range(4)]
    try:
        for sub in subs:
            sub.sync(timeout=10)
        # One build, packed once, served to four workers and to the check below (two,
        # should the kernel say something meanwhile: built per request, it was five).
        want = wait_bridge_equals_kernel(br)
        assert all(sub.state.to_state() == want for sub in subs)
        assert counters(br)["snapshots_built"] - before <= 2
        built = counters(br)["snapshots_built"]
        ns.cmd("route add 10.99.0.0/16 via 10.0.0.2")
        wait_for(lambda: counters(br)["routes_mirrored"] >= 2001, 10, what="the new route")
        late = Subscriber(br.events, br.control, name="late")
        subs.append(late)
        late.sync(timeout=10)  # a changed state: built again
        assert late.state.lookup("10.99.1.1") is not None
        assert counters(br)["snapshots_built"] > built
    finally:
        for sub in subs:
            sub.close()


def test_a_gap_of_big_route_messages_is_repaired_from_the_journal(ns: Netns) -> None:
    # A message of ECMP routes is 80-150 KB; a replay carries such messages whole.
    with _starving(ns) as (br, sub):
        ecmp = "nexthop via 10.0.0.2 dev tap0 nexthop via 10.1.0.2 dev tap1"
        # While we are not reading: PUB drops past the high-water mark.
        ns.batch([f"route add 10.80.{i // 256}.{i % 256}/32 {ecmp}" for i in range(6000)])
        wait_for(lambda: len(br.snapshot().state.routes.rows) >= 6000, 10, what="the burst")
        state = _converge(sub, br)
        assert len(state.routes) >= 6000
        assert sub.stats.gaps >= 1 and sub.stats.journal_repairs >= 1
        assert sub.stats.snapshot_repairs == 0
