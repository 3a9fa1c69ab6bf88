"""A real DPDK process (subscribers/c/examples/dpdk-worker) following a bridge.

The worker runs DPDK without hugepages, with two net_tap ports whose taps are the
proxies, in a namespace the test creates; it applies the events to its ports through
the ethdev API and to an rte_lpm/rte_lpm6 per lcore. Its reports come from DPDK itself
(rte_eth_dev_get_mtu, rte_eth_macaddr_get, rte_eth_link_get_nowait, and every route
checked with rte_lpm_is_rule_present), and are compared with the kernel.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ctools import C_DIR, ReportingProcess, build, have_toolchain, read_json, state_of
from netutil import describe_difference, wait_bridge_equals_kernel

from ifpx.bridge.testing.harness import BridgeProcess, Netns, bridge, netns, wait_for
from ifpx.schemas.state import State
from ifpx.subscribers import Subscriber
from ifpx.subscribers.client import ControlClient

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(
        not have_toolchain("libdpdk", "libzmq", "msgpack"),
        reason="needs libdpdk-dev, libzmq3-dev and libmsgpack-dev (apt)",
    ),
]

NET_TAP_MAX_MTU = 1504  # what net_tap accepts through rte_eth_dev_set_mtu


@pytest.fixture(scope="module")
def worker_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = build(tmp_path_factory.mktemp("dpdk-worker"), C_DIR / "examples" / "dpdk-worker")
    return out / "dpdk-worker"


class Worker(ReportingProcess):
    """dpdk-worker in a namespace, with its state reports (SIGUSR1 -> JSON files)."""

    name = "dpdk-worker"

    def __init__(self, binary: Path, ns: Netns, br: BridgeProcess, workdir: Path) -> None:
        self.report_path = workdir / "worker.json"
        self.log = workdir / "worker.log"
        self.prefix = f"ifpx-{uuid.uuid4().hex[:8]}"
        lcores = "0-1" if (os.cpu_count() or 1) >= 2 else "0"
        argv = [
            "ip", "netns", "exec", ns.name, str(binary),
            "--no-huge", "-m", "512", "--no-pci", f"--file-prefix={self.prefix}", "-l", lcores,
            "--vdev=net_tap0,iface=dtap0", "--vdev=net_tap1,iface=dtap1",
            "--",
            "--events", br.events, "--control", br.control, "--report", str(self.report_path),
            "--name", "dw",
        ]  # fmt: skip
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def _current(self) -> tuple[int, dict[str, Any]] | None:
        # The main lcore writes the ports, every lcore its own file: the report is as
        # fresh as the oldest of them.
        main = read_json(self.report_path)
        if main is None:
            return None
        lcores = {n: read_json(Path(f"{self.report_path}.lcore{n}")) for n in main["lcores"]}
        if any(lc is None for lc in lcores.values()):
            return None
        gen = min([main["gen"], *(lc["gen"] for lc in lcores.values() if lc is not None)])
        return gen, {"ports": main["ports"], "gen": gen, "lcores": lcores}

    def close(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL; the EAL's runtime directory is removed."""
        super().close(grace)
        subprocess.run(["rm", "-rf", f"/var/run/dpdk/{self.prefix}"], check=False)


@pytest.fixture
def dpdk_ns() -> Iterator[Netns]:
    with netns("ifpx-dpdk") as n:
        yield n


@pytest.fixture
def dpdk_br(dpdk_ns: Netns) -> Iterator[BridgeProcess]:
    with bridge(dpdk_ns, ["--heartbeat", "0.5"]) as b:
        yield b


@pytest.fixture
def worker(
    worker_bin: Path, dpdk_ns: Netns, dpdk_br: BridgeProcess, tmp_path: Path
) -> Iterator[Worker]:
    w = Worker(worker_bin, dpdk_ns, dpdk_br, tmp_path)
    try:
        yield w
    finally:
        w.close()


# ---- what the worker should hold, from the kernel's state --------------------------------


def expected_lpm(state: State) -> list[dict[str, Any]]:
    """The main table as an LPM holds it: per prefix the route the kernel uses (the lowest
    metric with a live next hop, or a drop route), if it drops or reaches a port."""
    best: dict[str, Any] = {}
    for r in state.routes:
        usable = r.type != "unicast" or any("dead" not in h.flags for h in r.nexthops)
        if r.table != 254 or not usable:
            continue
        if r.dst not in best or r.metric < best[r.dst].metric:
            best[r.dst] = r
    out = []
    for dst, r in best.items():
        hops = [
            {"port_id": h.port_id, "gateway": h.gateway}
            for h in r.nexthops
            if h.port_id is not None and "dead" not in h.flags
        ][:8]
        if hops or r.type != "unicast":
            out.append(
                {"dst": dst, "metric": r.metric, "in_lpm": True, "type": r.type, "nexthops": hops}
            )
    return sorted(out, key=lambda x: x["dst"])


def mismatches(report: dict[str, Any], state: State) -> list[str]:
    """How the worker's DPDK-side state differs from the kernel's (empty: it matches)."""
    problems = []
    ports = {p["port_id"]: p for p in report["ports"]}
    for want in state.ports:
        got = ports.get(want.port_id)
        if got is None or not got["bound"] or got["proxy"] != want.proxy:
            problems.append(f"port {want.port_id}: not bound to {want.proxy}: {got}")
            continue
        dpdk = got["dpdk"]
        if want.mtu <= NET_TAP_MAX_MTU:
            if dpdk["mtu"] != want.mtu:
                problems.append(f"port {want.port_id}: DPDK MTU {dpdk['mtu']} != {want.mtu}")
        elif {"what": "mtu", "value": str(want.mtu), "error": -22} not in got["refused"]:
            problems.append(f"port {want.port_id}: MTU {want.mtu} not reported as refused")
        if dpdk["mac"] != want.mac:
            problems.append(f"port {want.port_id}: DPDK MAC {dpdk['mac']} != {want.mac}")
        if dpdk["link_up"] != (want.up and want.carrier):
            problems.append(f"port {want.port_id}: DPDK link {dpdk['link_up']} != {want.up}")
        if sorted(got["applied"]["addrs"]) != sorted(want.addrs):
            problems.append(f"port {want.port_id}: addrs {got['applied']['addrs']}")
    lpm = expected_lpm(state)
    neighs = sorted((n.port_id, n.ip, n.mac, n.state) for n in state.neighs)
    for n, lc in report["lcores"].items():
        routes = sorted(lc["fwd"]["routes"], key=lambda x: x["dst"])
        if routes != lpm:
            problems.append(f"lcore {n}: LPM {routes} != {lpm}")
        got_neighs = sorted(
            (x["port_id"], x["ip"], x["mac"], x["state"]) for x in lc["fwd"]["neighs"]
        )
        if got_neighs != neighs:
            problems.append(f"lcore {n}: neighbours {got_neighs} != {neighs}")
        replica = state_of(lc)
        if replica != state:
            problems.append(f"lcore {n}: replica: {describe_difference(replica, state)}")
    return problems


def converge(w: Worker, br: BridgeProcess, timeout: float = 30.0) -> tuple[dict[str, Any], State]:
    """Report until the worker matches the kernel (through the bridge); return both."""
    deadline = time.monotonic() + timeout
    while True:
        state = wait_bridge_equals_kernel(br, timeout)
        report = w.report()
        problems = mismatches(report, state)
        if not problems:
            return report, state
        if time.monotonic() > deadline:
            raise AssertionError("\n".join(problems) + "\n" + w.output()[-3000:])
        time.sleep(0.1)


def _udp_to(ns: Netns, ip: str) -> None:
    # Out through the kernel's route, into the DPDK port on the other side of the tap.
    code = (
        f"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('{ip}', 9))"
    )
    subprocess.run(["ip", "netns", "exec", ns.name, "python3", "-c", code], check=True, timeout=10)


# ---- tests ------------------------------------------------------------------------------------


def test_dpdk_worker_applies_events_to_its_ports(
    dpdk_ns: Netns, dpdk_br: BridgeProcess, worker: Worker
) -> None:
    ns, br = dpdk_ns, dpdk_br
    first = worker.report()
    assert [p["proxy"] for p in first["ports"]] == ["dtap0", "dtap1"]  # bound by the worker
    converge(worker, br)
    ns.batch(
        [
            "link set dtap0 mtu 1400",
            "link set dtap1 mtu 9000",  # above net_tap's limit: refused, reported
            "link set dtap0 address 02:00:00:00:00:aa",
            "addr add 10.0.0.1/24 dev dtap0",
            "addr add 10.1.0.1/24 dev dtap1",
            "addr add 2001:db8::1/64 dev dtap0 nodad",
            "route add 10.50.0.0/16 via 10.0.0.2",
            "route add 10.50.0.0/16 via 10.1.0.2 metric 50",
            "route add 10.60.0.0/16 nexthop via 10.0.0.2 nexthop via 10.1.0.2",
            "route add default via 10.1.0.9",
            "route add 2001:db8:5::/48 via 2001:db8::2",
            "route add 10.70.0.0/16 via 10.0.0.2 table 100",
            "route add blackhole 10.50.9.0/24",  # inside 10.50/16: dropped, not forwarded
            "route add unreachable 2001:db8:5:1::/64",
            "neigh add 10.0.0.2 lladdr 02:00:00:00:00:02 dev dtap0",
            "neigh add 2001:db8::2 lladdr 02:00:00:00:00:03 dev dtap0",
        ]
    )
    # The barrier: every lcore's subscriber reports what it applied, as dw-lcoreN.
    with ControlClient(br.control) as client:
        waited = client.wait_applied(timeout=30)
    assert waited.done, waited.waiting
    assert sorted(waited.workers) == sorted(f"dw-lcore{n}" for n in first["lcores"])
    report, _ = converge(worker, br)
    by_port = {p["port_id"]: p for p in report["ports"]}
    assert by_port[0]["dpdk"]["mtu"] == 1400 and by_port[0]["dpdk"]["mac"] == "02:00:00:00:00:aa"
    assert by_port[1]["dpdk"]["mtu"] <= NET_TAP_MAX_MTU  # 9000 was refused ...
    assert any(r["value"] == "9000" for r in by_port[1]["refused"])  # ... and reported
    for lc in report["lcores"].values():
        dsts = {r["dst"]: r for r in lc["fwd"]["routes"]}
        assert len(dsts["10.60.0.0/16"]["nexthops"]) == 2  # ECMP
        assert dsts["10.50.0.0/16"]["metric"] == 0  # the lower metric is the one installed
        assert "0.0.0.0/0" in dsts and "2001:db8:5::/48" in dsts
        assert "10.70.0.0/16" not in dsts  # another table is not the LPM's
        assert lc["fwd"]["stats"]["routes_other_table"] >= 1
        assert dsts["10.50.9.0/24"]["type"] == "blackhole"
        assert dsts["2001:db8:5:1::/64"]["type"] == "unreachable"
        assert lc["main_table_decides"] is True  # the kernel's default rules only
    ns.cmd("rule add pref 100 from 10.0.0.0/24 lookup 100")
    report, _ = converge(worker, br)
    assert [lc["main_table_decides"] for lc in report["lcores"].values()] == [False] * len(
        report["lcores"]
    )
    assert "this LPM follows table 254 only" in worker.output()
    ns.cmd("rule del pref 100")

    # A packet the kernel routes out of dtap0 arrives on DPDK port 0 and hits the LPM.
    hits = sum(lc["fwd"]["stats"]["lpm_hits"] for lc in report["lcores"].values())
    _udp_to(ns, "10.50.1.1")
    wait_for(
        lambda: (
            sum(lc["fwd"]["stats"]["lpm_hits"] for lc in worker.report()["lcores"].values()) > hits
        ),
        15,
        interval=0.1,
        what="the packet to reach an lcore's LPM",
    )

    ns.batch(
        [
            "link set dtap1 down",  # the kernel drops IPv4 routes through it silently
            "route del 10.50.0.0/16 via 10.0.0.2",  # the metric 50 one takes over ...
            "neigh del 10.0.0.2 dev dtap0",
            "addr del 2001:db8::1/64 dev dtap0",
            "link set dtap0 mtu 1280",
        ]
    )
    report, _ = converge(worker, br)
    assert report["ports"][1]["dpdk"]["link_up"] is False
    for lc in report["lcores"].values():
        # The kernel marked the ECMP route's hop through dtap1 dead: never chosen.
        dsts = {r["dst"]: r for r in lc["fwd"]["routes"]}
        assert [h["port_id"] for h in dsts["10.60.0.0/16"]["nexthops"]] == [0]
    ns.batch(["link set dtap1 up", "link set dtap1 mtu 1500"])
    report, _ = converge(worker, br)
    assert report["ports"][1]["dpdk"]["link_up"] is True
    assert report["ports"][1]["dpdk"]["mtu"] == 1500
    assert "refuses MTU 9000" in worker.output()

    # Routes through ever-new gateways, then gone: the lcores' group tables (a fixed
    # size) hold no group no route uses.
    groups = {n: lc["fwd"]["groups"] for n, lc in report["lcores"].items()}
    ns.batch([f"route add 10.90.{i}.0/24 via 10.0.0.{i + 10}" for i in range(60)])
    report, _ = converge(worker, br)
    assert all(lc["fwd"]["groups"] >= groups[n] + 60 for n, lc in report["lcores"].items())
    ns.batch([f"route del 10.90.{i}.0/24" for i in range(60)])
    report, _ = converge(worker, br)
    # (Back where they were; a change of the kernel's own meanwhile may add one.)
    assert all(lc["fwd"]["groups"] <= groups[n] + 1 for n, lc in report["lcores"].items())


def test_dpdk_worker_resyncs_after_bridge_restart_and_matches_python(
    dpdk_ns: Netns, dpdk_br: BridgeProcess, worker: Worker
) -> None:
    ns, br = dpdk_ns, dpdk_br
    worker.report()
    ns.batch(
        [
            "addr add 10.0.0.1/24 dev dtap0",
            "addr add 10.1.0.1/24 dev dtap1",
            "route add 10.50.0.0/16 via 10.0.0.2",
            "neigh add 10.0.0.2 lladdr 02:00:00:00:00:02 dev dtap0",
        ]
    )
    report, _ = converge(worker, br)
    epochs = {lc["epoch"] for lc in report["lcores"].values()}
    assert br.proc is not None
    br.proc.send_signal(signal.SIGKILL)
    br.proc.wait(10)
    ns.batch(  # while the bridge is down
        [
            "link set dtap0 mtu 1450",
            "route del 10.50.0.0/16",
            "route add 10.88.0.0/16 via 10.1.0.2",
            "neigh add 10.1.0.2 lladdr 02:00:00:00:01:02 dev dtap1",
        ]
    )
    br.start()
    report, state = converge(worker, br)
    for lc in report["lcores"].values():
        assert lc["epoch"] not in epochs
        assert lc["subscriber"]["snapshot_repairs"] >= 1
        assert {r["dst"] for r in lc["fwd"]["routes"]} >= {"10.88.0.0/16"}
        assert "10.50.0.0/16" not in {r["dst"] for r in lc["fwd"]["routes"]}
    assert report["ports"][0]["dpdk"]["mtu"] == 1450

    # The Python Subscriber on the same bridge ends with the C worker's state.
    with Subscriber(br.events, br.control) as py:
        py.sync(timeout=5)
        ns.batch(
            [f"route add 10.{100 + i // 200}.{i % 200}.0/24 via 10.0.0.2" for i in range(1000)]
        )
        report, state = converge(worker, br)
        deadline = time.monotonic() + 15
        while py.state.to_state() != state and time.monotonic() < deadline:
            py.poll(max_events=100_000, timeout=0.05)
        assert py.state.to_state() == state
        for lc in report["lcores"].values():
            assert state_of(lc) == py.state.to_state()
            assert len(lc["fwd"]["routes"]) >= 1000
