"""One snapshot of the bridge's counters, for ``status`` and for the metrics endpoint (pure).

The daemon builds it on its own thread (:meth:`~ifpx.bridge.daemon.Bridge.stats`);
``status`` answers from a fresh one, and the metrics endpoint's thread reads the
latest one the daemon published, an immutable object, instead of reaching into
live dictionaries another thread is changing.
"""

from __future__ import annotations

from dataclasses import dataclass


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
            "links_mirrored": self.links_mirrored,
            "overruns": self.overruns,
            "dump_retries": self.dump_retries,
            "journal_capacity": self.journal_capacity,
        }
