"""Policy routing as the kernel does it: rules in priority order, then a table (pure).

:func:`resolve` walks a replica's rules for a packet (its :class:`Flow`) the way
``fib_rules_lookup`` does: the first matching rule decides; ``lookup`` looks the
destination up in its table, and a miss, a ``throw`` route or a route the rule's
``suppress_prefixlen`` refuses goes on to the next rule; ``goto`` jumps to the rule
of that priority; ``nop`` goes on; ``blackhole``, ``unreachable`` and
``prohibit`` drop.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ifpx.schemas.state import RuleState

if TYPE_CHECKING:
    from .replica import Replica, Route


@dataclass(frozen=True, slots=True)
class Flow:
    """What the rules can select a packet by; unset fields match only rules without
    that selector (as a packet without the attribute would)."""

    dst: str
    src: str | None = None
    iif: str | None = None
    oif: str | None = None
    fwmark: int = 0
    tos: int = 0
    ip_proto: int | None = None
    sport: int | None = None
    dport: int | None = None
    uid: int | None = None


def _in_prefix(ip: str | None, net: str | None, plen: int) -> bool:
    if net is None or plen == 0:
        return True
    if ip is None:
        return False
    return ipaddress.ip_address(ip) in ipaddress.ip_network(f"{net}/{plen}", strict=False)


def _in_range(value: int | None, bounds: tuple[int, int] | None) -> bool:
    if bounds is None:
        return True
    return value is not None and bounds[0] <= value <= bounds[1]


def matches(rule: RuleState, flow: Flow) -> bool:
    """Whether ``rule``'s selectors take ``flow`` (``invert`` applied)."""
    hit = (
        _in_prefix(flow.src, rule.src, rule.src_len)
        and _in_prefix(flow.dst, rule.dst, rule.dst_len)
        and (rule.iif is None or rule.iif == flow.iif)
        and (rule.oif is None or rule.oif == flow.oif)
        and not ((rule.fwmark ^ flow.fwmark) & rule.fwmask)
        and (rule.tos == 0 or rule.tos == flow.tos)
        and (rule.ip_proto is None or rule.ip_proto == flow.ip_proto)
        and _in_range(flow.sport, rule.sport)
        and _in_range(flow.dport, rule.dport)
        and _in_range(flow.uid, rule.uid)
        and rule.tun_id is None
        and not rule.l3mdev
    )
    return hit != rule.invert


def _drop(family: int, action: str) -> Route:
    from .replica import Route

    dst = "0.0.0.0/0" if family == 4 else "::/0"
    return Route(family, dst, 0, 0, 0, (), action, None)  # type: ignore[arg-type]


def resolve(replica: Replica, flow: Flow, ignore_linkdown: bool = False) -> Route | None:
    """The route the kernel forwards ``flow`` by, through the replica's rules.

    A drop by a rule comes back as a route of that type from table 0; None: no
    route (the kernel answers "network unreachable"). Rules selecting on tunnels
    or L3 master devices never match here. Without any rule of the family (a
    bridge before protocol minor 1, or a subscriber filtering the ``rule`` topic
    out) the main table decides.
    """
    family = 6 if ":" in flow.dst else 4
    rules = sorted((r for r in replica.rules if r.family == family), key=lambda r: r.priority)
    if not rules:
        return replica.lookup(flow.dst, 254, ignore_linkdown)
    i = 0
    while i < len(rules):
        rule = rules[i]
        i += 1
        if not matches(rule, flow):
            continue
        if rule.action == "goto":
            # To the first rule of that priority; a goto to nowhere is passed over.
            target = next((j for j, r in enumerate(rules) if r.priority == rule.goto), None)
            if target is not None and target > i - 1:
                i = target
            continue
        if rule.action == "nop":
            continue
        if rule.action != "lookup":
            return _drop(family, rule.action)
        route = replica.lookup(flow.dst, rule.table, ignore_linkdown)
        if route is None or route.type == "throw":
            continue
        plen = int(route.dst.rsplit("/", 1)[1])
        if rule.suppress_prefixlen is not None and plen <= rule.suppress_prefixlen:
            continue
        return route
    return None
