"""The events a subscriber has for its application, and how far it has taken them (pure).

Ready events and lazily produced runs (a snapshot's initial routes, built only as they
are taken) wait in order; marks between them say which sequence number the application
has been given everything of: what a worker reports as applied.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Iterator

from ifpx.schemas import events as ev


class _Mark:
    """In the queue: every event before it belongs to ``epoch`` up to sequence number ``seq``."""

    __slots__ = ("at",)

    def __init__(self, at: tuple[int, int]) -> None:
        self.at = at


class EventQueue:
    """Events waiting for the application: ready ones, and lazily produced runs.

    Marks between them say which sequence number the application has been given
    everything of (:attr:`delivered`): what a worker reports as applied once it
    comes back for more.
    """

    def __init__(self) -> None:
        self._segments: deque[deque[ev.EventBase] | Iterator[ev.EventBase] | _Mark] = deque()
        self.delivered = (0, 0)
        """(epoch, seq): every event up to that sequence number has been taken."""

    def _tail(self) -> deque[ev.EventBase] | None:
        # Events queued behind a mark may go before it: the mark is only moved on (to a
        # later sequence number) after them, and until then it holds back nothing it
        # should not.
        segs = self._segments
        if not segs:
            return None
        last = segs[-1]
        if isinstance(last, _Mark) and len(segs) > 1:
            last = segs[-2]
        return last if isinstance(last, deque) else None

    def append(self, e: ev.EventBase) -> None:
        """Queue one event."""
        tail = self._tail()
        if tail is not None:
            tail.append(e)
        else:
            self._segments.append(deque([e]))

    def extend(self, events: Iterable[ev.EventBase]) -> None:
        """Queue events in order."""
        tail = self._tail()
        if tail is not None:
            tail.extend(events)
        else:
            run = deque(events)
            if run:
                self._segments.append(run)

    def mark(self, epoch: int, seq: int) -> None:
        """Everything queued so far belongs to ``epoch``, sequence numbers up to ``seq``."""
        segs = self._segments
        if not segs:
            self.delivered = (epoch, seq)
        elif isinstance(segs[-1], _Mark):
            segs[-1].at = (epoch, seq)
        else:
            segs.append(_Mark((epoch, seq)))

    @property
    def empty(self) -> bool:
        """True when nothing waits (marks aside)."""
        return not self._segments

    def take(self, n: int) -> list[ev.EventBase]:
        """Up to ``n`` events (fewer only when the queue runs dry)."""
        out: list[ev.EventBase] = []
        segs = self._segments
        while segs and (len(out) < n or isinstance(segs[0], _Mark)):
            head = segs[0]
            if isinstance(head, _Mark):
                self.delivered = head.at
                segs.popleft()
            elif isinstance(head, deque):
                want = n - len(out)
                if len(head) <= want:
                    out.extend(head)
                    segs.popleft()
                else:
                    out.extend(head.popleft() for _ in range(want))
            else:
                out.extend(itertools.islice(head, n - len(out)))
                if len(out) < n:
                    segs.popleft()  # that run is exhausted
        return out

    def add_lazy(self, events: Iterator[ev.EventBase]) -> None:
        """Queue a run of events produced only as they are taken."""
        self._segments.append(events)
