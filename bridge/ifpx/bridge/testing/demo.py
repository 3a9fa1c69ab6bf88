"""``ifpx demo``: the whole path in a throwaway netns, in well under 30 seconds.

Two taps, a bridge, ports 0 -> dtap0 and 1, 2 -> dtap1 (one-to-many), worker
subscriber processes printing what they apply, a scripted run of iproute2
changes, ``ifpx ctl wait`` until every worker has applied the last of them, and a
final check that every replica equals the bridge's snapshot and the kernel's own
view. Everything is removed at the end, also on Ctrl-C.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from ifpx.schemas import commands as c
from ifpx.schemas.state import State

from .harness import BridgeProcess, Netns, is_root, netns, wait_for
from .kernelview import kernel_state

SCRIPT: list[tuple[str, str]] = [
    ("MTU", "link set dtap0 mtu 1400"),
    ("MAC", "link set dtap0 address 02:00:00:00:00:10"),
    ("link up", "link set dtap0 up"),
    ("link up (1-to-many: ports 1 and 2)", "link set dtap1 up"),
    ("IPv4 address", "addr add 192.0.2.1/24 dev dtap0"),
    ("IPv4 address", "addr add 198.51.100.1/24 dev dtap1"),
    ("IPv6 address", "-6 addr add 2001:db8:1::1/64 dev dtap0 nodad"),
    ("route", "route add 203.0.113.0/24 via 192.0.2.254"),
    (
        "ECMP route",
        "route add 10.50.0.0/16 nexthop via 192.0.2.2 dev dtap0"
        " nexthop via 198.51.100.2 dev dtap1 weight 2",
    ),
    ("IPv6 route", "-6 route add 2001:db8:99::/48 via 2001:db8:1::2"),
    ("neighbour", "neigh add 192.0.2.2 lladdr 02:00:00:00:00:02 dev dtap0"),
    ("IPv6 neighbour", "-6 neigh add 2001:db8:1::2 lladdr 02:00:00:00:00:03 dev dtap0"),
    ("route removed", "route del 203.0.113.0/24"),
    ("link down (the kernel drops its IPv4 routes silently)", "link set dtap1 down"),
]


def _say(text: str) -> None:
    print(f"\033[1m==> {text}\033[0m", flush=True)


def _replica(dump_dir: Path, worker: int) -> State | None:
    path = dump_dir / f"worker-{worker}.json"
    try:
        doc = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return State.model_validate(doc["state"])


def _replicas(workers: list[subprocess.Popen[bytes]], dump_dir: Path) -> list[State]:
    for i, proc in enumerate(workers):
        (dump_dir / f"worker-{i}.json").unlink(missing_ok=True)
        proc.send_signal(signal.SIGUSR1)
    out = []
    for i in range(len(workers)):
        got = wait_for(partial(_replica, dump_dir, i), 5.0, what=f"worker {i}'s dump")
        assert got is not None
        out.append(got.canonical())
    return out


def _wait_applied(bridge: BridgeProcess, seq: int) -> subprocess.CompletedProcess[str]:
    """``ifpx ctl wait``, as an operator runs it."""
    argv = [sys.executable, "-m", "ifpx.subscribers", "ctl", "--control", bridge.control]
    argv += ["wait", "--seq", str(seq), "--timeout", "10"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def main(keep: bool = False, workers: int = 2) -> int:
    """Run the demo; return 0 if every replica ended equal to the kernel."""
    if not is_root():
        print("ifpx demo needs root (it creates a network namespace and taps)", file=sys.stderr)
        return 2
    if shutil.which("ip") is None:
        print("ifpx demo needs iproute2's ip", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="ifpx-demo-"))
    try:
        with netns("ifpx-demo") as ns:
            procs: list[subprocess.Popen[bytes]] = []
            bridge = BridgeProcess(ns, workdir)
            try:
                return _run(ns, bridge, procs, workdir, workers, keep, started)
            finally:
                _stop_all(procs)
                bridge.stop()
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _run(
    ns: Netns,
    bridge: BridgeProcess,
    procs: list[subprocess.Popen[bytes]],
    workdir: Path,
    workers: int,
    keep: bool,
    started: float,
) -> int:
    _say(f"netns {ns.name}: taps dtap0, dtap1")
    ns.add_tap("dtap0")
    ns.add_tap("dtap1")
    _say(f"starting the bridge: ifpx {' '.join(bridge.argv()[3:])}")
    bridge.start()
    for port, proxy in ((0, "dtap0"), (1, "dtap1"), (2, "dtap1")):
        result = bridge.result(c.Bind(port_id=port, proxy=proxy))
        assert isinstance(result, c.BindResult)
        _say(f"bound port {port} -> {proxy} (ifindex {result.binding.ifindex})")
    _say(f"starting {workers} worker subscribers (one process each)")
    for i in range(workers):
        argv = [sys.executable, "-m", "ifpx.subscribers.workers", "--worker-id", str(i)]
        argv += ["--events", bridge.events, "--control", bridge.control, "--name", "demo"]
        procs.append(subprocess.Popen([*argv, "--dump-dir", str(workdir)]))
    for i in range(workers):
        wait_for((workdir / f"worker-{i}.ready").exists, 15.0, what=f"worker {i} to sync")
    for what, line in SCRIPT:
        _say(f"{what}: ip {line}")
        ns.cmd(line)
        time.sleep(0.25)  # pacing for the reader; the end check below synchronises
    # The bridge may still publish what a link change did silently (its re-dumps
    # settle): whatever the snapshot says, the workers must have applied.
    for _attempt in range(3):
        snap = bridge.snapshot()
        kernel = kernel_state(ns.name, snap.state.bindings).canonical()
        want = snap.state.canonical()
        _say("checking: bridge snapshot == kernel (ip -j ... show)")
        if want != kernel:
            print(f"MISMATCH\nbridge: {want}\nkernel: {kernel}", file=sys.stderr)
            return 1
        _say(f"ifpx ctl wait --seq {snap.seq}: every worker has applied it")
        waited = _wait_applied(bridge, snap.seq)
        print(waited.stdout, end="", file=sys.stderr if waited.returncode else sys.stdout)
        if waited.returncode != 0:
            print(waited.stderr, end="", file=sys.stderr)
            return 1
        _say("checking: every worker's replica == bridge snapshot")
        replicas = _replicas(procs, workdir)
        if all(r == want for r in replicas):
            break
        if bridge.snapshot().seq == snap.seq:  # nothing moved on: they differ for real
            print(f"MISMATCH\nbridge: {want}\nworkers: {replicas}", file=sys.stderr)
            return 1
    else:
        print("the bridge kept changing; no stable state to compare", file=sys.stderr)
        return 1
    status = bridge.result(c.Status())
    assert isinstance(status, c.StatusResult)
    _say(
        f"OK: {len(procs)} replicas == bridge == kernel: {len(want.ports)} ports, "
        f"{len(want.routes)} routes, {len(want.neighs)} neighbours; "
        f"{status.counters['events']} events, "
        f"{status.counters['compensations']} kernel-quirk compensations, "
        f"{time.monotonic() - started:.1f}s"
    )
    if keep:
        _say(f"--keep: netns {ns.name} stays until you press Enter")
        input()
    return 0
