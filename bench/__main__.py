"""Run the benchmarks and write bench/RESULTS.md.

    python -m bench            # quick: 100k routes, a couple of minutes
    python -m bench --full     # 1M routes

Every figure is compared with a reference measured in the same run on the same
machine (the kernel's own install time, iproute2's ``ip route show`` and
``ip monitor``), because these machines are shared and noisy: ratios and
medians, not absolute times, are what to read.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from operator import contains
from pathlib import Path

from ifpx.bridge.netns import Namespace
from ifpx.bridge.testing.harness import BridgeProcess, Netns, bridge, netns, wait_for
from ifpx.schemas import commands as c
from ifpx.schemas import events as ev
from ifpx.schemas.topics import Topic
from ifpx.subscribers import Subscriber, tune_gc

from . import joiners, stages
from .common import (
    Figure,
    Monitor,
    counter,
    cpu_seconds,
    figure,
    route_prefix,
    rss_bytes,
    shape,
)

HERE = Path(__file__).parent


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def _ip_route_show(ns: Netns) -> float:
    return _timed(
        lambda: subprocess.run(
            ["ip", "-n", ns.name, "route", "show"], stdout=subprocess.DEVNULL, check=True
        )
    )


@contextmanager
def _setup(extra: list[str] | None = None) -> Iterator[tuple[Netns, BridgeProcess]]:
    with netns("ifpx-bench") as ns:
        shape(ns)
        with bridge(ns, extra) as br:
            br.result(c.Bind(port_id=0, proxy="tap0"))
            yield ns, br


HALT_POLL = Path("/sys/module/haltpoll/parameters/guest_halt_poll_ns")
"""cpuidle-haltpoll's guest halt-polling window: how long an idle vCPU spins before it
halts. 0 on these VMs, so every thread wake-up pays for waking a halted vCPU."""


@contextmanager
def _setting(path: Path, value: str) -> Iterator[bool]:
    """Set a /proc or /sys knob for the duration and put the old value back.

    Yields False (and changes nothing) where the knob is missing or read-only.
    """
    try:
        saved = path.read_text()
        path.write_text(value)
    except OSError:
        yield False
        return
    try:
        yield True
    finally:
        path.write_text(saved)


def _c_subscriber() -> Path | None:
    """Build the C subscriber's ``ifpx_sub`` (make: nothing to do once built); None if it cannot."""
    out = Path(tempfile.gettempdir()) / "ifpx-bench-c"
    proc = subprocess.run(
        ["make", "-s", "-C", str(HERE.parent / "subscribers" / "c"), f"OUT={out}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        print(f"C subscriber not built, its rows skipped: {proc.stderr.strip()[-300:]}", flush=True)
        return None
    return out / "ifpx_sub"


def _start_workers(
    br: BridgeProcess,
    n: int,
    marks: list[int],
    c_sub: Path | None = None,
    reports: bool = True,
    groups: bool = False,
) -> list[subprocess.Popen[str]]:
    """``n`` subscriber processes (Python, or C when ``c_sub`` is given), each synced;
    with ``groups``, taking routes by next-hop group."""
    argv = [sys.executable, "-m", "bench.worker"] if c_sub is None else [str(c_sub), "--quiet"]
    argv += ["--events", br.events, "--control", br.control]
    if groups:
        argv += ["--groups"] if c_sub is None else ["--topics", "link,addr,fib,rule,neigh"]
    if not reports:
        argv += ["--no-reports"] if c_sub is None else ["--report-ms", "-1"]
    for mark in marks:
        argv += ["--mark", str(mark)]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=HERE.parent) for _ in range(n)
    ]
    for p in procs:
        assert p.stdout is not None
        json.loads(p.stdout.readline())  # synced
    return procs


def _milestone(p: subprocess.Popen[str], routes: int) -> dict[str, float]:
    """The worker's line for the mark ``routes`` (see bench/worker.py)."""
    assert p.stdout is not None
    doc: dict[str, float] = json.loads(p.stdout.readline() or "{}")
    if doc.get("routes") != routes or "t" not in doc:
        raise RuntimeError(f"worker: expected the mark {routes}, got {doc}")
    return doc


def _kernel_alone(adds: list[str], dels: list[str]) -> tuple[float, float]:
    """The kernel's own add and delete times with nothing listening.

    The reference that does not move with the system under test: measured in the same
    run, right before each loaded run, in a namespace of the same shape. (Measured
    beside the bridge and four Python subscribers, ``ip -batch`` slows down 3-4x on two
    cores, and a ratio to that flatters whatever runs beside it.)
    """
    with netns("ifpx-bench") as ns:
        shape(ns)
        return _timed(lambda: ns.batch(adds)), _timed(lambda: ns.batch(dels))


def _churn_step(
    ns: Netns, lines: list[str], workers: list[subprocess.Popen[str]], mark: int, fig: Figure
) -> tuple[float, float, list[dict[str, float]]]:
    """Apply ``lines`` with ip -batch; return (start, the kernel's time, each worker's mark)."""
    t0 = time.monotonic()
    ns.batch(lines)
    kernel = time.monotonic() - t0
    docs = [_milestone(w, mark) for w in workers]
    fig.values.append(max(d["t"] for d in docs) - t0)
    return t0, kernel, docs


CHURN_SETUPS = [("4 Python subscribers", 4, False, False), ("1 C subscriber", 1, True, False),
                ("4 C subscribers", 4, True, False),
                ("4 Python subscribers, routes by group", 4, False, True)]  # fmt: skip
"""(label, subscribers, C?, by next-hop group?) of the churn runs."""


def churn(n: int, runs: int, figs: dict[str, Figure]) -> None:
    """Target 1 and 5: add then delete n routes; every subscriber equal to the kernel."""
    c_sub = _c_subscriber()
    adds = [f"route add {route_prefix(i)} via 10.0.0.2" for i in range(n)]
    dels = [f"route del {route_prefix(i)}" for i in range(n)]
    for _ in range(runs):
        for label, count, in_c, groups in CHURN_SETUPS:
            if in_c and c_sub is None:
                continue
            # Interleaved: the reference right before the run it judges.
            alone_add, alone_del = _kernel_alone(adds, dels)
            _churn_run(n, label, count, c_sub if in_c else None, adds, dels, figs,
                       (alone_add, alone_del), groups)  # fmt: skip


def _churn_run(
    n: int,
    label: str,
    count: int,
    c_sub: Path | None,
    adds: list[str],
    dels: list[str],
    figs: dict[str, Figure],
    alone: tuple[float, float],
    groups: bool = False,
) -> None:
    alone_ref = "kernel alone (ip -batch, nothing listening)"
    add = figure(figs, f"churn_add {label}", f"churn, {label}: add, all have it", "s", alone_ref,
                 "<= 2x" if c_sub is None else "<= 1.1x")  # fmt: skip
    dele = figure(figs, f"churn_del {label}", f"churn, {label}: delete, all have it", "s",
                  alone_ref, "<= 2x" if c_sub is None else "<= 1.1x")  # fmt: skip
    loaded = figure(figs, f"churn_kernel {label}", f"churn, {label}: the kernel's install beside "
                    "them (information)", "s", alone_ref, "-")  # fmt: skip
    cpu_b = figure(figs, f"cpu_bridge {label}", f"churn, {label}: bridge CPU per route add", "us",
                   "ip monitor route's CPU per event", "<= 1x")  # fmt: skip
    cpu_s = figure(figs, f"cpu_sub {label}", f"churn, {label}: CPU per route add, per subscriber",
                   "us", "", "<= 4" if c_sub is None else "-")  # fmt: skip
    mem_s = figure(figs, f"sub_mem {label}", f"churn, {label}: subscriber RSS growth per route",
                   "bytes", "", "<= 250")  # fmt: skip
    loss = figure(figs, f"churn_repairs {label}", f"churn, {label}: gaps + snapshot repairs",
                  "count", "", "0")  # fmt: skip
    mem_b = figure(figs, "bridge_mem", "bridge RSS growth per route", "bytes", "", "-")
    mem_m = figure(figs, "bridge_mem_mirror", "bridge RSS growth per route, less the journal's "
                   "bytes (a bounded replay buffer: --journal)", "bytes", "", "<= 250")  # fmt: skip
    mon = figure(figs, "monitor_add", "ip monitor route (C) sees every add (beside the bridge)",
                 "s", alone_ref, "reference")  # fmt: skip
    monitor_lost = figure(figs, "monitor_lost", "ip monitor route (C): events it lost to ENOBUFS",
                          "count", "", "reference")  # fmt: skip
    with _setup() as (ns, br):
        base = 1  # the connected route of 10.0.0.0/24
        workers = _start_workers(br, count, [n + base, base], c_sub, groups=groups)
        monitor = Monitor(ns)
        try:
            assert br.proc is not None
            rss0 = rss_bytes(br.proc.pid)
            journal0 = counter(br, "journal_bytes")
            cpu0 = [
                cpu_seconds(p) for p in (br.proc.pid, monitor.proc.pid, *(w.pid for w in workers))
            ]
            monitor.expect(n)
            t0, kernel, reached = _churn_step(ns, adds, workers, n + base, add)
            add.reference.append(alone[0])
            loaded.values.append(kernel)
            loaded.reference.append(alone[0])
            try:
                wait_for(partial(contains, monitor.marks, n), 30, what="ip monitor")
                mon.values.append(monitor.marks[n] - t0)
                mon.reference.append(alone[0])
            except TimeoutError:
                # ip monitor's own socket overflowed (ENOBUFS) and lost events: it never
                # sees them all. Counted, not timed.
                monitor_lost.values.append(n - monitor.lines)
            cpu1 = [
                cpu_seconds(p) for p in (br.proc.pid, monitor.proc.pid, *(w.pid for w in workers))
            ]
            used = [(b - a) / n * 1e6 for a, b in zip(cpu0, cpu1, strict=True)]
            cpu_b.values.append(used[0])
            if monitor.lines >= n:
                cpu_b.reference.append(used[1])
            cpu_s.values.append(statistics.median(used[2:]))
            grown = rss_bytes(br.proc.pid) - rss0
            mem_b.values.append(grown / n)
            mem_m.values.append((grown - (counter(br, "journal_bytes") - journal0)) / n)
            mem_s.values.append(statistics.median(d["rss"] for d in reached) / n)
            loss.values.append(sum(d["gaps"] + d["snapshot_repairs"] for d in reached))
            _churn_step(ns, dels, workers, base, dele)
            dele.reference.append(alone[1])
        finally:
            monitor.close()
            for w in workers:
                w.kill()
                w.wait()


def barrier(n: int, runs: int, figs: dict[str, Figure]) -> None:
    """The convergence barrier: what acknowledgements cost the bridge, and what it answers.

    Four C subscribers (the fastest, so the ones that go idle and report most often)
    take n route adds: with reports, without, and with reports while the bench asks
    ``wait_applied`` from the moment ``ip -batch`` returns, as an operator's
    ``ifpx ctl wait --now`` would. Interleaved, run after run.
    """
    c_sub = _c_subscriber()
    if c_sub is None:
        return
    adds = [f"route add {route_prefix(i)} via 10.0.0.2" for i in range(n)]
    cpu = figure(figs, "barrier_cpu", "barrier, 4 C subscribers: bridge CPU per route add, with "
                 "reports", "us", "the same without reports", "<= 1.02x")  # fmt: skip
    answer = figure(figs, "barrier_time", "barrier, 4 C subscribers: add, wait_applied (asked "
                    "at once) says done", "s", "the last subscriber's own mark", "-")  # fmt: skip
    reports = figure(figs, "barrier_reports", "barrier, 4 C subscribers: reports per subscriber "
                     "per second of churn", "count", "", "<= 21")  # fmt: skip
    variants = ["reports", "none", "wait"]
    for run in range(runs):
        # Rotated, so that no variant always runs first (or right after another).
        for variant in variants[run % 3 :] + variants[: run % 3]:
            _barrier_run(n, c_sub, adds, variant, cpu, answer, reports)
    print(f"barrier CPU per route, with reports: {cpu.values}; without: {cpu.reference}")
    # The A/B above cannot resolve 2% on these machines (run-to-run spread is 20-30%):
    # the direct cost, what answering the reports takes, bounds it from above.
    each = _report_cost()
    routes_per_s = n / statistics.median(answer.reference) if answer.reference else 0.0
    direct = figure(figs, "barrier_direct", "barrier, 4 C subscribers: answering reports, bridge "
                    "CPU per route add", "us", "bridge CPU per route add without reports",
                    "<= 1.02x")  # fmt: skip
    if routes_per_s and cpu.reference:
        direct.values.append(each * 4 * statistics.median(reports.values) / routes_per_s * 1e6)
        direct.reference.append(statistics.median(cpu.reference))
    figure(figs, "barrier_each", "barrier: bridge CPU to answer one report (in process)", "us",
         "", "-").values.append(each * 1e6)  # fmt: skip


def _barrier_run(
    n: int,
    c_sub: Path,
    adds: list[str],
    variant: str,
    cpu: Figure,
    answer: Figure,
    reports: Figure,
) -> None:
    from ifpx.subscribers.client import ControlClient

    with _setup() as (ns, br):
        base = 1
        workers = _start_workers(br, 4, [n + base], c_sub, reports=variant != "none")
        try:
            assert br.proc is not None
            reports0 = counter(br, "worker_reports")
            cpu0 = cpu_seconds(br.proc.pid)
            t0 = time.monotonic()
            ns.batch(adds)
            if variant == "wait":
                with ControlClient(br.control, timeout=30) as client:
                    result = client.wait_applied(timeout=300, interval=0.005)
                if not result.done:
                    raise RuntimeError(f"wait_applied timed out: {result.waiting}")
                done_at = time.monotonic() - t0
            docs = [_milestone(w, n + base) for w in workers]
            used = (cpu_seconds(br.proc.pid) - cpu0) / n * 1e6
            last = max(d["t"] for d in docs) - t0
            if variant == "reports":
                cpu.values.append(used)
                reports.values.append((counter(br, "worker_reports") - reports0) / 4 / last)
            elif variant == "none":
                cpu.reference.append(used)
            else:
                answer.values.append(done_at)
                answer.reference.append(last)
        finally:
            for w in workers:
                w.kill()
                w.wait()


def _report_cost(count: int = 20_000) -> float:
    """Seconds of CPU the bridge's controller takes to answer one report, decode to reply."""
    from ifpx.bridge.control import Controller
    from ifpx.bridge.core import BridgeCore
    from ifpx.bridge.publisher import Publisher
    from ifpx.bridge.workers import Peer
    from ifpx.schemas import codec
    from ifpx.schemas.journal import Journal

    class _Sock:
        def send_multipart(self, _frames: object) -> None:
            pass

    class _Effects:
        def pid_alive(self, _pid: int) -> bool:
            return True

    stream = Publisher(_Sock(), 5, Journal(1 << 20))  # type: ignore[arg-type]
    ctl = Controller(BridgeCore(), stream, _Effects(), lambda: None)  # type: ignore[arg-type,return-value]
    topics: list[Topic] = ["addr", "hb", "link", "neigh", "port", "route", "rule", "sync"]
    counters = {k: 7 for k in ("events", "gaps", "journal_repairs", "snapshot_repairs",
                               "heartbeat_misses", "bad_messages", "callback_errors")}  # fmt: skip
    report = c.Report(worker="lcore-1", instance=77, host="dp1", pid=4711, epoch=5, seq=0,
                      synced=True, topics=topics, counters=counters)  # fmt: skip
    payload = codec.encode_request(report.model_copy(update={"client": "libifpx/1.2.0"}))
    peer = Peer(pid=os.getpid())
    t0 = time.process_time()
    for _ in range(count):
        ctl.handle_frames([payload], False, peer, 1.0)
    return (time.process_time() - t0) / count


def pic(n: int, runs: int, figs: dict[str, Figure]) -> None:
    """Prefix-independent convergence: n ECMP routes over two bound proxies, one link down.

    The routes are installed plainly (``nexthop via ... nexthop via ...``) or through a
    kernel next-hop group (``nhid``); a Python and a C subscriber take them by next-hop
    group (topic ``fib``). Then ``ip link set v1 down``: the time until both forward
    only via v0 (no live hop through port 1 in any group they hold), against the time
    ``ip monitor link`` (C) takes to see the link go down, and the events and bytes the
    bridge published for it. A third variant adds a flat-form subscriber, whose topic
    makes the bridge republish every route (information: what the flat form costs).
    """
    c_sub = _c_subscriber()
    for _ in range(runs):
        for variant in ("plain", "nhid", "plain, a flat subscriber too"):
            _pic_run(n, variant, c_sub, figs)


def _pic_net(ns: Netns) -> None:
    for i in (0, 1):
        ns.cmd(f"link add v{i} type veth peer name w{i}")
        ns.cmd(f"link set w{i} up")
        ns.cmd(f"link set v{i} up")
        ns.cmd(f"addr add 10.{i + 1}.0.1/24 dev v{i}")


def _pic_start(argv: list[str]) -> subprocess.Popen[str]:
    """A subscriber process, synced (its first line read)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=HERE.parent)
    assert proc.stdout is not None
    json.loads(proc.stdout.readline())
    return proc


def _pic_run(n: int, variant: str, c_sub: Path | None, figs: dict[str, Figure]) -> None:
    ref = "ip monitor link (C) sees the link go down"
    took = figure(figs, f"pic_time {variant}", f"link failure, {n:,} ECMP routes ({variant}): "
                  "every group-form subscriber forwards via v0 only", "s", ref,
                  "<= 50 ms")  # fmt: skip
    events = figure(figs, f"pic_events {variant}", f"link failure ({variant}): events published",
                    "count", "", "<= 10")  # fmt: skip
    size = figure(figs, f"pic_bytes {variant}", f"link failure ({variant}): bytes published",
                  "bytes", "", "-")  # fmt: skip
    if "nhid" in variant:
        lines = ["nexthop add id 1 via 10.1.0.2 dev v0", "nexthop add id 2 via 10.2.0.2 dev v1",
                 "nexthop add id 3 group 1/2"]  # fmt: skip
        lines += [f"route add {route_prefix(i)} nhid 3" for i in range(n)]
    else:
        lines = [
            f"route add {route_prefix(i)} nexthop via 10.1.0.2 dev v0 nexthop via 10.2.0.2 dev v1"
            for i in range(n)
        ]
    with netns("ifpx-bench") as ns:
        _pic_net(ns)
        with bridge(ns) as br:
            for port in (0, 1):
                br.result(c.Bind(port_id=port, proxy=f"v{port}"))
            # (Naming a topic: a snapshot without keeps the flat form built for a while.)
            snap = br.result(c.Snapshot(topics=["fib"]))
            assert isinstance(snap, c.SnapshotResult)
            routes = len(snap.state.routes.rows) + n  # the connected routes, and ours
            ns.batch(lines)
            common = ["--events", br.events, "--control", br.control, "--mark", str(routes)]
            argvs = [[sys.executable, "-m", "bench.worker", "--groups", *common]]
            if c_sub is not None:
                argvs.append([str(c_sub), "--quiet", "--topics", "link,addr,fib,rule,neigh",
                              *common])  # fmt: skip
            # Every route shares one group: the first one's tells when all are done.
            probe = ["--until-dead", "1", "--probe", route_prefix(0)]
            workers = [_pic_start([*a, *probe]) for a in argvs]
            if "flat" in variant:
                workers.append(_pic_start([sys.executable, "-m", "bench.worker", *common]))
            monitor = _LinkMonitor(ns)
            try:
                for proc in workers:
                    _milestone(proc, routes)
                monitor.ready(ns)
                before = br.result(c.Status())
                assert isinstance(before, c.StatusResult)
                t0 = monitor.t0 = time.monotonic()
                ns.cmd("link set v1 down")
                done = []
                for proc in workers[: len(argvs)]:
                    assert proc.stdout is not None
                    doc = json.loads(proc.stdout.readline() or "{}")
                    if "t" not in doc:
                        raise RuntimeError(f"pic worker: {doc}")
                    done.append(doc["t"])
                took.values.append(max(done) - t0)
                seen = wait_for(lambda: monitor.seen, 10, what="ip monitor link")
                took.reference.append(seen - t0)
                # What the bridge published for it, once it is quiet (its re-dump done).
                after = _quiet_status(br)
                events.values.append(after.counters["events"] - before.counters["events"])
                size.values.append(after.counters["bytes"] - before.counters["bytes"])
            finally:
                monitor.close()
                for proc in workers:
                    proc.kill()
                    proc.wait()


class _LinkMonitor:
    """``ip monitor link`` (C): when did it first print a line about v1 after ``t0``?"""

    def __init__(self, ns: Netns) -> None:
        # Line-buffered: into a pipe, ip's stdio would hold link lines back.
        self.proc = subprocess.Popen(
            ["stdbuf", "-oL", "ip", "-n", ns.name, "monitor", "link"],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.t0 = float("inf")
        self.seen = 0.0
        self.lines = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            now = time.monotonic()
            self.lines += 1
            if now >= self.t0 and " v1" in line and not self.seen:
                self.seen = now

    def ready(self, ns: Netns) -> None:
        """Return once it listens: it printed a change (of a link nobody routes by)."""
        for attempt in range(100):
            ns.cmd(f"link set w0 alias ready{attempt}")
            with contextlib.suppress(TimeoutError):
                wait_for(lambda: self.lines, 0.1, what="ip monitor link to listen")
                return
        raise TimeoutError("ip monitor link does not listen")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _quiet_status(br: BridgeProcess, settle: float = 0.5, timeout: float = 120) -> c.StatusResult:
    """``status`` once the bridge has published nothing for ``settle`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        # (A bridge re-dumping a million routes answers once it is through.)
        status = br.result(c.Status(), timeout=timeout)
        assert isinstance(status, c.StatusResult)
        if last is not None and status.seq == last.seq:
            return status
        if time.monotonic() > deadline:
            raise TimeoutError("the bridge did not go quiet")
        last = status
        time.sleep(settle)  # a bench's pacing, not a test's synchronisation


def _bird_conf(path: Path, n: int) -> None:
    routes = "\n".join(f"    route {route_prefix(i)} via 10.0.0.2;" for i in range(n))
    path.write_text(
        "router id 10.0.0.1;\n"
        "protocol device {}\n"
        "protocol kernel { ipv4 { export all; }; }\n"
        f"protocol static bench {{\n    disabled;\n    ipv4;\n{routes}\n}}\n"
    )


def bird_churn(n: int, runs: int, subscribers: int, figs: dict[str, Figure]) -> None:
    """Target 1 with a real routing daemon: BIRD 2 installs n static routes, then withdraws them.

    The reference is BIRD with nothing but iproute2's ``ip monitor route`` (C)
    listening, in a namespace of the same shape, measured right before each loaded
    run: when the monitor has seen every add, and every delete. (Measured beside
    the bridge and its subscribers, the monitor slows down with them.) The monitor
    asks for its buffer with SO_RCVBUF, which ``net.core.rmem_max`` caps (4 MiB
    here, and a BIRD burst overflows that), so the limit is raised for the run and
    put back after; if it still overflows, its loss is reported.
    """
    if not (shutil.which("bird") and shutil.which("birdc")):
        print("bird2 is not installed (apt-get install bird2): BIRD churn skipped", flush=True)
        return
    c_sub = _c_subscriber()
    alone = "BIRD with only ip monitor route (C) listening"
    with _setting(Path("/proc/sys/net/core/rmem_max"), str(64 << 20)):
        for _ in range(runs):
            for c in (False, True) if c_sub else (False,):
                who = "C subscribers" if c else "subscribers"
                key = "bird_c" if c else "bird"
                bird = _BirdFigures(
                    figure(figs, f"{key}_add", f"BIRD: {n // 1000}k routes enabled, all {who} "
                         "have them", "s", f"{alone}: sees every add", "<= 1.1x"),
                    figure(figs, f"{key}_del", f"BIRD: routes disabled, all {who} emptied", "s",
                         f"{alone}: sees every delete", "<= 1.1x"),
                    figure(figs, f"{key}_monitor", f"BIRD: ip monitor route (C) sees every add "
                         f"beside the bridge and {who} (information)", "s",
                         f"{alone}: sees every add", "-"),
                    figure(figs, f"{key}_monitor_lost",
                         "BIRD: ip monitor route (C) events lost to ENOBUFS", "count", "",
                         "reference"),
                    figure(figs, f"{key}_repairs", f"BIRD: gaps + snapshot repairs ({who})",
                         "count", "", "0"),
                )  # fmt: skip
                # Interleaved: the reference right before the run it judges.
                ref_add, ref_del = _bird_alone(n)
                _bird_run(n, subscribers, bird, c_sub if c else None, ref_add, ref_del)


@dataclass
class _BirdFigures:
    add: Figure
    dele: Figure
    monitor: Figure
    lost: Figure
    loss: Figure


@contextmanager
def _bird(ns: Netns, n: int) -> Iterator[list[str]]:
    """BIRD running in ``ns`` with n static routes, disabled; yields the birdc argv."""
    with tempfile.TemporaryDirectory() as tmp:
        conf, ctl = Path(tmp) / "bird.conf", Path(tmp) / "bird.ctl"
        _bird_conf(conf, n)
        birdc = ["ip", "netns", "exec", ns.name, "birdc", "-s", str(ctl)]
        subprocess.run(
            ["ip", "netns", "exec", ns.name, "bird", "-c", str(conf), "-s", str(ctl),
             "-P", f"{tmp}/bird.pid"],
            check=True, timeout=120,
        )  # fmt: skip
        try:
            yield birdc
        finally:
            subprocess.run([*birdc, "down"], capture_output=True, check=False, timeout=30)


def _bird_alone(n: int) -> tuple[float | None, float | None]:
    """BIRD's enable and disable as ``ip monitor`` alone sees them (None if it lost events)."""
    with netns("ifpx-bench") as ns:
        shape(ns)
        with _bird(ns, n) as birdc:
            return _bird_watched(ns, n, birdc)


def _bird_watched(ns: Netns, n: int, birdc: list[str]) -> tuple[float | None, float | None]:
    monitor = Monitor(ns, rcvbuf=64 << 20)
    try:
        monitor.expect(n, 2 * n)
        t0 = time.monotonic()
        subprocess.run([*birdc, "enable", "bench"], check=True, capture_output=True)
        add = del_ = None
        with contextlib.suppress(TimeoutError):
            wait_for(partial(contains, monitor.marks, n), 60, what="ip monitor")
            add = monitor.marks[n] - t0
        t1 = time.monotonic()
        subprocess.run([*birdc, "disable", "bench"], check=True, capture_output=True)
        with contextlib.suppress(TimeoutError):
            wait_for(partial(contains, monitor.marks, 2 * n), 60, what="ip monitor")
            del_ = monitor.marks[2 * n] - t1
        return add, del_
    finally:
        monitor.close()


def _bird_run(
    n: int,
    subscribers: int,
    figs: _BirdFigures,
    c_sub: Path | None,
    ref_add: float | None,
    ref_del: float | None,
) -> None:
    """One BIRD run: a netns, a bridge, workers, ``birdc enable`` then ``disable``."""
    with _setup() as (ns, br), _bird(ns, n) as birdc:
        workers: list[subprocess.Popen[str]] = []
        monitor = Monitor(ns, rcvbuf=64 << 20)
        try:
            workers = _start_workers(br, subscribers, [n + 1, 1], c_sub)
            monitor.expect(n, 2 * n)
            t0 = time.monotonic()
            subprocess.run([*birdc, "enable", "bench"], check=True, capture_output=True)
            docs = [_milestone(w, n + 1) for w in workers]
            figs.add.values.append(max(d["t"] for d in docs) - t0)
            figs.loss.values.append(sum(d["gaps"] + d["snapshot_repairs"] for d in docs))
            if ref_add is not None:
                figs.add.reference.append(ref_add)
            with contextlib.suppress(TimeoutError):
                wait_for(partial(contains, monitor.marks, n), 30, what="ip monitor")
                figs.monitor.values.append(monitor.marks[n] - t0)
                if ref_add is not None:
                    figs.monitor.reference.append(ref_add)
            t1 = time.monotonic()
            subprocess.run([*birdc, "disable", "bench"], check=True, capture_output=True)
            docs = [_milestone(w, 1) for w in workers]
            figs.dele.values.append(max(d["t"] for d in docs) - t1)
            if ref_del is not None:
                figs.dele.reference.append(ref_del)
            try:
                wait_for(partial(contains, monitor.marks, 2 * n), 30, what="ip monitor")
                figs.lost.values.append(0)
            except TimeoutError:
                figs.lost.values.append(2 * n - monitor.lines)
        finally:
            monitor.close()
            for w in workers:
                w.kill()
                w.wait()


def cold_start_and_late_join(n: int, runs: int, figs: dict[str, Figure]) -> None:
    """Targets 2 and 3 with n routes already in the kernel."""
    cold = figure(figs, "cold_start", "cold start to cfg_done", "s", "ip route show", "<= 2x")
    late = figure(figs, "late_join", "late joiner synced", "s", "ip route show", "<= 1.2x")
    with _setup() as (ns, br):
        ns.batch([f"route add {route_prefix(i)} via 10.0.0.2" for i in range(n)])
        for _ in range(runs):
            show = _ip_route_show(ns)
            br.stop()
            cold.values.append(_timed(lambda: br.start(timeout=300)))
            cold.reference.append(show)
            wait_for(lambda: len(br.snapshot().state.routes.rows) == n + 1, 120, what="routes")
            show = _ip_route_show(ns)

            # As a worker that holds a full table does (see the README), and until sync()
            # returns: tearing the replica down afterwards is not joining.
            tune_gc()
            with Subscriber(br.events, br.control) as sub:
                late.values.append(_timed(lambda: sub.sync(timeout=300)))
                assert len(sub.state.routes) == n + 1
            late.reference.append(show)


class _MtuSetter:
    """Sets a link's MTU with one raw rtnetlink request and waits for the kernel's ack.

    The reference path a control plane would use, without any library's overhead.
    """

    def __init__(self, space: Namespace, ifindex: int) -> None:
        with space.inside():
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
        self.sock.bind((0, 0))
        self.ifindex = ifindex
        self.seq = 0

    def set(self, mtu: int) -> None:
        self.seq += 1
        body = struct.pack("=BxHiII", 0, 0, self.ifindex, 0, 0) + struct.pack("=HHI", 8, 4, mtu)
        header = struct.pack("=IHHII", 16 + len(body), 16, 0x1 | 0x4, self.seq, 0)
        self.sock.send(header + body)
        reply = self.sock.recv(65536)
        errno_ = struct.unpack_from("=i", reply, 16)[0]
        if errno_:
            raise OSError(-errno_, "RTM_NEWLINK refused")

    def close(self) -> None:
        self.sock.close()


def zmq_floor(count: int, busy: bool, workdir: Path) -> tuple[float, float]:
    """Bare pyzmq PUB -> SUB latency over ipc between two processes, in us: (p50, p99).

    The reference for target 4: what any ZeroMQ subscriber pays on this machine, in
    this run, before ifpx does anything (each thread wake-up here costs tens of us).
    """
    import zmq

    ctx = zmq.Context()
    pub, back = ctx.socket(zmq.PUB), ctx.socket(zmq.PULL)
    endpoint, back_ep = f"ipc://{workdir}/floor.sock", f"ipc://{workdir}/floor-back.sock"
    pub.bind(endpoint)
    back.bind(back_ep)
    mode = "busy" if busy else "block"
    proc = subprocess.Popen([sys.executable, "-m", "bench.zmqfloor", endpoint, back_ep, mode])
    samples = []
    try:
        # Until the subscription has propagated, PUB drops: probe until one comes back.
        while not back.poll(50):
            pub.send_multipart([b"t", b"0"])
        while back.poll(50):
            back.recv()
        for _ in range(count):
            t0 = time.perf_counter()
            pub.send_multipart([b"t", b"x"])
            back.recv()
            samples.append((time.perf_counter() - t0) * 1e6)
        pub.send_multipart([b"t", b"end"])
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        ctx.destroy(linger=0)
    # A round trip: the echo back costs the same hop again.
    samples.sort()
    return statistics.median(samples) / 2, samples[int(len(samples) * 0.99) - 1] / 2


def latency(
    count: int, figs: dict[str, Figure], under_load: int = 0, busy: bool = False, tag: str = ""
) -> None:
    """Target 4: a link change made over netlink in-process, to the subscriber's event.

    ``busy``: the subscriber polls without blocking, as a DPDK lcore calls ifpx_poll
    in its loop; otherwise it sleeps in ``poll(timeout)`` between events. ``tag``
    names the machine setting the caller made for this run.
    """
    name = "latency_idle" if not under_load else "latency_load"
    label = "idle" if not under_load else f"during a {under_load // 1000}k-route burst"
    if tag:
        name, label = f"{name}_{tag.split()[0]}", f"{label}, {tag}"
    mode = "busy-polling subscriber" if busy else "blocking subscriber"
    if busy:
        name += "_busy"
    ref = f"bare pyzmq PUB->SUB hop ({'busy' if busy else 'blocking'})"
    fig = figure(figs, name, f"link change -> {mode} ({label}), p50", "us",
                 f"{ref}, p50" if not under_load else "",
                 "<= 2x" if not under_load else "report")  # fmt: skip
    p99 = figure(figs, name + "_p99", f"link change -> {mode} ({label}), p99", "us",
                 f"{ref}, p99" if not under_load else "",
                 "<= 3x" if not under_load else "report")  # fmt: skip
    with _setup() as (ns, br):
        if not under_load:
            floor = zmq_floor(count // 2, busy, br.workdir)
            fig.reference.append(floor[0])
            p99.reference.append(floor[1])
        space = Namespace(ns.name)
        snap = br.snapshot()
        setter = _MtuSetter(space, snap.state.ports[0].ifindex)
        burst = None
        if under_load:
            burst = threading.Thread(
                target=ns.batch,
                args=([f"route add {route_prefix(i)} via 10.0.0.2" for i in range(under_load)],),
            )
        samples = []
        with Subscriber(br.events, br.control, kinds={"mtu_change"}) as sub:
            sub.sync(timeout=10)
            sub.poll(max_events=100_000)
            if burst:
                burst.start()
            for i in range(count):
                mtu = 1400 + (i % 2)
                t0 = time.perf_counter()
                setter.set(mtu)
                deadline = t0 + 10
                while time.perf_counter() < deadline:
                    got = [
                        e
                        for e in sub.poll(max_events=100_000, timeout=0.0 if busy else 1.0)
                        if isinstance(e, ev.MtuChange) and e.mtu == mtu
                    ]
                    if got:
                        samples.append((time.perf_counter() - t0) * 1e6)
                        break
            if burst:
                burst.join()
        setter.close()
        space.close()
    samples.sort()
    fig.values.append(statistics.median(samples))
    p99.values.append(samples[int(len(samples) * 0.99) - 1])


def fan_out(n: int, runs: int, figs: dict[str, Figure]) -> None:
    """Target 6: the bridge's CPU for one churn with 8 subscribers vs 1."""
    fig = figure(figs, "fan_out", "bridge CPU, 8 subscribers", "s",
                 "bridge CPU, 1 subscriber", "<= 1.25x")  # fmt: skip
    adds = [f"route add {route_prefix(i)} via 10.0.0.2" for i in range(n)]
    dels = [f"route del {route_prefix(i)}" for i in range(n)]
    for _ in range(runs):
        _fan_out_run(adds, dels, fig)


def _fan_out_run(adds: list[str], dels: list[str], fig: Figure) -> None:
    n = len(adds)
    cpu: dict[int, float] = {}
    for subs in (1, 8):
        with _setup() as (ns, br):
            workers = _start_workers(br, subs, [n + 1, 1])
            try:
                assert br.proc is not None
                c0 = cpu_seconds(br.proc.pid)
                ns.batch(adds)
                for w in workers:
                    _milestone(w, n + 1)
                ns.batch(dels)
                for w in workers:
                    _milestone(w, 1)
                cpu[subs] = cpu_seconds(br.proc.pid) - c0
            finally:
                for w in workers:
                    w.kill()
                    w.wait()
    fig.values.append(cpu[8])
    fig.reference.append(cpu[1])


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def _ratio(r: float) -> str:
    return f"{r:.2f}x" if r >= 0.1 else f"{r:.2g}x"


def report(figs: dict[str, Figure], mode: str, n: int, runs: int, seconds: float) -> str:
    uname = platform.uname()
    lines = [
        "# ifpx benchmark results",
        "",
        f"Mode: {mode} ({n:,} routes, {runs} runs where repeated; {seconds:.0f} s in all). "
        f"Machine: {os.cpu_count()} cores, kernel {uname.release}, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}.",
        "",
        "Medians; spread is min-max over the runs; the ratio is ours over the reference "
        "measured in the same run.",
        "",
        "| figure | median | spread | reference | ratio | target |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f in figs.values():
        if not f.values:
            continue
        spread = f"{_fmt(min(f.values))}-{_fmt(max(f.values))}" if f.values else "-"
        ref = (
            f"{f.ref_name}: {_fmt(statistics.median(f.reference))} {f.unit}" if f.reference else "-"
        )
        ratio = f.ratio()
        lines.append(
            f"| {f.name} | {_fmt(f.median())} {f.unit} | {spread} | {ref} | "
            f"{'-' if ratio is None else _ratio(ratio)} | {f.target} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--full", action="store_true", help="1M routes (slow)")
    p.add_argument("--routes", type=int, help="override the route count")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--out", default=str(HERE / "RESULTS.md"))
    p.add_argument(
        "--only",
        action="append",
        help="churn, barrier, pic, bird, cold, joiners, latency, fanout, stages",
    )
    ns = p.parse_args()
    n = ns.routes or (1_000_000 if ns.full else 100_000)
    only = set(
        ns.only
        or ["churn", "barrier", "pic", "bird", "cold", "joiners", "latency", "fanout", "stages"]
    )
    figs: dict[str, Figure] = {}
    t0 = time.monotonic()
    if "churn" in only:
        churn(n, ns.runs, figs)
        print(report(figs, "partial", n, ns.runs, time.monotonic() - t0), flush=True)
    if "barrier" in only:
        barrier(n, ns.runs, figs)
    if "pic" in only:
        pic(n, ns.runs, figs)
    if "bird" in only:
        bird_churn(min(n, 100_000), ns.runs, int(os.environ.get("BENCH_SUBS", "4")), figs)
    if "cold" in only:
        cold_start_and_late_join(n, ns.runs, figs)
    if "joiners" in only:
        joiners.joiners(n, ns.runs, figs)
    if "latency" in only:
        latency(1000, figs)
        latency(1000, figs, busy=True)
        # The same with idle vCPUs polling 200 us before they halt: what the wake-ups
        # of these VMs cost (see bench/NOTES.md, item 22).
        with _setting(HALT_POLL, "200000") as tuned:
            if tuned:
                latency(1000, figs, tag="halt-polling vCPUs")
                latency(1000, figs, busy=True, tag="halt-polling vCPUs")
        latency(300, figs, under_load=min(n, 100_000))
    if "fanout" in only:
        fan_out(min(n, 100_000), ns.runs, figs)
    if "stages" in only:
        stages.bridge_stages(n, ns.runs, figs)
        stages.decode_options(figs)
    text = report(figs, "full" if ns.full else "quick", n, ns.runs, time.monotonic() - t0)
    Path(ns.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
