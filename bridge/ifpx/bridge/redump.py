"""What the route mirror asks of the daemon, and what it counts (pure).

The kernel changes routes silently (hops marked dead, routes flushed with a link):
the mirror does the same at once and asks for a :class:`Redump` to confirm it, which
the reconciler paces and the daemon runs. Kept apart from the mirror so that the
reconciler and the cycle depend on these records, not on the mirror.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

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
