"""A benchmark subscriber process: sync, then report each time the replica reaches a mark.

Prints one JSON line once synced, {"synced": t, "routes": n}, then one per ``--mark``,
in order, when the replica first holds that many routes with no repair under way:
{"routes": n, "t": t, "rss": bytes, "gaps": g, "snapshot_repairs": r}. Times are
CLOCK_MONOTONIC, comparable across the processes of one machine. The C subscriber's
``ifpx_sub --mark`` prints the same lines, so the bench drives both alike. With
``--groups`` routes arrive by next-hop group, and ``--until-dead PORT`` then prints
{"dead": port, "t": t} once the route ``--probe`` has no live hop through that port
(as ``ifpx_sub --until-dead --probe``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from ifpx.schemas.topics import RouteForm
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
    p.add_argument("--groups", action="store_true", help="routes by next-hop group")
    p.add_argument("--until-dead", type=int, help="port: report when no hop through it lives")
    p.add_argument("--probe", default="11.0.0.0/24", help="--until-dead: the route to watch")
    ns = p.parse_args()
    tune_gc()
    base = rss()
    interval = None if ns.no_reports else 1.0
    form: RouteForm = "group" if ns.groups else "flat"
    with Subscriber(
        ns.events, ns.control, heartbeat_timeout=30, report_interval=interval, routes=form
    ) as sub:
        sub.sync(timeout=120)

        def count() -> int:
            return len(sub.state.routes) + len(sub.state.groutes)

        print(json.dumps({"synced": time.monotonic(), "routes": count()}), flush=True)
        deadline = time.monotonic() + ns.timeout
        for mark in ns.mark:
            while count() != mark or sub.repairing:
                if time.monotonic() > deadline:
                    print(json.dumps({"timeout": count()}), flush=True)
                    return 1
                sub.poll(max_events=100_000, timeout=0.01)
            if ns.until_dead is not None:
                # Idle before saying so: the initial state's events all taken, so that
                # what follows is timed alone.
                while sub.poll(max_events=100_000, timeout=0.0):
                    pass
            doc = {
                "routes": mark,
                "t": time.monotonic(),
                "rss": rss() - base,
                "gaps": sub.stats.gaps,
                "snapshot_repairs": sub.stats.snapshot_repairs,
            }
            print(json.dumps(doc), flush=True)
        if ns.until_dead is not None:
            port = ns.until_dead
            dst, plen = ns.probe.split("/")
            key = (6 if ":" in dst else 4, 254, dst, int(plen), 0)

            def through() -> bool:
                state = sub.state
                found = state.groutes.get(key)
                if found is None:
                    return True
                return any(h[2] == port and "dead" not in h[4] for h in state.groups[found[1]])

            while through():
                if time.monotonic() > deadline:
                    print(json.dumps({"timeout": "until-dead"}), flush=True)
                    return 1
                sub.poll(max_events=100_000, timeout=0.001)
            print(json.dumps({"dead": port, "t": time.monotonic()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
