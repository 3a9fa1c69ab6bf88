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

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from ctools import C_DIR, have_toolchain

from ifpx.bridge.testing.harness import BridgeProcess, Netns, bridge, netns

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
