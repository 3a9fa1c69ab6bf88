"""A benchmark subscriber process: sync, then report when the replica holds ``--routes`` routes.

Prints one JSON line per milestone on stdout: {"synced": t}, {"reached": t, "rss": bytes}.
Times are CLOCK_MONOTONIC, comparable across the processes of one machine.
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
    p.add_argument("--routes", type=int, required=True, help="route count to wait for")
    p.add_argument("--base", type=int, default=0, help="route count once the churn is undone")
    p.add_argument("--timeout", type=float, default=300)
    ns = p.parse_args()
    tune_gc()
    base = rss()
    with Subscriber(ns.events, ns.control, heartbeat_timeout=30) as sub:
        sub.sync(timeout=120)
        print(json.dumps({"synced": time.monotonic(), "routes": len(sub.state.routes)}), flush=True)
        deadline = time.monotonic() + ns.timeout
        while time.monotonic() < deadline:
            sub.poll(max_events=100_000, timeout=0.01)
            if len(sub.state.routes) == ns.routes and not sub.repairing:
                doc = {
                    "reached": time.monotonic(),
                    "rss": rss() - base,
                    "gaps": sub.stats.gaps,
                    "snapshot_repairs": sub.stats.snapshot_repairs,
                }
                print(json.dumps(doc), flush=True)
                break
        else:
            print(json.dumps({"timeout": len(sub.state.routes)}), flush=True)
            return 1
        # Then wait for the table to shrink back (the deletion half of the churn).
        while time.monotonic() < deadline:
            sub.poll(max_events=100_000, timeout=0.01)
            if len(sub.state.routes) == ns.base and not sub.repairing:
                print(json.dumps({"emptied": time.monotonic()}), flush=True)
                return 0
        print(json.dumps({"timeout": len(sub.state.routes)}), flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
