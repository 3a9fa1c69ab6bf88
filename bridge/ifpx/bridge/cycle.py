"""What the bridge does with what the kernel says, in the order that matters (pure).

The daemon reads netlink and the control sockets and runs the dumps; this says what
follows: records applied and their events published before the re-dumps they ask for
(a link that went down is a handful of group events, and its re-dump, a million routes
perhaps, only confirms them); the flat form's put-off republishing after the group
form's events, in slices; the re-dumps in the reconciler's order and their second
looks; a resync between its markers. Dumping, publishing and the clock are passed in,
so it runs on scripted dumps in tests.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable, Sequence
from itertools import islice

from ifpx.schemas.envelope import MAX_BATCH
from ifpx.schemas.events import EventBase, ResyncBegin, ResyncEnd

from . import nlmsg
from .bindings import Entry
from .core import AF4, AF6, BridgeCore
from .reconciler import Reconciler
from .redump import Redump

EXPIRY_SLACK = 0.2
"""Seconds after an IPv6 route's expiry that its family is dumped again (the kernel
reports the time left in hundredths, rounded down); expiries this close share a dump."""

Dump = Callable[[str, int, int], list[EventBase]]
"""Dump ``kind`` (of a family, through an interface if non-zero) and make the mirror
equal it; the events of the difference."""


class Cycle:
    """The bridge's order of work over one core."""

    def __init__(
        self,
        core: BridgeCore,
        dump: Dump,
        publish: Callable[[Sequence[EventBase]], None],
        clock: Callable[[], float] = time.monotonic,
        batch: int = MAX_BATCH,
        persist: Callable[[], None] | None = None,
    ) -> None:
        self.core = core
        self.dump = dump
        self._publish = publish
        self._persist = persist
        """Writes the bindings to the state file."""
        self._moved = core.bindings.moved
        self.clock = clock
        self.batch = batch
        """Most of the flat form's put-off events published at once."""
        self.reconciler = Reconciler(core.redumps, core.counters)
        self._expiries: list[int] = []
        """When IPv6 routes expire: a heap of slots of :data:`EXPIRY_SLACK` seconds of the
        clock, each a little after the expiries filed in it."""
        self._expiry_slots: set[int] = set()

    def records(self, records: Iterable[nlmsg.Record]) -> None:
        """Apply ``records``; publish their events, then what the re-dumps they asked
        for found."""
        self.publish(self.core.apply_all(records))
        self.publish(self.compensate())

    def publish(self, events: list[EventBase]) -> None:
        """Publish ``events``, then what the flat form was let off building meanwhile.

        A next hop that died is one ``nhgroup_set`` for the group form, and a
        ``route_add`` of every route through it for the flat form: the first goes out
        before the second is even built (a million of them take the bridge seconds).
        """
        self._keep_bindings()
        if events:
            self._publish(events)
        owed = self.core.fib.deferred()
        while chunk := list(islice(owed, self.batch)):
            self._publish(chunk)

    def _keep_bindings(self) -> None:
        """Write the bindings again if the kernel moved a proxy (it came back under a new
        ifindex, or was renamed), before anyone is told: a bridge restarted later then finds
        the proxy by what it is now called."""
        moved = self.core.bindings.moved
        if moved != self._moved:
            self._moved = moved
            if self._persist is not None:
                self._persist()

    def compensate(self) -> list[EventBase]:
        """Run the re-dumps the core asked for (see :class:`Reconciler`); their events."""
        events: list[EventBase] = []
        while (req := self.reconciler.next()) is not None:
            events.extend(self.dump(req.kind, req.family, req.oif))
            self.reconciler.ran(req, self.clock())
        return events

    def settle(self) -> None:
        """Run and publish the second looks the re-dumps promised, once they are due,
        and the dumps that find the IPv6 routes that expired."""
        now = self.clock()
        due = self.reconciler.due(now)
        if self._expired(now):
            due.append(Redump(AF6))
        if not due:
            return
        events: list[EventBase] = []
        for req in due:
            events.extend(self.dump(req.kind, req.family, req.oif))
        self.publish(events)

    def _file_expiries(self, now: float) -> None:
        """File the expiries the core saw since (one dump a :data:`EXPIRY_SLACK` slot)."""
        for seconds in self.core.expiring:
            slot = int((now + seconds) / EXPIRY_SLACK) + 2
            if slot not in self._expiry_slots:
                self._expiry_slots.add(slot)
                heapq.heappush(self._expiries, slot)
        self.core.expiring.clear()

    def _expired(self, now: float) -> bool:
        """Whether an IPv6 route expired by ``now``."""
        self._file_expiries(now)
        heap = self._expiries
        if not heap or heap[0] * EXPIRY_SLACK > now:
            return False
        while heap and heap[0] * EXPIRY_SLACK <= now:
            self._expiry_slots.discard(heapq.heappop(heap))
        return True

    def wake_at(self) -> float | None:
        """When :meth:`settle` next has work; None: nothing is promised."""
        self._file_expiries(self.clock())
        wake = self.reconciler.wake_at()
        if self._expiries:
            at = self._expiries[0] * EXPIRY_SLACK
            return at if wake is None else min(at, wake)
        return wake

    def dump_all(self, saved: list[Entry] | None = None) -> list[EventBase]:
        """Dump everything, in the order the mirror needs (the bindings of the state
        file, ``saved``, restored against the links); the events of the difference."""
        events = self.dump("link", 0, 0)
        if saved is not None:
            events.extend(self.core.restore(saved))
        events.extend(self.dump("addr", 0, 0))
        # Objects before routes: a route through one resolves as it is loaded.
        events.extend(self.dump("nexthop", 0, 0))
        events.extend(self.dump("route", AF4, 0))
        events.extend(self.dump("route", AF6, 0))
        events.extend(self.dump("rule", AF4, 0))
        events.extend(self.dump("rule", AF6, 0))
        events.extend(self.dump("neigh", 0, 0))
        self.reconciler.covered()
        return events

    def resync(self, reason: str) -> int:
        """Dump everything again and publish the difference between ``resync_begin`` and
        ``resync_end``; how many changes that was."""
        self.core.counters.resyncs += 1
        events = self.dump_all()
        events += list(self.core.fib.deferred())  # between the markers, with the rest
        self._keep_bindings()
        self._publish(
            [ResyncBegin(reason=reason), *events, ResyncEnd(reason=reason, changes=len(events))]
        )
        return len(events)
