"""The RFC's own API (rte_if_proxy.h, v3 and v1) served by a bridge, judged by the RFC's test.

``subscribers/c/rte/rte_ifpx_check`` walks the steps of the RFC's unit test
(app/test/test_if_proxy.c): a DPDK process with one port makes a net_tap proxy with
``rte_ifpx_proxy_create``, binds the port to it, and every change made with ``ip`` on
the proxy must reach it as the RFC's event, through callbacks and then through an
rte_ring. Given the RFC's file itself (``IFPX_RFC_TEST=.../test_if_proxy.c``: its
license keeps it out of this repository), the test builds and runs it too, with the
small ``test.h`` of tests/rfc. ``rte_ifpx_v1_check`` is the cover letter's example (v1)
as an application of it: two ports, two proxies, the twelve callbacks.
"""

from __future__ import annotations

import errno
import json
import os
import select
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from ctools import C_DIR, have_toolchain

from ifpx.bridge.testing.harness import BridgeProcess, Netns, bridge, netns, wait_for
from ifpx.schemas import commands as c

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(
        not have_toolchain("libdpdk", "libzmq", "msgpack"),
        reason="needs libdpdk-dev, libzmq3-dev and libmsgpack-dev (apt)",
    ),
]

RTE_DIR = C_DIR / "rte"
STEPS = [
    "link up", "mac", "mtu", "addr add", "addr del", "route add", "route del", "neigh add",
    "neigh del", "addr6 add", "addr6 del", "route6 add", "route6 del", "neigh6 add",
    "neigh6 del", "link down",
]  # fmt: skip


@pytest.fixture(scope="module")
def rte_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ifpx-rte")
    subprocess.run(["make", "-s", "-C", str(RTE_DIR), f"OUT={out}"], check=True, timeout=300)
    return out


@pytest.fixture
def rte_ns() -> Iterator[Netns]:
    with netns("ifpx-rte") as n:
        yield n


@pytest.fixture
def rte_br(rte_ns: Netns) -> Iterator[BridgeProcess]:
    with bridge(rte_ns, ["--heartbeat", "0.5"]) as b:
        yield b


def _run_dpdk(
    binary: Path,
    ns: Netns,
    br: BridgeProcess,
    env: dict[str, str] | None = None,
    extra: tuple[str, ...] = (),
) -> str:
    """Run a DPDK program with a null port (and ``extra`` EAL arguments) in ``ns``,
    following ``br``; its stdout."""
    prefix = f"ifpx-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **(env or {}), "IFPX_EVENTS": br.events, "IFPX_CONTROL": br.control}
    argv = [
        "ip", "netns", "exec", ns.name, str(binary), "--no-huge", "-m", "256", "--no-pci",
        f"--file-prefix={prefix}", "-l", "0", "--vdev=net_null0", *extra,
    ]  # fmt: skip
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
    finally:
        subprocess.run(["rm", "-rf", f"/var/run/dpdk/{prefix}"], check=False)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return proc.stdout


def _check_passed(out: str, br: BridgeProcess) -> None:
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    steps = [(d["mode"], d["step"], d["ok"]) for d in lines if "step" in d]
    assert steps == [("callbacks", "cfg_done", True)] + [
        (mode, step, True) for mode in ("callbacks", "ring") for step in STEPS
    ], out
    findings = [d for d in lines if "finding" in d]
    assert findings and all(d.get("ok") for d in findings), findings
    assert lines[-1] == {"failures": 0}
    # The bindings were the bridge's while the process lived, and are gone with it.
    assert br.snapshot().state.bindings == []


@pytest.mark.parametrize("ports", [1, 2])
def test_the_rfc_steps_pass_with_callbacks_and_with_a_ring(
    rte_build: Path, rte_ns: Netns, rte_br: BridgeProcess, ports: int
) -> None:
    # With two ports bound to the one proxy, each is told every change.
    extra = ("--vdev=net_null1",) if ports == 2 else ()
    out = _run_dpdk(rte_build / "rte_ifpx_check", rte_ns, rte_br, extra=extra)
    _check_passed(out, rte_br)


V1_STEPS = [
    "cfg_finished", "link up", "mtu", "mac", "addr add", "route add", "route del", "addr6 add",
    "route6 add", "route6 del", "addr6 del", "addr del", "link down",
]  # fmt: skip


def _v1_passed(out: str, br: BridgeProcess) -> None:
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [(d["step"], d["ok"]) for d in lines if "step" in d] == [
        (step, True) for step in V1_STEPS
    ], out
    findings = [d for d in lines if "finding" in d]
    assert len(findings) == 2 and all(d["ok"] for d in findings), findings
    assert lines[-1] == {"failures": 0}
    assert br.snapshot().state.bindings == []


@pytest.mark.parametrize("ports", [2, 3])
def test_the_cover_letters_v1_example_sees_each_callback_once_per_port_and_route(
    rte_build: Path, rte_ns: Netns, rte_br: BridgeProcess, ports: int
) -> None:
    # A third port shares the first proxy: its port events come twice, its routes once.
    extra = tuple(f"--vdev=net_null{i}" for i in range(1, ports))
    _v1_passed(_run_dpdk(rte_build / "rte_ifpx_v1_check", rte_ns, rte_br, extra=extra), rte_br)


def test_an_application_builds_from_pkg_config_ifpx_rte_and_runs(
    rte_ns: Netns, rte_br: BridgeProcess, tmp_path: Path
) -> None:
    usr = tmp_path / "usr"
    subprocess.run(
        ["make", "-s", "-C", str(C_DIR), f"OUT={tmp_path / 'build'}", f"PREFIX={usr}", "install"],
        check=True,
        timeout=300,
    )
    env = {"PKG_CONFIG_PATH": str(usr / "lib" / "pkgconfig"), "LD_LIBRARY_PATH": str(usr / "lib")}
    flags = subprocess.run(
        ["pkg-config", "--cflags", "--libs", "ifpx-rte"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    # A v3 application and a v1 one (the cover letter's), from the same installed header.
    apps = {}
    for name in ("rte_ifpx_check", "rte_ifpx_v1_check"):
        app = apps[name] = tmp_path / name
        source = RTE_DIR / f"{name}.c"
        subprocess.run(["cc", "-O2", "-o", str(app), str(source), *flags], check=True, timeout=300)
        needed = subprocess.run(
            ["ldd", str(app)], env={**os.environ, **env}, capture_output=True, text=True
        ).stdout
        assert str(usr / "lib" / "libifpx-rte.so.1") in needed
    _check_passed(_run_dpdk(apps["rte_ifpx_check"], rte_ns, rte_br, env), rte_br)
    v1 = _run_dpdk(apps["rte_ifpx_v1_check"], rte_ns, rte_br, env, extra=("--vdev=net_null1",))
    _v1_passed(v1, rte_br)


RFC_TEST = os.environ.get("IFPX_RFC_TEST")


@pytest.mark.skipif(
    not RFC_TEST,
    reason="set IFPX_RFC_TEST to the RFC's app/test/test_if_proxy.c (v3) to run it as is",
)
def test_the_rfcs_own_unit_test_passes(
    rte_build: Path, rte_ns: Netns, rte_br: BridgeProcess, tmp_path: Path
) -> None:
    assert RFC_TEST is not None
    binary = tmp_path / "test_if_proxy"
    pkgs = subprocess.run(
        ["pkg-config", "--cflags", "--libs", "libdpdk", "libzmq", "msgpack"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    subprocess.run(
        [
            "cc", "-O2", "-std=gnu11", "-DALLOW_EXPERIMENTAL_API",
            f"-I{Path(__file__).parent / 'rfc'}", f"-I{RTE_DIR}", f"-I{C_DIR}",
            "-o", str(binary), RFC_TEST,
            str(rte_build / "libifpx-rte.a"), str(rte_build / "ifpx" / "libifpx.a"),
            *pkgs, "-lpthread",
        ],
        check=True,
        timeout=300,
    )  # fmt: skip
    out = _run_dpdk(binary, rte_ns, rte_br)
    assert "if_proxy_autotest: Test OK" in out, out


# ---- the layer's edges (rte_ifpx_edges.c) ----------------------------------------------


@pytest.fixture(scope="module")
def rte_asan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ifpx-rte-asan")
    subprocess.run(
        ["make", "-s", "-C", str(RTE_DIR), f"OUT={out}", "SANITIZE=1", f"{out}/rte_ifpx_edges"],
        check=True,
        timeout=600,
    )
    return out


def _edges(
    binary: Path, ns: Netns, br: BridgeProcess, mode: list[str], ports: int = 1
) -> subprocess.Popen[str]:
    """rte_ifpx_edges in ``mode``, running in ``ns``: its stdin and stdout are pipes."""
    prefix = f"ifpx-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "IFPX_EVENTS": br.events, "IFPX_CONTROL": br.control}
    env["ASAN_OPTIONS"] = "detect_leaks=0"  # DPDK's EAL keeps its allocations to the end
    vdevs = [f"--vdev=net_null{i}" for i in range(ports)]
    argv = [
        "ip", "netns", "exec", ns.name, str(binary), "--no-huge", "-m", "256", "--no-pci",
        f"--file-prefix={prefix}", "-l", "0", *vdevs, "--", *mode,
    ]  # fmt: skip
    return subprocess.Popen(
        argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _json_line(
    proc: subprocess.Popen[str], key: str | None = None, timeout: float = 30.0
) -> dict[str, object]:
    """The next JSON line ``proc`` prints (with ``key``, if given; others skipped),
    within ``timeout``."""
    assert proc.stdout is not None and proc.stderr is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(deadline - time.monotonic(), 0))
        if not ready:
            break
        text = proc.stdout.readline()
        if not text:
            break
        if text.startswith("{"):
            doc = dict(json.loads(text))
            if key is None or key in doc:
                return doc
            seen.append(doc)
    proc.kill()
    proc.wait(timeout=30)
    raise AssertionError(f"no {key or 'line'} (saw {seen}): {proc.stderr.read()[-2000:]}")


def test_close_from_inside_a_callback_frees_nothing_in_use_and_listen_works_again(
    rte_asan: Path, rte_ns: Netns, rte_br: BridgeProcess
) -> None:
    proc = _edges(rte_asan / "rte_ifpx_edges", rte_ns, rte_br, ["close-in-callback"])
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert "AddressSanitizer" not in err and "runtime error" not in err, err[-4000:]
    assert proc.returncode == 0, out + err[-2000:]
    result = json.loads(out.splitlines()[-1])
    assert result == {
        "closed_in_callback": True, "close_rc": 0, "listened_again": True, "closed": 0,
    }  # fmt: skip
    assert rte_br.snapshot().state.bindings == []


def test_close_with_the_bridge_gone_waits_once_not_once_per_port(
    rte_build: Path, rte_ns: Netns, rte_br: BridgeProcess
) -> None:
    proc = _edges(rte_build / "rte_ifpx_edges", rte_ns, rte_br, ["close-bridge-gone"], ports=2)
    try:
        assert _json_line(proc) == {"bound": 2}
        rte_br.stop()
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        closed = _json_line(proc, "close_ms", timeout=60)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    # One 5 s deadline for both unbinds (was 5 s each), and the failure said.
    assert closed["rc"] != 0
    assert isinstance(closed["close_ms"], int) and closed["close_ms"] < 7_500


def test_a_second_application_cannot_take_a_port_id_and_sees_nothing_of_another_proxy(
    rte_build: Path, rte_ns: Netns, rte_br: BridgeProcess
) -> None:
    binary = rte_build / "rte_ifpx_edges"
    first = _edges(binary, rte_ns, rte_br, ["hold", "pxa"])
    try:
        assert _json_line(first) == {"bound": 0}
        _json_line(first, "event")  # listening
        # The second application's bind of the same port id is refused, not a move.
        second = _edges(binary, rte_ns, rte_br, ["hold", "pxb"])
        try:
            assert _json_line(second) == {"bound": -errno.EBUSY}
        finally:
            second.communicate(timeout=60)
        assert [(b.port_id, b.proxy) for b in rte_br.snapshot().state.bindings] == [(0, "pxa")]
        # An operator moves port 0 (without exclusive): what happens to the other proxy
        # never reaches the first application, and its close leaves that binding be.
        rte_ns.cmd("tuntap add dev pxc mode tap")
        rte_ns.cmd("link set pxc up")
        assert isinstance(rte_br.result(c.Bind(port_id=0, proxy="pxc")), c.BindResult)
        rte_ns.cmd("link set pxc mtu 1400")
        rte_ns.cmd("addr add 192.0.2.9/24 dev pxc")
        # Back on pxa, one change there: the first event the application gets.
        assert isinstance(rte_br.result(c.Bind(port_id=0, proxy="pxa")), c.BindResult)
        rte_ns.cmd("link set pxa mtu 1600")
        got = [_json_line(first, "event")]
        while got[-1].get("mtu") != 1600:
            got.append(_json_line(first, "event"))
        assert [d for d in got if d["event"] in ("mtu", "addr")] == [
            {"event": "mtu", "port": 0, "mtu": 1600}
        ], got
        assert isinstance(rte_br.result(c.Bind(port_id=0, proxy="pxc")), c.BindResult)
        assert first.stdin is not None
        first.stdin.close()
        assert _json_line(first, "closed") == {"closed": 0}
    finally:
        first.kill()
        first.wait(timeout=30)
    assert [(b.port_id, b.proxy) for b in rte_br.snapshot().state.bindings] == [(0, "pxc")]


def _worker(br: BridgeProcess, name: str) -> c.WorkerInfo | None:
    listed = br.result(c.ListWorkers())
    assert isinstance(listed, c.ListWorkersResult)
    return next((w for w in listed.workers if w.name == name), None)


def test_a_worker_blocked_on_a_full_ring_holds_the_barrier_and_one_that_closes_does_not(
    rte_build: Path, rte_ns: Netns, rte_br: BridgeProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IFPX_WORKER_NAME", "rte-blocked")
    proc = _edges(rte_build / "rte_ifpx_edges", rte_ns, rte_br, ["block"])
    assert proc.stdin is not None

    def say(text: str) -> None:
        assert proc.stdin is not None
        proc.stdin.write(text + "\n")
        proc.stdin.flush()

    try:
        proxy = str(_json_line(proc, "proxy")["proxy"])
        wait_for(lambda: _worker(rte_br, "rte-blocked"), 15, what="the worker's first report")
        # More events than the ring holds: the control thread waits in the middle of one.
        rte_ns.batch([f"addr add 198.51.100.{i}/32 dev {proxy}" for i in range(1, 21)])
        seq = rte_br.snapshot().seq

        def stalled() -> bool:
            w = _worker(rte_br, "rte-blocked")
            return w is not None and w.state == "stalled"

        wait_for(stalled, 15, interval=0.2, what="the blocked worker to be stalled")
        held = rte_br.result(c.WaitApplied(seq=seq))
        assert isinstance(held, c.WaitAppliedResult) and not held.done
        assert [(w.name, w.state) for w in held.waiting] == [("rte-blocked", "stalled")]
        # Drained: it catches up, and the barrier is done.
        say("drain")
        assert int(_json_line(proc, "drained")["drained"]) >= 16

        def done() -> bool:
            r = rte_br.result(c.WaitApplied(seq=seq))
            return isinstance(r, c.WaitAppliedResult) and r.done

        wait_for(done, 15, interval=0.2, what="the barrier once the ring drained")
        # Closed while the process lives on: gone at once (it said it was leaving).
        say("close")
        assert _json_line(proc, "closed") == {"closed": 0}
        gone = _worker(rte_br, "rte-blocked")
        assert gone is not None and gone.state == "gone" and proc.poll() is None
    finally:
        proc.kill()
        proc.wait(timeout=30)
