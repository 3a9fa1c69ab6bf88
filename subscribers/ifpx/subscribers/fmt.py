"""One-line, human-readable rendering of events, in the spirit of ``ip monitor``."""

from __future__ import annotations

import time

from ifpx.schemas import events as ev

from . import names


def hop_list(hops: list[ev.NextHop]) -> str:
    """Next hops in ``ip route``'s words (``via GW``, flags after), joined by commas."""
    parts = []
    for h in hops:
        via = f"via {h.gateway} " if h.gateway else ""
        port = f"port {h.port_id}" if h.port_id is not None else f"ifindex {h.ifindex}"
        weight = f" weight {h.weight}" if len(hops) > 1 else ""
        flags = "".join(f" {f}" for f in h.flags)  # as `ip route` prints them
        parts.append(f"{via}{port}{weight}{flags}")
    return ", ".join(parts) if parts else "no next hop"


def link_state(up: bool, carrier: bool) -> str:
    """The state ``ip -br link`` shows: UP, DOWN, or NO-CARRIER (up, no carrier)."""
    if not up:
        return "DOWN"
    return "UP" if carrier else "NO-CARRIER"


def addr_label(addr: str) -> str:
    """``inet`` or ``inet6``, as ``ip addr`` labels an address."""
    return "inet6" if ":" in addr else "inet"


def rule_text(r: ev.RuleFields) -> str:
    """A rule in ``ip rule``'s words: ``100: from 10.0.0.0/8 iif v0 lookup 100``."""
    src, dst = getattr(r, "src", None), getattr(r, "dst", None)
    parts = [f"{r.priority}:"] + (["not"] if r.invert else [])
    parts.append(f"from {src}/{r.src_len}" if src else "from all")
    if dst:
        parts.append(f"to {dst}/{r.dst_len}")
    if r.tos:
        parts.append(f"tos {r.tos:#x}")
    if r.fwmark or r.fwmask:
        parts.append(f"fwmark {r.fwmark:#x}/{r.fwmask:#x}")
    parts += [f"iif {r.iif}"] if r.iif else []
    parts += [f"oif {r.oif}"] if r.oif else []
    parts += [f"ipproto {r.ip_proto}"] if r.ip_proto is not None else []
    for name in ("sport", "dport", "uid"):
        bounds = getattr(r, name)
        if bounds is not None:
            parts.append(f"{'uidrange' if name == 'uid' else name} {bounds[0]}-{bounds[1]}")
    if r.action == "lookup":
        parts.append(f"lookup {names.table(r.table)}")
    elif r.action == "goto":
        parts.append(f"goto {r.goto}")
    else:
        parts.append(r.action)
    if r.suppress_prefixlen is not None:
        parts.append(f"suppress_prefixlength {r.suppress_prefixlen}")
    return " ".join(parts)


def describe(e: ev.EventBase) -> str:
    """What changed, without timestamp."""
    kind: str = e.kind
    if isinstance(e, ev.PortScoped):
        return f"port {e.port_id} ({e.proxy}) {_port_change(e, kind)}"
    if isinstance(e, ev.NhGroupSet):
        return f"nhgroup {e.group} {hop_list(e.nexthops)}"
    if isinstance(e, ev.NhGroupDel):
        return f"nhgroup del {e.group}"
    if isinstance(e, ev.RouteEvent):
        return _route(e, kind)
    if isinstance(e, ev.RuleAdd | ev.RuleDel | ev.Rule6Add | ev.Rule6Del):
        # `ip -6 rule` for IPv6: a rule from all to all reads the same in both families.
        family = "-6 " if isinstance(e, ev.Rule6Add | ev.Rule6Del) else ""
        verb = "rule add" if kind.endswith("_add") else "rule del"
        return f"{family}{verb} {rule_text(e)}"
    if isinstance(e, ev.ResyncEnd):
        return f"resync end ({e.reason}): {e.changes} changes"
    if isinstance(e, ev.ResyncBegin):
        return f"resync begin ({e.reason})"
    return kind.replace("_", " ")


def _port_change(e: ev.PortScoped, kind: str) -> str:
    if isinstance(e, ev.MacChange):
        return f"mac {e.mac}"
    if isinstance(e, ev.MtuChange):
        return f"mtu {e.mtu}"
    if isinstance(e, ev.LinkChange):
        return f"link {link_state(e.up, e.carrier)}"
    if isinstance(e, ev.AddrAdd | ev.AddrDel | ev.Addr6Add | ev.Addr6Del):
        verb = "addr add" if kind.endswith("_add") else "addr del"
        return f"{verb} {e.ip}/{e.prefixlen}"
    if isinstance(e, ev.NeighAdd | ev.Neigh6Add):
        return f"neigh {e.ip} lladdr {e.mac or '-'} {e.state}"
    if isinstance(e, ev.NeighDel | ev.Neigh6Del):
        return f"neigh del {e.ip}"
    if isinstance(e, ev.ProxyRenamed):
        return f"renamed from {e.old_name}"
    if isinstance(e, ev.ProxyBack):
        return f"proxy back as ifindex {e.ifindex} (was {e.old_ifindex})"
    return f"{kind.replace('_', ' ')} ifindex {e.ifindex}"


def _route(e: ev.RouteEvent, kind: str) -> str:
    verb = "route add" if kind.endswith("_add") else "route del"
    # iproute2's words: table and protocol names, "main" left out.
    table = "" if e.table == 254 else f" table {names.table(e.table)}"
    tail = f"{table} proto {names.proto(e.proto)}"
    tail += (f" metric {e.metric}" if e.metric else "") + (f" src {e.prefsrc}" if e.prefsrc else "")
    if e.type != "unicast":  # a drop route: `ip route` puts the type first, no hops
        return f"{verb} {e.type} {e.dst}/{e.prefixlen}{tail}"
    if isinstance(e, ev.GRouteAdd | ev.GRouteDel | ev.GRoute6Add | ev.GRoute6Del):
        return f"{verb} {e.dst}/{e.prefixlen} nhgroup {e.group}{tail}"  # `ip`'s nhid
    return f"{verb} {e.dst}/{e.prefixlen} {hop_list(e.nexthops)}{tail}"


def line(e: ev.EventBase, when: float | None = None) -> str:
    """``HH:MM:SS.mmm what changed``."""
    t = time.time() if when is None else when
    stamp = time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"
    return f"{stamp} {describe(e)}"
