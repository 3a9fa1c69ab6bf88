"""Prometheus metrics (``--metrics ADDR:PORT``), read from the bridge's counters at scrape time.

Nothing is counted twice and nothing is added to the netlink path: the
collector reads the counters the bridge keeps anyway, from the HTTP server's
thread. Dictionaries are copied before iteration, since the main thread may be
adding a key at that moment.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, TypeVar

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

if TYPE_CHECKING:
    from .daemon import Bridge


_K = TypeVar("_K")


def _copy(d: dict[_K, int]) -> list[tuple[_K, int]]:
    for _ in range(5):
        try:
            return list(dict(d).items())
        except RuntimeError:  # changed size during the copy: try again
            continue
    return []


class BridgeCollector(Collector):
    """Exposes one bridge's counters."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge

    def collect(self) -> Iterator[Metric]:
        """Called by prometheus_client on each scrape."""
        b = self.bridge
        pub, core, ctl = b.pub, b.core, b.controller
        events = CounterMetricFamily(
            "ifpx_events_published", "Events published, by kind", labels=["kind"]
        )
        for kind, n in _copy(pub.by_kind):
            events.add_metric([kind], n)
        yield events
        yield CounterMetricFamily("ifpx_messages_published", "Messages published", pub.messages)
        yield CounterMetricFamily("ifpx_bytes_published", "Payload bytes published", pub.bytes)
        yield CounterMetricFamily(
            "ifpx_netlink_records", "Netlink records applied", core.counters.records
        )
        yield CounterMetricFamily("ifpx_netlink_overruns", "Netlink overruns (ENOBUFS)", b.overruns)
        yield CounterMetricFamily("ifpx_resyncs", "Full resyncs", core.counters.resyncs)
        yield CounterMetricFamily(
            "ifpx_resync_seconds", "Time spent in full resyncs", b.resync_seconds
        )
        yield CounterMetricFamily(
            "ifpx_compensations",
            "Targeted re-dumps for kernel changes made without notification",
            core.counters.compensations,
        )
        commands = CounterMetricFamily(
            "ifpx_commands", "Commands answered, by command and result", labels=["cmd", "result"]
        )
        for (cmd, result), n in _copy(ctl.stats.by_result):
            commands.add_metric([cmd, result], n)
        yield commands
        yield GaugeMetricFamily("ifpx_epoch", "The bridge's epoch", b.epoch)
        yield GaugeMetricFamily("ifpx_sequence", "Last published sequence number", pub.seq)
        yield GaugeMetricFamily("ifpx_bindings", "Bindings, active or gone", len(core.bindings))
        yield GaugeMetricFamily(
            "ifpx_routes_mirrored", "Routes in the kernel mirror", len(core.routes)
        )
        yield GaugeMetricFamily(
            "ifpx_journal_bytes", "Bytes held by the replay journal", pub.journal.bytes
        )


def serve(bridge: Bridge, address: str) -> None:
    """Serve ``/metrics`` on ``ADDR:PORT`` from a thread of prometheus_client's."""
    host, _, port = address.rpartition(":")
    registry = CollectorRegistry()
    registry.register(BridgeCollector(bridge))
    start_http_server(int(port), addr=host or "0.0.0.0", registry=registry)
