"""Fault tests: each injects a fault into real processes in a real netns and prints a figure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import msgpack
import pytest
import zmq
from figures import record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from netutil import mtu_reaches, wait_bridge_equals_kernel

from ifpx.bridge.testing.harness import BridgeProcess, Netns, bridge, netns, wait_for
from ifpx.schemas import codec
from ifpx.schemas import commands as c
from ifpx.schemas.state import State
from ifpx.subscribers import Subscriber

pytestmark = [pytest.mark.netns, pytest.mark.reliability]


def _prepare(ns: Netns, br: BridgeProcess) -> None:
    br.result(c.Bind(port_id=0, proxy="tap0"))
    ns.ip("link", "set", "tap0", "up")
    ns.ip("addr", "add", "10.0.0.1/24", "dev", "tap0")


def _converged(sub: Subscriber, br: BridgeProcess, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sub.poll(max_events=1_000_000, timeout=0.05)
        if sub.repairing or not sub.synced:
            continue
        # Still reading what it was sent (a few messages a poll, at a low receive
        # high-water mark): a status is cheap, a snapshot of 25k routes compared is not.
        if sub.seq < br.result(c.Status()).seq:
            continue
        snap = br.snapshot()
        if sub.epoch == snap.epoch and sub.state.to_state() == snap.state.canonical():
            return True
    return False


def test_bridge_killed_mid_burst_ten_times(ns: Netns, br: BridgeProcess) -> None:
    _prepare(ns, br)
    acknowledged = {0}
    converged = 0
    with Subscriber(br.events, br.control, heartbeat_timeout=2, request_timeout=1) as sub:
        sub.sync(timeout=5)
        for round_ in range(10):
            port = round_ + 1
            br.result(c.Bind(port_id=port, proxy="tap0"))
            acknowledged.add(port)
            op = "add" if round_ % 2 == 0 else "del"
            lines = [f"route {op} 100.{round_ // 2}.{i}.0/24 via 10.0.0.2" for i in range(250)]
            burst = threading.Thread(target=ns.batch, args=(lines,), kwargs={"force": True})
            burst.start()
            assert br.proc is not None
            br.proc.send_signal(signal.SIGKILL)
            br.proc.wait(10)
            br.proc = None
            burst.join(60)
            br.start()
            listing = br.result(c.ListBindings())
            assert isinstance(listing, c.ListBindingsResult)
            assert {b.port_id for b in listing.bindings} == acknowledged
            wait_bridge_equals_kernel(br)
            converged += _converged(sub, br)
    record("bridge kill -9 mid-burst: acknowledged bindings kept", "10/10")
    record("bridge kill -9 mid-burst: subscriber converged", f"{converged}/10")
    assert converged == 10


def test_restart_with_unchanged_kernel_publishes_nothing_spurious(
    ns: Netns, br: BridgeProcess
) -> None:
    _prepare(ns, br)
    ns.batch([f"route add 100.1.{i}.0/24 via 10.0.0.2" for i in range(100)])
    wait_bridge_equals_kernel(br)
    with Subscriber(br.events, br.control, heartbeat_timeout=2, request_timeout=1) as sub:
        sub.sync(timeout=5)
        sub.poll(max_events=100_000)
        assert br.proc is not None
        br.proc.send_signal(signal.SIGKILL)
        br.proc.wait(10)
        br.proc = None
        br.start()
        seen = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "resync_end" not in [e.kind for e in seen]:
            seen.extend(sub.poll(max_events=100_000, timeout=0.1))
        kinds = [e.kind for e in seen]
        record("restart, unchanged kernel: events besides resync markers", len(kinds) - 2)
        assert kinds == ["resync_begin", "resync_end"], kinds
        assert seen[-1].changes == 0  # type: ignore[attr-defined]


def _worker_matches(proc: subprocess.Popen[bytes], dump: Path, br: BridgeProcess) -> bool:
    dump.unlink(missing_ok=True)
    proc.send_signal(signal.SIGUSR1)
    wait_for(dump.exists, 5, what="a dump")
    doc = json.loads(dump.read_text())
    snap = br.snapshot()
    return bool(
        doc["epoch"] == snap.epoch
        and doc["seq"] == snap.seq
        and State.model_validate(doc["state"]) == snap.state.canonical()
    )


def test_worker_killed_twenty_times(ns: Netns, br: BridgeProcess, tmp_path: Path) -> None:
    _prepare(ns, br)
    stop, running, idle = threading.Event(), threading.Event(), threading.Event()
    running.set()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            if not running.is_set():
                idle.set()
                running.wait(1)
                continue
            idle.clear()
            op = "replace" if (i // 50) % 2 == 0 else "del"
            ns.batch([f"route {op} 100.2.{i % 50}.0/24 via 10.0.0.2"], force=True)
            i += 1

    argv = [sys.executable, "-m", "ifpx.subscribers.workers", "--worker-id", "0", "--quiet"]
    argv += ["--events", br.events, "--control", br.control, "--dump-dir", str(tmp_path)]
    ready, dump = tmp_path / "worker-0.ready", tmp_path / "worker-0.json"
    churner = threading.Thread(target=churn)
    churner.start()
    ok = 0
    try:
        for _ in range(20):
            ready.unlink(missing_ok=True)
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
            try:
                wait_for(ready.exists, 15, what="the worker to sync")  # synced mid-churn
                running.clear()  # hold the churn still to compare
                wait_for(idle.is_set, 10, what="the churn to pause")
                wait_for(
                    partial(_worker_matches, proc, dump, br), 20, 0.05, "the worker to converge"
                )
                ok += 1
            finally:
                running.set()
                proc.send_signal(signal.SIGKILL)  # killed mid-stream
                proc.wait(10)
    finally:
        stop.set()
        running.set()
        churner.join(30)
    record("worker kill -9 mid-stream and restart: converged", f"{ok}/20")
    assert ok == 20


def test_crash_between_write_and_rename_of_the_state_file(ns: Netns, tmp_path: Path) -> None:
    acknowledged: set[int] = set()
    for k in range(10):
        healthy = BridgeProcess(ns, tmp_path)
        healthy.start()
        try:
            healthy.result(c.Bind(port_id=k, proxy="tap0"))
            acknowledged.add(k)
        finally:
            healthy.stop()
        # The third save is the one a bind makes (start-up saves the new epoch, then the
        # bindings as the initial dump found them).
        crashing = BridgeProcess(ns, tmp_path)
        env = {**os.environ, "IFPX_TEST_CRASH": "statefile-before-rename:3"}
        crashing.proc = subprocess.Popen(crashing.argv(), env=env, stderr=subprocess.DEVNULL)
        wait_for(crashing._answers, 20, what="the crashing bridge to start")
        with pytest.raises(TimeoutError):
            crashing.result(c.Bind(port_id=100 + k, proxy="tap0"), timeout=3)
        assert crashing.proc.wait(10) == 99
        doc = json.loads(crashing.state.read_text())  # whole, never torn
        saved = {b["port_id"] for b in doc["bindings"]}
        assert acknowledged <= saved and 100 + k not in saved
    record("state file: crash before rename, file valid with every acknowledged binding", "10/10")


def test_proxy_moved_to_another_netns(ns: Netns, br: BridgeProcess) -> None:
    _prepare(ns, br)
    with netns("ifpx-test-away") as away:
        ns.ip("link", "set", "tap0", "netns", away.name)
        wait_for(
            lambda: [b.state for b in br.snapshot().state.bindings] == ["gone"],
            10,
            what="the binding to be gone",
        )
        away.ip("link", "set", "tap0", "mtu", "1280")
        away.ip("addr", "add", "192.0.2.1/24", "dev", "tap0")
        state = wait_bridge_equals_kernel(br)
        assert state.ports == [] and state.routes == []
        ns.add_tap("tap0")  # a new proxy of that name here: the binding follows it
        wait_for(
            lambda: [b.state for b in br.snapshot().state.bindings] == ["active"],
            10,
            what="the binding to come back",
        )
        state = wait_bridge_equals_kernel(br)
        assert state.ports[0].mtu == 1500 and state.ports[0].addrs == []
    record("proxy moved to another netns: events of the moved interface applied", 0)


def test_slow_subscriber_repairs_and_fast_one_sees_no_gap(ns: Netns, tmp_path: Path) -> None:
    # The bridge keeps 10,000 messages for each subscriber: the slow one falls further
    # behind than that in a 50,000-message burst, while the fast one must only not stall
    # for longer than ~0.3 s (measured: a fast worker stopped for 0.15 s mid-burst lost
    # messages at 1,000 and none at 10,000; a shared machine stalls a process for 0.1 s
    # now and then, and this test failed on one at 1,000).
    with bridge(ns, ["--hwm", "10000"]) as br:
        _prepare(ns, br)
        argv = [sys.executable, "-m", "ifpx.subscribers.workers", "--worker-id", "0", "--quiet"]
        argv += ["--events", br.events, "--control", br.control, "--dump-dir", str(tmp_path)]
        fast = subprocess.Popen(argv, stdout=subprocess.DEVNULL)  # a worker process of its own
        try:
            wait_for((tmp_path / "worker-0.ready").exists, 15, what="the fast worker")
            with Subscriber(br.events, br.control, rcvhwm=8) as slow:
                slow.sync(timeout=5)
                lines = []
                for i in range(25_000):
                    lines.append(f"route add 100.{i // 250}.{i % 250}.0/24 via 10.0.0.2")
                    lines.append(f"link set tap0 mtu {1300 + i % 200}")
                burst = threading.Thread(target=ns.batch, args=(lines,))
                burst.start()
                while burst.is_alive():
                    for _ in slow.poll(max_events=16, timeout=0.01):
                        time.sleep(0.0002)  # a slow worker
                burst.join(120)
                assert _converged(slow, br, 120)
            dump = tmp_path / "worker-0.json"
            assert wait_for(partial(_worker_matches, fast, dump, br), 60, 0.1, "the fast worker")
            fast_stats = json.loads(dump.read_text())["stats"]
        finally:
            fast.terminate()
            fast.wait(10)
        record("50k burst: fast subscriber gaps", fast_stats["gaps"])
        record(
            "50k burst: slow subscriber gaps / journal / snapshot repairs",
            f"{slow.stats.gaps} / {slow.stats.journal_repairs} / {slow.stats.snapshot_repairs}",
        )
        assert fast_stats["gaps"] == 0
        assert slow.stats.gaps >= 1


# Commands that create or remove interfaces are left out: a valid one by chance would
# litter the namespace. Their argument checking is the same code as everyone else's.
SAFE_COMMANDS = [k for k in c.COMMAND_TYPES if k not in ("create_proxy", "destroy_proxy")]
hostile = st.one_of(
    st.binary(max_size=200),
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=30)
        | st.binary(max_size=30) | st.floats(allow_nan=True),
        lambda kids: st.lists(kids, max_size=5)
        | st.dictionaries(st.text(max_size=10), kids, max_size=5),
        max_leaves=20,
    ).map(lambda doc: msgpack.packb(doc)),
    st.fixed_dictionaries(
        {"v": st.sampled_from([1, 1, 0, 2, "1", None]),
         "id": st.integers(-5, 2**64 - 1) | st.text(max_size=5),
         "cmd": st.sampled_from(SAFE_COMMANDS) | st.text(max_size=12)},
        optional={"port_id": st.integers(-(2**40), 2**40) | st.text(max_size=4),
                  "proxy": st.text(max_size=20) | st.integers(-5, 10**12),
                  "from_seq": st.integers(-1, 2**64 - 1), "epoch": st.integers(-1, 2**64 - 1),
                  "topics": st.lists(st.text(max_size=6), max_size=20),
                  "versions": st.lists(st.integers(-1, 5), max_size=20),
                  "extra": st.integers(-(2**63), 2**63 - 1)},
    ).map(lambda doc: msgpack.packb(doc)),
)  # fmt: skip


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:"))


def test_hostile_input_ten_thousand_cases(ns: Netns, br: BridgeProcess) -> None:
    _prepare(ns, br)
    assert br.proc is not None
    pid = br.proc.pid
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(br.control)
    counts = {"cases": 0, "errors": 0, "ok": 0}
    rss0 = _rss(pid)

    @settings(
        max_examples=10_000,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(hostile)
    def one(payload: bytes) -> None:
        sock.send(payload)
        assert sock.poll(5000, zmq.POLLIN), "the bridge stopped answering"
        reply = codec.decode_reply(sock.recv())
        counts["cases"] += 1
        counts["ok" if isinstance(reply, c.OkReply) else "errors"] += 1

    one()
    # Oversized and multi-frame requests, then a well-formed one still answered.
    extra = [[b"\x00" * (codec.MAX_REQUEST_BYTES + 1)], [b"a", b"b", b"c"], [b""]]
    for frames in extra:
        probe: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.REQ)
        probe.setsockopt(zmq.LINGER, 0)
        probe.connect(br.control)
        probe.send_multipart(frames)
        probe.poll(1000, zmq.POLLIN)
        probe.close()
        counts["cases"] += 1
    sock.close()
    status = br.result(c.Status())
    assert isinstance(status, c.StatusResult) and br.proc.poll() is None
    growth = (_rss(pid) - rss0) / 1e6
    record(
        "hostile input: cases / typed errors / crashes",
        f"{counts['cases']} / {counts['errors']} / 0",
    )
    record("hostile input: bridge RSS growth (MB)", f"{growth:.1f}")
    assert counts["cases"] >= 10_000
    assert growth < 50


def _connect_as(uid: int, gid: int, path: Path) -> bool:
    """Whether a process running as uid:gid may connect to the Unix socket at ``path``."""
    import socket as pysocket

    pid = os.fork()
    if pid == 0:  # child: drop privileges, try, report through the exit status
        code = 2
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            with pysocket.socket(pysocket.AF_UNIX, pysocket.SOCK_STREAM) as s:
                s.connect(str(path))
            code = 0
        except PermissionError:
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 1), f"child failed with {code}"
    return code == 0


def test_ipc_endpoints_admit_only_root_and_the_ipc_group(ns: Netns) -> None:
    import grp
    import shutil
    import tempfile

    top = Path(tempfile.mkdtemp(prefix="ifpx-acl-", dir="/tmp"))
    top.chmod(0o755)
    nogroup = grp.getgrnam("nogroup").gr_gid
    try:
        for group, outsider_ok in ((None, False), ("nogroup", True)):
            run = top / f"run-{group}"
            events, control = f"ipc://{run}/events.sock", f"ipc://{run}/control.sock"
            ro = f"ipc://{run}/control-ro.sock"
            extra = ["--events", events, "--control", control, "--control-ro", ro]
            extra += ["--ipc-group", group] if group else []
            with bridge(ns, extra) as br:
                assert run.stat().st_mode & 0o777 == 0o750
                sock = run / "control.sock"
                assert sock.stat().st_mode & 0o777 == 0o660
                assert not _connect_as(65534, 65534 if not group else 12345, sock)
                assert _connect_as(65534, nogroup, sock) is outsider_ok
                # The read-only endpoint answers queries and refuses changes.
                br.control = ro
                assert isinstance(br.result(c.Status()), c.StatusResult)
                denied = br.request(c.Bind(port_id=0, proxy="tap0"))
                assert isinstance(denied, c.ErrorReply)
                assert denied.error.code == c.ErrorCode.PERMISSION_DENIED
        record("ipc access: other uid refused / ipc group admitted / read-only bind refused",
               "yes / yes / yes")  # fmt: skip
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _free_ports(n: int) -> list[int]:
    import socket as pysocket

    ports = []
    for _ in range(n):
        with pysocket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    return ports


def test_tcp_requires_curve_and_wrong_keys_are_refused(ns: Netns, tmp_path: Path) -> None:
    from ifpx.subscribers import BridgeUnreachable, ControlClient
    from ifpx.subscribers.security import CurveClient, keygen

    ev_port, ctl_port = _free_ports(2)
    events, control = f"tcp://127.0.0.1:{ev_port}", f"tcp://127.0.0.1:{ctl_port}"
    # Plain tcp is refused unless asked for by name.
    plain = subprocess.run(
        [sys.executable, "-m", "ifpx.subscribers", "bridge", "--netns", ns.name,
         "--events", events, "--control", control, "--state", str(tmp_path / "s.json")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert plain.returncode == 2 and "need CURVE" in plain.stderr
    server_pub, server_sec = keygen(tmp_path / "server", "bridge")
    allowed = tmp_path / "allowed"
    client_pub, client_sec = keygen(tmp_path / "client", "worker")
    _, intruder_sec = keygen(tmp_path / "intruder", "intruder")
    allowed.mkdir()
    (allowed / client_pub.name).write_bytes(client_pub.read_bytes())
    extra = ["--events", events, "--control", control]
    extra += ["--curve-secret", str(server_sec), "--curve-clients", str(allowed)]
    good = CurveClient.load(server_pub, client_sec)
    bad = CurveClient.load(server_pub, intruder_sec)
    with bridge(ns, extra, (good.server_public, good.public, good.secret)):
        with ControlClient(control, timeout=2, retries=0, curve=good) as client:
            assert isinstance(client.request(c.Bind(port_id=0, proxy="tap0")), c.BindResult)
        for keys in (bad, None):  # a key nobody listed, and no key at all
            with (
                ControlClient(control, timeout=1, retries=0, curve=keys) as client,
                pytest.raises(BridgeUnreachable),
            ):
                client.request(c.Status())
        with Subscriber(events, control, curve=good) as sub:
            mtu_reaches(sub, ns, 0, "tap0", 1300, "the event over CURVE")
    record("tcp: plain refused / wrong key refused / listed key served", "yes / yes / yes")
