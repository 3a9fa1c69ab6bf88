"""When the mirror is checked against the kernel: re-dumps, in order, and a second look.

The kernel changes some state without a message (IPv4 routes go with a link that went
down or an address that was removed; next-hop groups lose a member). The core notices
what may have changed and asks for a re-dump of it (:attr:`BridgeCore.redumps`); this
module decides the order they run in and when the same dumps run once more. It is
pure: the daemon runs each dump and says what time it is.
"""

from __future__ import annotations

from .redump import Counters, Redump

SETTLE = 0.05
"""Seconds after a compensating re-dump until the same dump is looked at once more."""

COALESCE = 8
"""Re-dumps of one family through that many interfaces become one of the whole family:
hundreds of links changing at once cost a few whole dumps, not one each."""


def redump_order(req: Redump) -> tuple[bool, int, int]:
    """Next-hop objects first (the routes re-dumped next resolve through them), then by
    family and interface."""
    return (req.kind != "nexthop", req.family, req.oif)


class Reconciler:
    """The re-dumps the core asked for, one at a time, and the second looks they promise.

    The kernel may not be done when it tells: it sends RTM_DELADDR before it flushes the
    address's routes, and IPv4 route dumps do not wait for that flush. So every re-dump
    runs again :data:`SETTLE` seconds after the first of a burst, catching what the
    first one still saw.
    """

    def __init__(self, wanted: set[Redump], counters: Counters, settle: float = SETTLE) -> None:
        self.wanted = wanted
        """The core's requests (its :attr:`~ifpx.bridge.core.BridgeCore.redumps`: the
        same set, which a dump may add to)."""
        self.counters = counters
        self.settle = settle
        self._again: set[Redump] = set()
        self._again_at = 0.0

    def next(self) -> Redump | None:
        """The re-dump to run now, taken from the requests; None when there is none."""
        if not self.wanted:
            return None
        self._coalesce()
        req = min(self.wanted, key=redump_order)
        self.wanted.discard(req)
        self.counters.compensations += 1
        return req

    def _coalesce(self) -> None:
        """Enough re-dumps through one interface each are one of the whole family (see
        :data:`COALESCE`)."""
        through: dict[int, list[Redump]] = {}
        for r in self.wanted:
            if r.kind == "route" and r.oif:
                through.setdefault(r.family, []).append(r)
        for family, reqs in through.items():
            if len(reqs) >= COALESCE:
                self.wanted.difference_update(reqs)
                self.wanted.add(Redump(family))

    def ran(self, req: Redump, now: float) -> None:
        """``req`` has run (finishing at ``now``): it runs again once the burst settles."""
        if not self._again:
            self._again_at = now + self.settle
        self._again.add(req)

    def due(self, now: float) -> list[Redump]:
        """The second looks due at ``now``, in order; each is handed out once."""
        if not self._again or now < self._again_at:
            return []
        reqs, self._again = self._again, set()
        return sorted(reqs, key=redump_order)

    def wake_at(self) -> float | None:
        """When :meth:`due` will next have something; None: nothing is promised."""
        return self._again_at if self._again else None

    def covered(self) -> None:
        """A whole dump just ran: every request it answers is dropped."""
        self.wanted.clear()
