"""Prometheus metrics (``--metrics ADDR:PORT``), from the bridge's latest counters snapshot.

Nothing is counted twice and nothing is added to the netlink path: the daemon
makes one immutable :class:`~ifpx.bridge.stats.BridgeStats` a heartbeat (the same
kind of snapshot ``status`` answers from), and the HTTP server's thread reads
only that, never the live objects the main thread is changing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

if TYPE_CHECKING:
    from .daemon import Bridge


class BridgeCollector(Collector):
    """Exposes one bridge's counters."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge

    def collect(self) -> Iterator[Metric]:
        """Called by prometheus_client on each scrape."""
        st = self.bridge.latest_stats
        events = CounterMetricFamily(
            "ifpx_events_published", "Events published, by kind", labels=["kind"]
        )
        for kind, n in st.events_by_kind.items():
            events.add_metric([kind], n)
        yield events
        yield CounterMetricFamily("ifpx_messages_published", "Messages published", st.messages)
        yield CounterMetricFamily("ifpx_bytes_published", "Payload bytes published", st.bytes)
        yield CounterMetricFamily(
            "ifpx_netlink_records", "Netlink records applied", st.netlink_records
        )
        yield CounterMetricFamily(
            "ifpx_netlink_overruns", "Netlink overruns (ENOBUFS)", st.overruns
        )
        yield CounterMetricFamily("ifpx_resyncs", "Full resyncs", st.resyncs)
        yield CounterMetricFamily(
            "ifpx_resync_seconds", "Time spent in full resyncs", st.resync_seconds
        )
        yield CounterMetricFamily(
            "ifpx_compensations",
            "Targeted re-dumps for kernel changes made without notification",
            st.compensations,
        )
        commands = CounterMetricFamily(
            "ifpx_commands", "Commands answered, by command and result", labels=["cmd", "result"]
        )
        for (cmd, result), n in st.commands_by_result.items():
            commands.add_metric([cmd, result], n)
        yield commands
        yield GaugeMetricFamily("ifpx_epoch", "The bridge's epoch", st.epoch)
        yield GaugeMetricFamily("ifpx_sequence", "Last published sequence number", st.seq)
        yield GaugeMetricFamily("ifpx_bindings", "Bindings, active or gone", st.bindings)
        yield GaugeMetricFamily(
            "ifpx_routes_mirrored", "Routes in the kernel mirror", st.routes_mirrored
        )
        yield GaugeMetricFamily(
            "ifpx_nhgroups", "Next-hop groups in use in the mirror", st.groups_mirrored
        )
        yield GaugeMetricFamily(
            "ifpx_routes_hidden",
            "IPv4 routes behind the first of their key (ip route append): not published",
            st.routes_hidden,
        )
        yield GaugeMetricFamily(
            "ifpx_journal_bytes", "Bytes held by the replay journal", st.journal_bytes
        )
        states = GaugeMetricFamily(
            "ifpx_workers", "Workers reporting to the bridge, by state", labels=["state"]
        )
        for state in ("syncing", "current", "repairing", "lagging", "stalled", "gone"):
            states.add_metric([state], st.workers_by_state.get(state, 0))
        yield states
        lag = GaugeMetricFamily(
            "ifpx_worker_lag_seq",
            "Sequence numbers a worker has not applied yet",
            labels=["worker"],
        )
        lag_s = GaugeMetricFamily(
            "ifpx_worker_lag_seconds",
            "Age of the oldest message a worker has not applied yet",
            labels=["worker"],
        )
        for name, (seqs, seconds) in sorted(st.worker_lag.items()):
            lag.add_metric([name], seqs)
            lag_s.add_metric([name], seconds)
        yield lag
        yield lag_s


def serve(bridge: Bridge, address: str) -> None:
    """Serve ``/metrics`` on ``ADDR:PORT`` from a thread of prometheus_client's."""
    host, _, port = address.rpartition(":")
    registry = CollectorRegistry()
    registry.register(BridgeCollector(bridge))
    # A bare port is served on loopback: exposing metrics to the network is a choice.
    start_http_server(int(port), addr=host or "127.0.0.1", registry=registry)
