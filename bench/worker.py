"""A benchmark subscriber process: sync, then report each time the replica reaches a mark.

Prints one JSON line once synced, {"synced": t, "routes": n}, then one per ``--mark``,
in order, when the replica first holds that many routes with no repair under way:
{"routes": n, "t": t, "rss": bytes, "gaps": g, "snapshot_repairs": r}. Times are
CLOCK_MONOTONIC, comparable across the processes of one machine. The C subscriber's
``ifpx_sub --mark`` prints the same lines, so the bench drives both alike.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from ifpx.subscribers import Subscriber, tune_gc


def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--events", required=True)
    p.add_argument("--control", required=True)
    p.add_argument("--mark", type=int, action="append", default=[], help="route count to report")
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--no-reports", action="store_true", help="report nothing to the bridge")
    ns = p.parse_args()
    tune_gc()
    base = rss()
    interval = None if ns.no_reports else 1.0
    with Subscriber(ns.events, ns.control, heartbeat_timeout=30, report_interval=interval) as sub:
        sub.sync(timeout=120)
        print(json.dumps({"synced": time.monotonic(), "routes": len(sub.state.routes)}), flush=True)
        deadline = time.monotonic() + ns.timeout
        for mark in ns.mark:
            while len(sub.state.routes) != mark or sub.repairing:
                if time.monotonic() > deadline:
                    print(json.dumps({"timeout": len(sub.state.routes)}), flush=True)
                    return 1
                sub.poll(max_events=100_000, timeout=0.01)
            doc = {
                "routes": mark,
                "t": time.monotonic(),
                "rss": rss() - base,
                "gaps": sub.stats.gaps,
                "snapshot_repairs": sub.stats.snapshot_repairs,
            }
            print(json.dumps(doc), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
