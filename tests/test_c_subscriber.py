"""The C subscriber library (subscribers/c: ifpx.h) against a live bridge and the Python side."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ctools import CSubscriber, build, have_toolchain, state_of
from hypothesis import given, settings
from hypothesis import strategies as st
from netutil import describe_difference, wait_bridge_equals_kernel
from test_core import ops
from test_replica import REBOUND, _core
from test_subscriber_netns import _mtu_flaps

from ifpx.bridge.testing.harness import BridgeProcess, Netns, bridge, wait_for
from ifpx.schemas import codec
from ifpx.schemas import commands as c
from ifpx.schemas.state import State
from ifpx.subscribers import Subscriber

pytestmark = pytest.mark.skipif(
    not have_toolchain("libzmq", "msgpack"),
    reason="needs cc, make, pkg-config, libzmq3-dev and libmsgpack-dev (apt)",
)


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("cbuild"))


# ---- the replica and its difference walker, on snapshots (no sockets) -------------------


def _reply(state: State) -> bytes:
    from ifpx.schemas.state import RouteTable, SnapshotState

    wire = SnapshotState(
        bindings=state.bindings,
        ports=state.ports,
        routes=RouteTable.from_routes(state.routes),
        neighs=state.neighs,
        rules=state.rules,
    )
    result = c.SnapshotResult(epoch=1, seq=1, topic_seqs={}, cfg_done=True, state=wire)
    return codec.encode_reply(c.OkReply(result=result))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(ops, max_size=30), st.lists(ops, max_size=30)), min_size=5, max_size=5
    )
)
def test_c_diff_takes_any_state_to_any_other(tools: Path, pairs: list) -> None:  # type: ignore[type-arg]
    # Unrelated states, and a state with its own future (which shares most of it).
    states = [(_core(a).snapshot(), _core(b).snapshot()) for a, b in pairs]
    states += [(_core(a).snapshot(), _core(a + b).snapshot()) for a, b in pairs]
    states.append(REBOUND)
    lines = "".join(f"{_reply(a).hex()} {_reply(b).hex()}\n" for a, b in states)
    proc = subprocess.run(
        [str(tools / "ifpx_replica_check")], input=lines, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    for (_a, b), line in zip(states, proc.stdout.splitlines(), strict=True):
        out = json.loads(line)
        assert state_of({"state": out["target"]}) == b.canonical()
        applied = state_of({"state": out["applied"]})
        assert applied == b.canonical(), describe_difference(applied, b.canonical())
        assert out["again"] == 0


# ---- against a live bridge ------------------------------------------------------------------


@pytest.fixture
def csub(tools: Path, br: BridgeProcess, tmp_path: Path) -> Iterator[CSubscriber]:
    s = CSubscriber(
        tools / "ifpx_sub", tmp_path, br.events, br.control, "--bind", "0=tap0", "--bind", "1=tap1"
    )
    try:
        yield s
    finally:
        s.close()


def _converge(s: CSubscriber, br: BridgeProcess, timeout: float = 20.0) -> State:
    """Report until the C replica equals the bridge's snapshot (which equals the kernel)."""
    deadline = time.monotonic() + timeout
    while True:
        want = wait_bridge_equals_kernel(br, timeout)
        got = state_of(s.report())
        if got == want:
            return want
        if time.monotonic() > deadline:
            raise AssertionError(f"C replica != bridge: {describe_difference(got, want)}")
        time.sleep(0.05)


def _configure(ns: Netns) -> None:
    ns.batch(
        [
            "link set tap0 up",
            "link set tap1 up",
            "link set tap0 mtu 1400",
            "link set tap1 address 02:00:00:00:01:01",
            "addr add 10.0.0.1/24 dev tap0",
            "addr add 10.1.0.1/24 dev tap1",
            "addr add 2001:db8::1/64 dev tap0",
            "route add 10.50.0.0/16 via 10.0.0.2",
            "route add 10.60.0.0/16 nexthop via 10.0.0.2 nexthop via 10.1.0.2",
            "route add 2001:db8:5::/48 via 2001:db8::2",
            "route add blackhole 10.50.9.0/24",
            "route add unreachable 2001:db8:5:1::/64",
            "route add 10.70.0.0/16 via 10.0.0.2 src 10.0.0.1",
            "neigh add 10.0.0.7 lladdr 02:00:00:00:00:07 dev tap0",
            "neigh add 2001:db8::7 lladdr 02:00:00:00:00:08 dev tap0",
        ]
    )


@pytest.mark.netns
def test_c_subscriber_follows_the_bridge(ns: Netns, br: BridgeProcess, csub: CSubscriber) -> None:
    first = csub.report()
    assert first["cfg_done"] is True
    assert {b["port_id"] for b in first["state"]["bindings"]} == {0, 1}
    _configure(ns)
    state = _converge(csub, br)
    assert any(len(r.nexthops) == 2 for r in state.routes)  # the ECMP route made it
    ns.batch(
        [
            "route del 10.50.0.0/16",
            "addr del 10.1.0.1/24 dev tap1",
            "neigh del 10.0.0.7 dev tap0",
            "link set tap0 down",
            "link set tap1 name tapx",
        ]
    )
    state = _converge(csub, br)
    assert [p.proxy for p in state.ports] == ["tap0", "tapx"]
    events = [json.loads(line) for line in csub.output().splitlines() if line.startswith("{")]
    kinds = {e["kind"] for e in events}
    assert {
        "port_bound",
        "cfg_done",
        "route_add",
        "route_del",
        "neigh6_add",
        "proxy_renamed",
    } <= kinds
    assert csub.report()["stats"]["bad_messages"] == 0


@pytest.mark.netns
def test_c_subscriber_resyncs_after_bridge_restart(
    ns: Netns, br: BridgeProcess, csub: CSubscriber
) -> None:
    _configure(ns)
    _converge(csub, br)
    epoch = csub.report()["epoch"]
    assert br.proc is not None
    br.proc.send_signal(signal.SIGKILL)
    br.proc.wait(10)
    ns.batch(
        ["link set tap1 mtu 1280", "route add 10.88.0.0/16 via 10.1.0.2", "route del 10.60.0.0/16"]
    )  # while the bridge is down
    br.start()
    state = _converge(csub, br)
    report = csub.report()
    assert report["epoch"] != epoch
    assert report["stats"]["snapshot_repairs"] >= 1
    assert any(r.dst == "10.88.0.0/16" for r in state.routes)
    # the repair reached the application as events between the resync markers
    tail = csub.output()[csub.output().index('"resync_begin"') :]
    assert '"route_del"' in tail and '"resync_end"' in tail
    assert '"reason": "bridge restarted (new epoch)"' in tail


@pytest.mark.netns
@pytest.mark.parametrize("journal", ["1000", "4"])
def test_c_subscriber_repairs_gaps(ns: Netns, tools: Path, tmp_path: Path, journal: str) -> None:
    """A stalled worker loses messages past the high-water marks: the journal repairs a
    small gap; when the journal no longer holds it, a snapshot does."""
    with bridge(ns, ["--hwm", "2", "--journal", journal, "--heartbeat", "0.5"]) as br:
        s = CSubscriber(
            tools / "ifpx_sub",
            tmp_path,
            br.events,
            br.control,
            "--bind",
            "0=tap0",
            "--quiet",
            "--rcvhwm",
            "2",
        )
        try:
            seq = s.report()["seq"]
            s.proc.send_signal(signal.SIGSTOP)
            _mtu_flaps(ns, 60)
            wait_for(lambda: br.snapshot().seq > seq + 20, 10, what="the burst")
            s.proc.send_signal(signal.SIGCONT)
            state = _converge(s, br)
            assert state.ports[0].mtu == 1300 + 59
            stats = s.report()["stats"]
            assert stats["gaps"] >= 1
            if journal == "4":
                assert stats["snapshot_repairs"] >= 1
            else:
                assert stats["journal_repairs"] >= 1 and stats["snapshot_repairs"] == 0
        finally:
            s.proc.send_signal(signal.SIGCONT)
            s.close()


@pytest.mark.netns
def test_python_and_c_subscribers_end_identical(
    ns: Netns, br: BridgeProcess, csub: CSubscriber
) -> None:
    csub.report()
    with Subscriber(br.events, br.control) as py:
        py.sync(timeout=5)
        _configure(ns)
        ns.batch(
            [f"route add 10.{100 + i // 250}.{i % 250}.0/24 via 10.1.0.2" for i in range(2000)]
        )
        want = _converge(csub, br)
        deadline = time.monotonic() + 15
        while py.state.to_state() != want and time.monotonic() < deadline:
            py.poll(max_events=100_000, timeout=0.05)
        assert py.state.to_state() == want
        assert state_of(csub.report()) == py.state.to_state()


@pytest.mark.netns
def test_c_subscriber_over_tcp_with_curve(ns: Netns, tools: Path, tmp_path: Path) -> None:
    """The C library reads `ifpx keygen` certificates (IFPX_CURVE_*) as the Python tools do."""
    import os

    from test_reliability_netns import _free_ports

    from ifpx.subscribers.security import CurveClient, keygen

    ev_port, ctl_port = _free_ports(2)
    events, control = f"tcp://127.0.0.1:{ev_port}", f"tcp://127.0.0.1:{ctl_port}"
    server_pub, server_sec = keygen(tmp_path / "server", "bridge")
    client_pub, client_sec = keygen(tmp_path / "client", "worker")
    _, intruder_sec = keygen(tmp_path / "intruder", "intruder")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / client_pub.name).write_bytes(client_pub.read_bytes())
    extra = ["--events", events, "--control", control, "--heartbeat", "0.5"]
    extra += ["--curve-secret", str(server_sec), "--curve-clients", str(allowed)]

    def env(cert: Path) -> dict[str, str]:
        return os.environ | {"IFPX_CURVE_SERVER_KEY": str(server_pub), "IFPX_CURVE_CERT": str(cert)}

    good = CurveClient.load(server_pub, client_sec)
    with bridge(ns, extra, (good.server_public, good.public, good.secret)):
        intruder = CSubscriber(
            tools / "ifpx_sub", tmp_path, events, control, "--bind", "0=tap0", env=env(intruder_sec)
        )
        try:
            assert intruder.proc.wait(30) == 1  # its bind was never answered
            assert "Connection timed out" in intruder.output()
        finally:
            intruder.close()
        s = CSubscriber(
            tools / "ifpx_sub", tmp_path, events, control, "--bind", "0=tap0", env=env(client_sec)
        )
        try:
            s.report()
            ns.ip("link", "set", "tap0", "mtu", "1300")
            wait_for(
                lambda: [p["mtu"] for p in s.report()["state"]["ports"]] == [1300],
                10,
                what="the event over CURVE",
            )
        finally:
            s.close()


@pytest.mark.netns
def test_ifpx_sub_reports_route_count_marks(
    ns: Netns, br: BridgeProcess, tools: Path, tmp_path: Path
) -> None:
    """``--mark`` (how the benchmark times C subscribers): a line as each count is reached."""
    ns.batch(["link set tap0 up", "addr add 10.0.0.1/24 dev tap0"])
    br.result(c.Bind(port_id=0, proxy="tap0"))
    base = len(wait_bridge_equals_kernel(br, 20).routes)
    marks = ["--mark", str(base + 50), "--mark", str(base)]
    s = CSubscriber(tools / "ifpx_sub", tmp_path, br.events, br.control, "--quiet", *marks)
    try:

        def lines(count: int) -> list[dict[str, float]] | None:
            got = [json.loads(x) for x in s.output().splitlines() if x.startswith("{")]
            return got if len(got) >= count else None

        synced = wait_for(lambda: lines(1), 20, what="the synced line")[0]
        assert synced["routes"] == base
        t0 = time.monotonic()  # the same clock as the lines' (CLOCK_MONOTONIC)
        ns.batch([f"route add 10.9.{i}.0/24 via 10.0.0.2" for i in range(50)])
        up = wait_for(lambda: lines(2), 20, what="the first mark")[1]
        assert up["routes"] == base + 50 and up["t"] >= t0
        assert up["gaps"] == 0 and up["snapshot_repairs"] == 0 and up["rss"] >= 0
        ns.batch([f"route del 10.9.{i}.0/24" for i in range(50)])
        down = wait_for(lambda: lines(3), 20, what="the second mark")[2]
        assert down["routes"] == base and down["t"] >= up["t"]
    finally:
        s.close()
