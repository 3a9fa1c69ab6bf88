"""Which route forms the bridge publishes, from the subscriptions it sees (pure).

Routes travel flat (topic ``route``) and by next-hop group (topic ``fib``); building
both for every change would double the bridge's work per route, so a form is built
only while someone takes it. The PUB socket is an XPUB: it hands the bridge each
topic's first subscription and last unsubscription. A subscriber subscribes before
it asks for its snapshot, but the two travel on different connections, so the
snapshot request may arrive first: the topics it names are kept published for
:data:`LEASE` seconds, which covers the subscription still on its way.
"""

from __future__ import annotations

from collections.abc import Iterable

from ifpx.schemas.topics import TOPICS

_NAMES = tuple(t.encode() for t in TOPICS)

LEASE = 10.0
"""Seconds a ``snapshot`` request keeps its topics published without a subscription."""


class RouteForms:
    """The topics subscribed to (prefixes, as ZeroMQ matches them) and the leases."""

    def __init__(self) -> None:
        self._prefixes: set[bytes] = set()
        self._leases: dict[str, float] = {}

    def subscription(self, frame: bytes) -> None:
        """An XPUB frame: 1 and a prefix (first subscriber) or 0 and a prefix (last gone)."""
        if not frame or frame[0] not in (0, 1):
            return  # not a subscription message (an XPUB passes on other frames as they are)
        prefix = frame[1:]
        if not any(name.startswith(prefix) for name in _NAMES):
            return  # matches no topic: nothing to build for it (and kept: a set without bound)
        if frame[0] == 1:
            self._prefixes.add(frame[1:])
        else:
            self._prefixes.discard(frame[1:])

    def lease(self, topics: Iterable[str] | None, now: float) -> None:
        """A snapshot was asked for by someone who takes ``topics`` (None: the flat form)."""
        for topic in ("route",) if topics is None else topics:
            self._leases[topic] = now + LEASE

    def wanted(self, topic: str, now: float) -> bool:
        """Whether someone takes ``topic`` (or may, any moment now)."""
        name = topic.encode()
        if any(name.startswith(p) for p in self._prefixes):
            return True
        return self._leases.get(topic, 0.0) > now
