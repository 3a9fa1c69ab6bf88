"""A bounded journal of recent messages, for subscribers to repair small gaps (pure).

It keeps the encoded payloads, not the models: a burst of a million route
events costs tens of megabytes this way instead of a gigabyte.
"""

from __future__ import annotations

from collections import deque


class JournalGap(Exception):
    """The journal no longer holds everything after the requested sequence."""


class Journal:
    """The last published messages (at most ``capacity`` of them and ``max_bytes`` in all)."""

    def __init__(
        self, capacity: int = 65536, max_bytes: int = 64 << 20, max_reply: int = 16384
    ) -> None:
        self._items: deque[tuple[int, str, bytes]] = deque()
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.max_reply = max_reply
        self.bytes = 0

    def append(self, seq: int, topic: str, payload: bytes) -> None:
        """Remember a published message."""
        self._items.append((seq, topic, payload))
        self.bytes += len(payload)
        while len(self._items) > self.capacity or (
            self.bytes > self.max_bytes and len(self._items) > 1
        ):
            self.bytes -= len(self._items.popleft()[2])

    def since(self, from_seq: int, last_seq: int, topics: set[str] | None) -> list[bytes]:
        """Payloads of the messages with ``seq > from_seq`` on ``topics`` (all when None).

        Raises :class:`JournalGap` if some were already forgotten, or if there are
        more than ``max_reply`` (a snapshot is then the cheaper repair).
        """
        if from_seq >= last_seq:
            return []
        if not self._items or self._items[0][0] > from_seq + 1:
            raise JournalGap(f"journal starts after seq {from_seq + 1}")
        if last_seq - from_seq > self.max_reply:
            raise JournalGap(f"{last_seq - from_seq} messages behind; take a snapshot")
        start = len(self._items) - (last_seq - from_seq)
        out = []
        for i in range(max(start, 0), len(self._items)):
            seq, topic, payload = self._items[i]
            if seq > from_seq and (topics is None or topic in topics):
                out.append(payload)
        return out
