"""The convergence barrier with real processes: Python and C workers report, ``ctl wait`` waits.

Four workers (two Python worker processes, two C ``ifpx_sub``) follow a bridge
in a namespace; an operator's route change is followed by ``ifpx ctl wait --now``.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ctools import CSubscriber, build, have_toolchain, read_json
from netutil import free_port, ifpx, scrape

from ifpx.bridge.testing.harness import BridgeProcess, Netns, bridge, wait_for
from ifpx.schemas import codec
from ifpx.schemas import commands as c
from ifpx.subscribers import Subscriber
from ifpx.subscribers.client import ControlClient

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(
        not have_toolchain("libzmq", "msgpack"),
        reason="needs cc, make, pkg-config, libzmq3-dev and libmsgpack-dev (apt)",
    ),
]

PY = ["py-0", "py-1"]
C = ["c0", "c1"]


def workers(br: BridgeProcess) -> dict[str, c.WorkerInfo]:
    result = br.result(c.ListWorkers())
    assert isinstance(result, c.ListWorkersResult)
    return {w.name: w for w in result.workers}


class Fleet:
    """Two Python workers (one process each) and two C workers, all reporting."""

    def __init__(self, br: BridgeProcess, tmp: Path) -> None:
        self.br = br
        self.dumps = tmp / "dumps"
        self.dumps.mkdir()
        env = dict(os.environ, IFPX_EVENTS=br.events, IFPX_CONTROL=br.control)
        argv = [sys.executable, "-m", "ifpx.subscribers.workers", "--workers", "2"]
        argv += ["--name", "py", "--quiet", "--dump-dir", str(self.dumps)]
        self.py = subprocess.Popen(
            argv,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        self.tools = build(tmp / "cbuild")
        self.tmp = tmp
        self.c = {name: self.start_c(name) for name in C}

    def start_c(self, name: str) -> CSubscriber:
        csub = CSubscriber(
            self.tools / "ifpx_sub",
            self.tmp,
            self.br.events,
            self.br.control,
            "--quiet",
            "--name",
            name,
        )
        csub.report()  # the one written once synced: later ones are asked for
        return csub

    def py_pid(self, i: int) -> int:
        ready = self.dumps / f"worker-{i}.ready"
        wait_for(ready.exists, 20, what=f"python worker {i}")
        return int(ready.read_text())

    def py_replica(self, i: int) -> dict[str, Any]:
        path = self.dumps / f"worker-{i}.json"
        before = path.stat().st_mtime_ns if path.exists() else 0
        os.kill(self.py_pid(i), signal.SIGUSR1)

        def fresh() -> dict[str, Any] | None:
            if not path.exists() or path.stat().st_mtime_ns == before:
                return None
            return read_json(path)

        doc = wait_for(fresh, 20, what=f"python worker {i}'s replica")
        assert doc is not None
        return doc

    def close(self) -> None:
        for proc in self.c.values():
            proc.close()
        self.py.terminate()
        try:
            self.py.wait(10)
        except subprocess.TimeoutExpired:
            self.py.kill()
            self.py.wait(5)


@pytest.fixture
def fleet(ns: Netns, tmp_path: Path) -> Iterator[tuple[BridgeProcess, Fleet]]:
    ro = f"ipc://{tmp_path}/control-ro.sock"
    with bridge(ns, ["--heartbeat", "0.3", "--control-ro", ro]) as br:
        br.result(c.Bind(port_id=0, proxy="tap0"))
        ns.ip("link", "set", "tap0", "up")
        ns.ip("addr", "add", "192.0.2.1/24", "dev", "tap0")
        f = Fleet(br, tmp_path)
        try:
            wait_for(
                lambda: (
                    all(w.state == "current" for w in workers(br).values())
                    and sorted(workers(br)) == sorted(PY + C)
                ),
                30,
                what="four current workers",
            )
            yield br, f
        finally:
            f.close()


def _has_route(replica_routes: list[dict[str, Any]], dst: str) -> bool:
    return any(r["dst"] == dst for r in replica_routes)


def test_wait_now_returns_once_every_worker_holds_the_change(
    ns: Netns, fleet: tuple[BridgeProcess, Fleet]
) -> None:
    br, f = fleet
    ns.ip("route", "add", "10.77.0.0/16", "via", "192.0.2.2")
    done = ifpx(br, "ctl", "--json", "wait", "--now", "--timeout", "20")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["done"] and sorted(result["workers"]) == sorted(PY + C)
    target = result["seq"]
    # Each replica holds the route, and says it applied at least the seq waited for.
    for i in range(2):
        doc = f.py_replica(i)
        assert _has_route(doc["state"]["routes"], "10.77.0.0/16"), doc["state"]["routes"]
        assert doc["applied"] >= target
    for name, csub in f.c.items():
        report = csub.report()
        assert report["applied"] >= target, name
        assert _has_route(report["state"]["routes"], "10.77.0.0/16"), name
    listed = ifpx(br, "ctl", "workers")
    assert listed.returncode == 0 and all(n in listed.stdout for n in PY + C), listed.stdout
    assert "current" in listed.stdout and "libifpx/" in listed.stdout


def test_a_stopped_worker_is_the_laggard_then_stalled_and_catches_up_when_continued(
    ns: Netns, fleet: tuple[BridgeProcess, Fleet]
) -> None:
    br, f = fleet
    stopped = f.c["c1"].proc.pid
    os.kill(stopped, signal.SIGSTOP)
    try:
        ns.ip("route", "add", "10.78.0.0/16", "via", "192.0.2.2")
        # the C client API names it at once
        cwait = subprocess.run(
            [str(f.tools / "ifpx_sub"), "--control", br.control, "--wait-applied", "800"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        got = json.loads(cwait.stdout)
        assert cwait.returncode == 1 and got["rc"] == -errno.ETIMEDOUT, cwait.stdout
        assert got["waiting"] == ["c1"] and got["workers"] == 4 and not got["done"]
        wait_for(lambda: workers(br)["c1"].state == "lagging", 10, what="c1 lagging")
        # three missed reports while its process lives: stalled (it may be blocked in the
        # middle of an event), and waited for, named or not: the barrier is never done
        # while a live worker may not have applied
        short = ifpx(br, "ctl", "wait", "--now", "--timeout", "4")
        assert short.returncode == 1, short.stdout
        assert "c1 (stalled" in short.stderr and "c0" not in short.stderr, short.stderr
        wait_for(lambda: workers(br)["c1"].state == "stalled", 10, what="c1 stalled")
        others = {n: w.state for n, w in workers(br).items() if n != "c1"}
        assert set(others.values()) == {"current"}, others
        assert ifpx(br, "ctl", "wait", "--now", "--timeout", "1").returncode == 1
        named = ifpx(br, "ctl", "wait", "--now", "--worker", "c1", "--timeout", "0.5")
        assert named.returncode == 1 and "c1 (stalled" in named.stderr, named.stderr
    finally:
        os.kill(stopped, signal.SIGCONT)
    waited = ifpx(br, "ctl", "wait", "--now", "--worker", "c1", "--timeout", "20")
    assert waited.returncode == 0, waited.stderr
    argv = [str(f.tools / "ifpx_sub"), "--control", br.control, "--wait-applied", "20000"]
    cwait = subprocess.run(
        [*argv, "--worker", "c1", "--worker", "py-0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cwait.returncode == 0 and json.loads(cwait.stdout)["workers"] == 2, cwait.stdout
    wait_for(lambda: workers(br)["c1"].state == "current", 10, what="c1 current again")
    assert _has_route(f.c["c1"].report()["state"]["routes"], "10.78.0.0/16")


def test_a_restarted_worker_shows_up_once(fleet: tuple[BridgeProcess, Fleet]) -> None:
    br, f = fleet
    old = f.c.pop("c0")
    old.proc.kill()
    old.proc.wait(10)
    f.c["c0"] = f.start_c("c0")
    wait_for(
        lambda: workers(br)["c0"].restarts == 1 and workers(br)["c0"].state == "current",
        20,
        what="c0 back",
    )
    assert sorted(workers(br)) == sorted(PY + C)
    assert workers(br)["c0"].pid == f.c["c0"].proc.pid


def test_a_stranger_cannot_report_for_a_worker(
    fleet: tuple[BridgeProcess, Fleet], tmp_path: Path
) -> None:
    br, _f = fleet
    before = workers(br)["c0"].applied_seq
    epoch = br.snapshot().epoch
    forged = c.Report(worker="c0", instance=12345, epoch=epoch, seq=before, synced=True)
    reply = br.request(forged)
    assert isinstance(reply, c.ErrorReply)
    assert (
        reply.error.code == c.ErrorCode.PERMISSION_DENIED and "held by pid" in reply.error.message
    )
    # The real c0 is not fooled for: while the stranger tries, c0 is waited for as refused.
    waited = ifpx(br, "ctl", "--json", "wait", "--now", "--timeout", "0.5")
    assert waited.returncode == 1
    assert ["c0", "refused"] in [
        [w["name"], w["state"]] for w in json.loads(waited.stdout)["waiting"]
    ]
    # A report that cannot be true (beyond what the bridge published) is refused anywhere;
    # the read-only endpoint takes true ones (a worker may be given that endpoint only).
    import zmq

    def read_only(report: c.Report) -> c.Reply:
        with zmq.Context() as ctx, ctx.socket(zmq.REQ) as req:
            req.setsockopt(zmq.LINGER, 0)
            req.connect(f"ipc://{tmp_path}/control-ro.sock")
            req.send(codec.encode_request(report))
            assert req.poll(5000)
            return codec.decode_reply(req.recv())

    beyond = forged.model_copy(update={"worker": "new-one", "seq": before + 10**6})
    ro = read_only(beyond)
    assert isinstance(ro, c.ErrorReply) and ro.error.code == c.ErrorCode.INVALID_VALUE
    assert "new-one" not in workers(br)
    assert isinstance(read_only(beyond.model_copy(update={"seq": 1})), c.OkReply)
    assert workers(br)["new-one"].applied_seq == 1
    assert workers(br)["c0"].applied_seq >= before


def test_worker_metrics_are_scraped(ns: Netns, tmp_path: Path) -> None:
    port = free_port()
    with bridge(ns, ["--heartbeat", "0.3", "--metrics", f"127.0.0.1:{port}"]) as br:
        f = Fleet(br, tmp_path)
        try:
            wait_for(lambda: 'ifpx_workers{state="current"} 4.0' in scrape(port), 30)
            text = scrape(port)
        finally:
            f.close()
    for name in PY + C:
        assert f'ifpx_worker_lag_seq{{worker="{name}"}} 0.0' in text
        assert f'ifpx_worker_lag_seconds{{worker="{name}"}}' in text


def test_now_covers_every_change_the_kernel_made_before_it_was_asked(
    ns: Netns, fleet: tuple[BridgeProcess, Fleet]
) -> None:
    br, f = fleet
    dsts = {f"10.{80 + i // 250}.{i % 250}.0/24" for i in range(5000)}
    ns.batch([f"route add {dst} via 192.0.2.2" for dst in sorted(dsts)])
    # Asked the moment ip returns, before the bridge can have read it all: "now" is
    # after the bridge has read what the kernel had queued for it.
    with ControlClient(br.control, timeout=10) as client:
        result = client.wait_applied(timeout=60)
    assert result.done, result.waiting
    assert result.seq == br.snapshot().seq  # it waited for all of it, not part
    for name, csub in f.c.items():
        routes = csub.report()["state"]["routes"]
        assert dsts <= {r["dst"] for r in routes}, name
    for i in range(2):
        routes = f.py_replica(i)["state"]["routes"]
        assert dsts <= {r["dst"] for r in routes}


def test_wait_with_no_worker_is_never_done(br: BridgeProcess) -> None:
    waited = ifpx(br, "ctl", "wait", "--now", "--timeout", "0.5")
    assert waited.returncode == 1
    assert "no worker reported to this bridge in 0.5s" in waited.stderr


def test_a_closed_subscriber_is_gone_at_once_though_its_process_lives(br: BridgeProcess) -> None:
    sub = Subscriber(br.events, br.control, name="py-leaving", report_interval=0.2)
    try:
        sub.sync(timeout=10)

        def reported() -> bool:
            sub.poll(max_events=1000)
            w = workers(br).get("py-leaving")
            return w is not None and w.state == "current"

        wait_for(reported, 10, what="its first report")
    finally:
        sub.close()
    # Its last report said it was leaving: not stalled, not waited for (this test's
    # process lives on).
    wait_for(lambda: workers(br)["py-leaving"].state == "gone", 5, what="gone on close")
