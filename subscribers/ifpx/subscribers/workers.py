"""Example: N worker processes, each with its own Subscriber and replica (no shared locks).

    python -m ifpx.subscribers.workers --workers 4

Each worker prints what it applies, prefixed with its number, and reports what
it has applied to the bridge as ``NAME-<n>`` (``--name NAME``; default
``host:pid``), which ``ifpx ctl workers`` lists and ``ifpx ctl wait`` waits
for. On SIGUSR1 a
worker writes its replica as JSON to ``--dump-dir/worker-<n>.json`` (how the
demo and the tests compare replicas with the bridge and the kernel); on
SIGTERM or SIGINT it stops.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import sys
from dataclasses import asdict
from pathlib import Path

from . import fmt
from .settings import ClientSettings, resolve
from .subscriber import Subscriber, tune_gc


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _say(line: str) -> None:
    # One write per line, so lines of several workers sharing a terminal never interleave.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run_worker(
    worker_id: int,
    settings: ClientSettings,
    dump_dir: str | None = None,
    quiet: bool = False,
    name: str | None = None,
) -> int:
    """One worker: sync, then apply and print events until told to stop."""
    flags = {"stop": False, "dump": False}

    def _stop(_signum: int, _frame: object) -> None:
        flags["stop"] = True

    def _dump(_signum: int, _frame: object) -> None:
        flags["dump"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGUSR1, _dump)
    out_dir = Path(dump_dir) if dump_dir else None
    tune_gc()
    worker_name = f"{name}-{worker_id}" if name else None
    with Subscriber(
        settings.events, settings.control, curve=settings.curve, name=worker_name
    ) as sub:
        sub.sync(timeout=10.0)
        if out_dir is not None:
            _write_atomic(out_dir / f"worker-{worker_id}.ready", str(os.getpid()))
        _say(f"[worker {worker_id}] synced at seq {sub.seq}")
        while not flags["stop"]:
            for e in sub.poll(max_events=256, timeout=0.1):
                if not quiet:
                    _say(f"[worker {worker_id}] {fmt.describe(e)}")
            if flags["dump"] and out_dir is not None:
                flags["dump"] = False
                doc = {
                    "seq": sub.seq,
                    "epoch": sub.epoch,
                    "applied": sub.applied[1],
                    "stats": asdict(sub.stats),
                    "state": sub.state.to_state().model_dump(),
                }
                _write_atomic(out_dir / f"worker-{worker_id}.json", json.dumps(doc))
        _say(f"[worker {worker_id}] stopping; stats {sub.stats}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Start ``--workers`` processes (or be one, with ``--worker-id``)."""
    p = argparse.ArgumentParser(prog="python -m ifpx.subscribers.workers", description=__doc__)
    p.add_argument("--workers", type=int, default=2, help="how many worker processes")
    p.add_argument("--worker-id", type=int, help="run as this single worker (no children)")
    p.add_argument("--events", help="PUB endpoint (IFPX_EVENTS)")
    p.add_argument("--control", help="control endpoint (IFPX_CONTROL)")
    p.add_argument("--dump-dir", help="where SIGUSR1 makes workers write their replicas")
    p.add_argument("--quiet", action="store_true", help="do not print events")
    p.add_argument("--name", help="report as NAME-<n> (default: host:pid)")
    ns = p.parse_args(argv)
    settings = resolve(ns.events, ns.control)  # the environment is read here, once
    if ns.worker_id is not None:
        return run_worker(ns.worker_id, settings, ns.dump_dir, ns.quiet, ns.name)
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(
            target=run_worker, args=(i, settings, ns.dump_dir, ns.quiet, ns.name), daemon=False
        )
        for i in range(ns.workers)
    ]
    for proc in procs:
        proc.start()

    def _forward(signum: int, _frame: object) -> None:
        for proc in procs:
            if proc.pid is not None:
                os.kill(proc.pid, signum)

    signal.signal(signal.SIGTERM, _forward)
    signal.signal(signal.SIGINT, _forward)
    signal.signal(signal.SIGUSR1, _forward)
    for proc in procs:
        proc.join()
    return max((proc.exitcode or 0) for proc in procs)


if __name__ == "__main__":
    sys.exit(main())
