"""One snapshot of the bridge's counters, for ``status`` and for the metrics endpoint (pure).

The daemon builds it on its own thread (:meth:`~ifpx.bridge.daemon.Bridge.stats`);
``status`` answers from a fresh one, and the metrics endpoint's thread reads the
latest one the daemon published, an immutable object, instead of reaching into
live dictionaries another thread is changing.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BridgeStats:
    """Every counter of one bridge at one moment."""

    epoch: int
    seq: int
    uptime: float
    bindings: int
    netlink_records: int
    events: int
    compensations: int
    resyncs: int
    resync_seconds: float
    overruns: int
    dump_retries: int
    messages: int
    bytes: int
    journal_bytes: int
    journal_capacity: int
    routes_mirrored: int
    links_mirrored: int
    commands_ok: int
    commands_failed: int
    events_by_kind: dict[str, int]
    commands_by_result: dict[tuple[str, str], int]
    worker_reports: int = 0
    worker_reports_refused: int = 0
    workers_by_state: dict[str, int] = field(default_factory=dict)
    worker_lag: dict[str, tuple[int, float]] = field(default_factory=dict)
    """Per worker name: (lag in sequence numbers, lag in seconds)."""
    groups_mirrored: int = 0
    """Next-hop groups in use (what the group form's ids number)."""
    routes_hidden: int = 0
    """IPv4 routes the kernel holds behind the first of their key (not published)."""
    snapshots_built: int = 0
    """Snapshots built and packed (the other ``snapshot`` requests reused one)."""
    snapshots_refused: int = 0
    """``snapshot`` requests answered ``busy``: too soon after the last build."""
    connections: int = 0
    """Connections open on the bridge's sockets."""
    connections_refused: int = 0
    """Connections shut down: over ``--max-connections``, or subscribing without end."""

    def counters(self) -> dict[str, int]:
        """The integer counters ``status`` reports, by name."""
        return {
            "netlink_records": self.netlink_records,
            "events": self.events,
            "compensations": self.compensations,
            "resyncs": self.resyncs,
            "messages": self.messages,
            "bytes": self.bytes,
            "commands_ok": self.commands_ok,
            "commands_failed": self.commands_failed,
            "routes_mirrored": self.routes_mirrored,
            "groups_mirrored": self.groups_mirrored,
            "routes_hidden": self.routes_hidden,
            "snapshots_built": self.snapshots_built,
            "snapshots_refused": self.snapshots_refused,
            "connections": self.connections,
            "connections_refused": self.connections_refused,
            "links_mirrored": self.links_mirrored,
            "overruns": self.overruns,
            "dump_retries": self.dump_retries,
            "journal_bytes": self.journal_bytes,
            "journal_capacity": self.journal_capacity,
            "worker_reports": self.worker_reports,
            "worker_reports_refused": self.worker_reports_refused,
        }
