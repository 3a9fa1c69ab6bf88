"""A bounded journal of recent messages, for subscribers to repair small gaps (pure)."""

from __future__ import annotations

from collections import deque

from ifpx.schemas.envelope import Message


class JournalGap(Exception):
    """The journal no longer holds everything after the requested sequence."""


class Journal:
    """The last ``capacity`` published messages, oldest first."""

    def __init__(self, capacity: int = 65536, max_reply: int = 16384) -> None:
        self._items: deque[Message] = deque(maxlen=capacity)
        self.max_reply = max_reply

    def append(self, msg: Message) -> None:
        """Remember a published message."""
        self._items.append(msg)

    def since(self, from_seq: int, last_seq: int, topics: set[str] | None) -> list[Message]:
        """Messages with ``seq > from_seq`` on ``topics`` (all when None), in order.

        Raises :class:`JournalGap` if some were already forgotten, or if there are
        more than ``max_reply`` (a snapshot is then the cheaper repair).
        """
        if from_seq >= last_seq:
            return []
        if not self._items or self._items[0].seq > from_seq + 1:
            raise JournalGap(f"journal starts after seq {from_seq + 1}")
        if last_seq - from_seq > self.max_reply:
            raise JournalGap(f"{last_seq - from_seq} messages behind; take a snapshot")
        start = len(self._items) - (last_seq - from_seq)
        out = []
        for i in range(max(start, 0), len(self._items)):
            msg = self._items[i]
            if msg.seq > from_seq and (topics is None or msg.topic in topics):
                out.append(msg)
        return out
