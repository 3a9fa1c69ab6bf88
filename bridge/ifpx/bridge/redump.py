"""What the route mirror asks of the daemon, and what it counts (pure).

The kernel changes routes silently (hops marked dead, routes flushed with a link):
the mirror does the same at once and asks for a :class:`Redump` to confirm it, which
the reconciler paces and the daemon runs. Kept apart from the mirror so that the
reconciler and the cycle depend on these records, not on the mirror.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from .groups import RouteKey, RouteVal

AF4 = socket.AF_INET
AF6 = socket.AF_INET6


@dataclass(frozen=True, slots=True)
class Redump:
    """A re-dump the core needs: routes of ``family``, through ``oif`` only if non-zero;
    or, with ``kind`` ``nexthop``, every next-hop object."""

    family: int
    oif: int = 0
    kind: str = "route"


NEXTHOP_REDUMP = Redump(0, 0, "nexthop")


@dataclass
class Counters:
    """Counters the daemon reports in ``status``."""

    records: int = 0
    events: int = 0
    compensations: int = 0
    resyncs: int = 0


def replaced(
    key: RouteKey, others: list[RouteKey], routes: Mapping[RouteKey, RouteVal]
) -> Iterator[Redump]:
    """The re-dumps that say whether ``others``, under the public key of ``key``, are still
    there after a route was set under ``key``.

    ``ip route replace`` swaps one route for another under the same public key with
    RTM_NEWROUTE alone: whether the others still exist, only a dump says. Not asked for
    a route created beside them (each link's fe80::/64 would ask about every other's).
    """
    for other in others:
        if other != key:
            hops = routes[other][1].hops
            yield Redump(other[0], hops[0][1] if len(hops) == 1 else 0)
