"""An IPv6 multipath route loses one next hop at a time (pure).

The kernel keeps an IPv6 multipath route as sibling routes, one per next hop. When one
hop's link goes (``ip link del``, a move to another namespace) or ``ip -6 route del``
names one hop, that sibling alone is deleted, and the RTM_DELROUTE names that hop
alone: the route stays, through the others. So an empty dump of the routes through
one link (the link went before the dump ran) cannot answer for a multipath route. And
``ip -6 route append`` adds a sibling: its RTM_NEWROUTE lists the new hop first, the
kernel's dumps (and its order of the hops) last.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import nlmsg


def remaining(rec: nlmsg.Route, held: tuple[nlmsg.NextHopT, ...]) -> nlmsg.Route | None:
    """For the RTM_DELROUTE ``rec`` of an IPv6 route held with next hops ``held``: the
    route as the kernel leaves it (an RTM_NEWROUTE through the other hops), or None
    when the whole route goes (every held hop named, or none of them)."""
    gone = {(gw, ifindex) for gw, ifindex, _w, _f in rec.nexthops}
    left = tuple(h for h in held if (h[0], h[1]) not in gone)
    if not left or len(left) == len(held):
        return None
    return rec._replace(deleted=False, nexthops=left)


def appended(rec: nlmsg.Route, held: tuple[nlmsg.NextHopT, ...]) -> nlmsg.Route:
    """The RTM_NEWROUTE ``rec`` that appended siblings to an IPv6 route held with next
    hops ``held``, its hops in the kernel's order: those it held first, as it held them."""
    at = {(h[0], h[1]): i for i, h in enumerate(held)}
    kept = sorted((h for h in rec.nexthops if (h[0], h[1]) in at), key=lambda h: at[h[0], h[1]])
    added = [h for h in rec.nexthops if (h[0], h[1]) not in at]
    return rec._replace(nexthops=(*kept, *added))


def leave_multipath(scope: set[Any], routes: Mapping[Any, Any]) -> bool:
    """Take the multipath routes out of ``scope`` (keys of ``routes``, whose values hold
    their group second); whether there were any (a whole dump must answer for them)."""
    several = {k for k in scope if len(routes[k][1].hops) > 1}
    scope -= several
    return bool(several)
