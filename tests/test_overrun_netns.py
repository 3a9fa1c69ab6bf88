"""A netlink overrun leads to a resync and an exact state, never to silent loss."""

from __future__ import annotations

import signal
import threading

import pytest
from figures import record
from netutil import wait_bridge_equals_kernel

from ifpx.bridge.testing.harness import Netns, bridge, wait_for
from ifpx.schemas import commands as c
from ifpx.subscribers import Subscriber

pytestmark = [pytest.mark.netns, pytest.mark.reliability]


def test_overrun_storm_resyncs_to_the_kernel(ns: Netns) -> None:
    with bridge(ns, ["--rcvbuf", "65536", "--heartbeat", "0.5"]) as br:
        br.result(c.Bind(port_id=0, proxy="tap0"))
        ns.ip("link", "set", "tap0", "up")
        ns.ip("addr", "add", "10.0.0.1/24", "dev", "tap0")
        with Subscriber(br.events, br.control) as sub:
            sub.sync(timeout=5)
            assert br.proc is not None
            br.proc.send_signal(signal.SIGSTOP)  # the reader cannot drain: the kernel drops
            try:
                ns.batch(
                    [f"route add 100.{i // 250}.{i % 250}.0/24 via 10.0.0.2" for i in range(50_000)]
                )
                ns.batch([f"route del 100.{i // 250}.{i % 250}.0/24" for i in range(0, 50_000, 7)])
            finally:
                br.proc.send_signal(signal.SIGCONT)
            state = wait_bridge_equals_kernel(br, timeout=60)
            status = br.result(c.Status())
            assert isinstance(status, c.StatusResult)
            record(
                "overrun storm (50k routes, SIGSTOPped bridge): overruns / resyncs",
                f"{status.counters['overruns']} / {status.counters['resyncs']}",
            )
            assert status.counters["overruns"] >= 1 and status.counters["resyncs"] >= 1
            assert len(state.routes) == 1 + 50_000 - len(range(0, 50_000, 7))

            def replica_exact() -> bool:
                sub.poll(max_events=1_000_000, timeout=0.1)
                return not sub.repairing and sub.state.to_state() == state

            wait_for(replica_exact, 60, what="the subscriber's replica to match")
            record("overrun storm: routes missing / extra after resync", "0 / 0")


def test_churn_during_the_resync_dump_converges(ns: Netns) -> None:
    with bridge(ns, ["--rcvbuf", "65536", "--heartbeat", "0.5"]) as br:
        br.result(c.Bind(port_id=0, proxy="tap0"))
        ns.ip("link", "set", "tap0", "up")
        ns.ip("addr", "add", "10.0.0.1/24", "dev", "tap0")
        stop = threading.Event()
        rounds = [0]

        def churn() -> None:
            while not stop.is_set():
                op = "replace" if rounds[0] % 2 == 0 else "del"
                ns.batch(
                    [f"route {op} 101.0.{i}.0/24 via 10.0.0.2" for i in range(200)], force=True
                )
                rounds[0] += 1

        with Subscriber(br.events, br.control) as sub:
            sub.sync(timeout=5)
            worker = threading.Thread(target=churn)
            worker.start()
            try:
                assert br.proc is not None
                br.proc.send_signal(signal.SIGSTOP)
                try:
                    ns.batch(
                        [
                            f"route add 100.{i // 250}.{i % 250}.0/24 via 10.0.0.2"
                            for i in range(20_000)
                        ]
                    )
                finally:
                    br.proc.send_signal(signal.SIGCONT)

                def resynced() -> bool:
                    status = br.result(c.Status())
                    return isinstance(status, c.StatusResult) and status.counters["resyncs"] >= 1

                wait_for(resynced, 60, what="a resync")
                start = rounds[0]
                wait_for(lambda: rounds[0] >= start + 4, 60, what="churn after the resync")
            finally:
                stop.set()
                worker.join(60)
            state = wait_bridge_equals_kernel(br, timeout=60)

            def replica_exact() -> bool:
                sub.poll(max_events=1_000_000, timeout=0.1)
                return not sub.repairing and sub.state.to_state() == state

            wait_for(replica_exact, 60, what="the subscriber's replica to match")
            record("churn during the resync dump: churn rounds / converged", f"{rounds[0]} / yes")
