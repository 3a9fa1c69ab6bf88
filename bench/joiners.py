"""Workers that start together: eight ``snapshot`` requests at once against a full table.

A DPDK application's lcores each subscribe, so they ask for a snapshot at the same
moment. The reference is one worker's snapshot alone, measured in the same run right
before (the state changed in between, so each measures a build): with the snapshot
built once per state, eight at once should cost about one, not eight.
"""

from __future__ import annotations

import threading
import time
from functools import partial

from ifpx.bridge.testing.harness import BridgeProcess, Netns, bridge, netns, wait_for
from ifpx.schemas import codec
from ifpx.schemas import commands as c
from ifpx.subscribers.client import ControlClient

from .common import Figure, counter, cpu_seconds, figure, route_prefix, shape

WORKERS = 8
_OK = b"\xa2ok\xc3"
"""``"ok": true`` packed: near the start of every ok reply (``v``, ``id``, ``ok``, ...)."""


def joiners(n: int, runs: int, figs: dict[str, Figure]) -> None:
    """``WORKERS`` snapshots asked for at once, against one alone, with ``n`` routes."""
    ref = "one worker's snapshot alone"
    together = figure(figs, "joiners", f"{WORKERS} workers ask for a snapshot at once: all "
                      "answered", "s", ref, "-")  # fmt: skip
    cpu = figure(figs, "joiners_cpu", f"{WORKERS} workers ask for a snapshot at once: bridge "
                 "CPU", "s", "one worker's snapshot alone: bridge CPU", "-")  # fmt: skip
    with netns("ifpx-bench") as ns:
        shape(ns)
        with bridge(ns) as br:
            br.result(c.Bind(port_id=0, proxy="tap0"))
            ns.batch([f"route add {route_prefix(i)} via 10.0.0.2" for i in range(n)])
            mirrored = partial(counter, br, "routes_mirrored")
            wait_for(lambda: mirrored() >= n, 300, interval=0.5, what="the routes")
            for run in range(runs):
                _change(ns, br, 2 * run)
                wall, used = _ask(br, 1)
                together.reference.append(wall)
                cpu.reference.append(used)
                _change(ns, br, 2 * run + 1)
                wall, used = _ask(br, WORKERS)
                together.values.append(wall)
                cpu.values.append(used)


def _change(ns: Netns, br: BridgeProcess, k: int) -> None:
    """A route more: the next snapshot is of another state, so it is built."""
    have = counter(br, "routes_mirrored")
    ns.cmd(f"route add 10.250.{k % 256}.0/24 via 10.0.0.2")
    wait_for(lambda: counter(br, "routes_mirrored") > have, 30, what="the change mirrored")


def _ask(br: BridgeProcess, count: int) -> tuple[float, float]:
    """(seconds until all ``count`` were answered, the bridge's CPU seconds meanwhile)."""
    start = threading.Barrier(count + 1)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with ControlClient(br.control, timeout=300) as client:
                start.wait()
                reply = client.raw(codec.encode_request(c.Snapshot()), 300)
                # Not decoded: eight threads validating a table each would time this
                # process's interpreter, not the bridge. An ok reply starts so.
                assert _OK in reply[:32], reply[:200]
        except BaseException as exc:  # reported below, on the caller's thread
            errors.append(exc)
            start.abort()

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for t in threads:
        t.start()
    assert br.proc is not None
    used = cpu_seconds(br.proc.pid)
    start.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join(600)
    if errors:
        raise errors[0]
    return time.monotonic() - t0, cpu_seconds(br.proc.pid) - used
