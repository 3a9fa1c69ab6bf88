"""Protocol versioning: what this build speaks, and how peers agree on it."""

from __future__ import annotations

PROTOCOL_VERSION = 1
"""Version of the wire contract (envelope, events, commands) this build speaks."""

PROTOCOL_MINOR = 5
"""Additions within :data:`PROTOCOL_VERSION`: fields with defaults and new event kinds.

0. The first contract.
1. Forwarding truth: routes carry ``type`` (unicast or a drop type) and ``prefsrc``,
   next hops carry ``flags`` (dead, linkdown, onlink), snapshots carry ``forwarding``
   beside ``nexthop_sets``; drop routes and routes through kernel next-hop objects
   are published; policy rules on the ``rule`` topic and in snapshots.
2. The convergence barrier: commands ``report`` (a worker's applied position),
   ``list_workers`` and ``wait_applied``; capability ``workers``.
3. Next-hop groups on the wire: topic ``fib`` with ``nhgroup_set``/``nhgroup_del``
   and routes by group id (``groute_add``/``groute_del``/``groute6_add``/
   ``groute6_del``); snapshots carry ``groups`` beside ``nexthop_sets``; ``snapshot``
   takes the requester's ``topics``; capability ``nhgroups``.
4. Bounds: error ``busy`` (a ``snapshot`` asked for too soon after a costly build);
   ``report`` taken on the read-only endpoint too.
5. Owned bindings: ``bind`` ``exclusive`` (refused with ``already_exists`` when
   another proxy that exists holds the port). Workers: state ``stalled`` (silent while
   its process lives: waited for), ``report`` ``leaving`` (a closing subscriber's last).

The Python models refuse fields they do not know, so a Python subscriber must be at
least as new as the bridge's minor (upgrade workers first); the C decoder skips
unknown fields.
"""

SUPPORTED_VERSIONS: tuple[int, ...] = (1,)
"""Versions this build can decode; ``hello`` picks the highest both sides share."""


def negotiate(offered: list[int]) -> int | None:
    """The highest version both sides speak, or None when they share none."""
    common = set(offered) & set(SUPPORTED_VERSIONS)
    return max(common) if common else None
