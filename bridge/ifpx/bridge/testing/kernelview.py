"""The kernel's own view of the bound proxies, read with iproute2 (``ip -j``).

This is the independent reference the demo and the tests compare the bridge's
snapshot and the subscribers' replicas with: it shares no code with the
netlink decoder or the mirror.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from ifpx.schemas.events import NextHop, trimmed
from ifpx.schemas.state import Binding, NeighState, PortState, RouteState, RuleState, State


def ip_json(netns: str | None, *args: str) -> list[dict[str, Any]]:
    """Run ``ip -j -N ARGS`` (in ``netns``) and parse its output."""
    cmd = ["ip"] + (["-n", netns] if netns else []) + ["-j", "-N", *args]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60).stdout
    doc: list[dict[str, Any]] = json.loads(out) if out.strip() else []
    return doc


def _dst(family: int, raw: str) -> str:
    if raw == "default":
        return "0.0.0.0/0" if family == 4 else "::/0"
    if "/" not in raw:
        return f"{raw}/{32 if family == 4 else 128}"
    return raw


_TYPES = {"1": "unicast", "6": "blackhole", "7": "unreachable", "8": "prohibit", "9": "throw"}
"""Route types a forwarder acts on, by the number ``ip -N`` prints (and by name)."""
_TYPES.update({name: name for name in list(_TYPES.values())})
_HOP_FLAGS = ("dead", "linkdown", "onlink")


def _hop_flags(raw: dict[str, Any]) -> tuple[Any, ...]:
    flags = raw.get("flags", [])
    return tuple(f for f in _HOP_FLAGS if f in flags)


def _nexthop_objects(netns: str | None) -> dict[int, dict[str, Any]]:
    """``ip nexthop``'s objects by id (none on a kernel without them)."""
    try:
        return {int(o["id"]): o for o in ip_json(netns, "nexthop", "show")}
    except subprocess.CalledProcessError:
        return {}


def _resolve(objects: dict[int, dict[str, Any]], nhid: int) -> tuple[str, list[dict[str, Any]]]:
    """(type, next hops as ``ip -j`` prints them) of a route through object ``nhid``."""
    obj = objects.get(nhid, {})
    if "blackhole" in obj:
        return "blackhole", []
    if "group" in obj:
        hops = []
        for member in obj["group"]:
            single = objects.get(int(member["id"]), {})
            if "blackhole" in single:
                return "blackhole", []
            hops.append({**single, "weight": member.get("weight", 1)})
        return "unicast", hops
    return "unicast", [obj] if obj else []


def _group_address(ip: str) -> bool:
    if ":" in ip:
        return ip.lower().startswith("ff")
    return int(ip.split(".", 1)[0]) >= 224


def _routes(
    netns: str | None,
    ifindex_of: dict[str, int],
    ports_of: dict[int, list[int]],
    all_routes: bool,
) -> list[RouteState]:
    # Routes the kernel keeps apart per interface under one (table, dst, metric) are
    # published merged, gateway routes first, then by interface (as the bridge does).
    grouped: dict[tuple[int, int, str, int], list[tuple[int, int, list[NextHop], str, Any]]] = {}
    objects = _nexthop_objects(netns)
    for family in (4, 6):
        for r in ip_json(netns, f"-{family}", "route", "show", "table", "all"):
            rtype = _TYPES.get(r.get("type", "1"))
            if rtype is None or "cloned" in r.get("flags", []) or r.get("expires", 0) < 0:
                continue  # an expired route is listed until collected, but not used
            if rtype != "unicast":
                hops_raw: list[dict[str, Any]] = []  # an IPv6 one says "dev lo": no hop
            elif "nhid" in r:
                # Through the objects, whatever net.ipv4.nexthop_compat_mode expands.
                rtype, hops_raw = _resolve(objects, int(r["nhid"]))
            else:
                hops_raw = r.get("nexthops") or [r]
            hops = []
            for h in hops_raw:
                ifindex = ifindex_of.get(h.get("dev", ""), 0)
                bound = sorted(ports_of.get(ifindex, []))
                hops.append(
                    NextHop(
                        gateway=h.get("gateway"),
                        ifindex=ifindex,
                        port_id=bound[0] if bound else None,
                        weight=h.get("weight", 1),
                        flags=_hop_flags(h),
                    )
                )
            by_dev = (
                hops[0].ifindex
                if len(hops) == 1 and hops[0].gateway is None and "nhid" not in r
                else 0
            )
            key = (
                family,
                int(r.get("table", 254)),
                _dst(family, r["dst"]),
                int(r.get("metric", 0)),
            )
            variant = (by_dev, int(r.get("protocol", 3)), hops, rtype, r.get("prefsrc"))
            grouped.setdefault(key, []).append(variant)
    routes = []
    for (family, table, dst, metric), variants in grouped.items():
        if family == 4:
            # IPv4 routes under one key (`ip route append`) are aliases: the kernel
            # forwards by the first it lists; device routes are published merged, and
            # alone when one of them is listed before that first.
            firsts = [i for i, v in enumerate(variants) if not v[0]][:1]
            devices = [i for i, v in enumerate(variants) if v[0]]
            if firsts and devices and devices[0] < firsts[0]:
                firsts, devices = [], [i for i in devices if i < firsts[0]]
            variants = [variants[i] for i in firsts + devices]
        variants.sort(key=lambda v: v[0])
        _dev, proto, _hops, rtype, prefsrc = variants[0]
        # A drop route in front is published as it is: next hops are not its to merge.
        merged = [h for v in variants for h in v[2]] if rtype == "unicast" else []
        merged = list(trimmed(tuple(merged), lambda h: h.port_id is not None))
        # Drop routes always: they override a less specific route a worker would use.
        if rtype == "unicast" and not all_routes and not any(h.port_id is not None for h in merged):
            continue
        routes.append(
            RouteState(
                family=family,  # type: ignore[arg-type]
                dst=dst,
                table=table,
                proto=proto,
                metric=metric,
                nexthops=merged,
                type=rtype,  # type: ignore[arg-type]
                prefsrc=prefsrc,
            )
        )
    return routes


_RULE_ACTIONS = {"1": "lookup", "2": "goto", "3": "nop", "6": "blackhole", "7": "unreachable",
                 "8": "prohibit"}  # fmt: skip


def _range(r: dict[str, Any], name: str) -> tuple[int, int] | None:
    if name in r:  # ip prints a range of one as the number alone
        return (int(r[name]), int(r[name]))
    if f"{name}_start" in r:
        return (int(r[f"{name}_start"]), int(r[f"{name}_end"]))
    return None


def _rule(family: int, r: dict[str, Any]) -> RuleState:
    bits = 32 if family == 4 else 128
    src = None if r.get("src", "all") == "all" else r["src"]
    dst = None if r.get("dst", "all") == "all" else r.get("dst")
    if "goto" in r:
        action = "goto"
    elif "nop" in r:
        action = "nop"
    else:
        action = _RULE_ACTIONS.get(str(r.get("action", "1")), str(r.get("action")))
    fwmark = int(str(r.get("fwmark", "0")), 16)
    fwmask = int(str(r["fwmask"]), 16) if "fwmask" in r else (0xFFFFFFFF if fwmark else 0)
    ip_proto = r.get("ipproto")
    return RuleState(
        family=family,  # type: ignore[arg-type]
        priority=int(r.get("priority", 0)),
        action=action,  # type: ignore[arg-type]
        table=int(r.get("table", 0)),
        goto=r.get("goto"),
        src=src,
        src_len=int(r.get("srclen", bits if src else 0)),
        dst=dst,
        dst_len=int(r.get("dstlen", bits if dst else 0)),
        tos=int(str(r.get("tos", "0")), 16),
        fwmark=fwmark,
        fwmask=fwmask,
        iif=r.get("iif"),
        oif=r.get("oif"),
        invert="not" in r,
        suppress_prefixlen=r.get("suppress_prefixlen"),
        suppress_ifgroup=r.get("suppress_ifgroup"),
        l3mdev="l3mdev" in r,
        proto=int(r.get("protocol", 0)),
        ip_proto=None if ip_proto is None else int(str(ip_proto).removeprefix("ipproto-")),
        sport=_range(r, "sport"),
        dport=_range(r, "dport"),
        uid=_range(r, "uid"),
        tun_id=r.get("tun_id"),
    )


def _rules(netns: str | None) -> list[RuleState]:
    return [
        _rule(family, r)
        for family in (4, 6)
        for r in ip_json(netns, f"-{family}", "-d", "rule", "show")
    ]


def kernel_state(netns: str | None, bindings: list[Binding], all_routes: bool = False) -> State:
    """What the bridge should publish for ``bindings``, according to the kernel."""
    links = {link["ifname"]: link for link in ip_json(netns, "link", "show")}
    ifindex_of = {name: int(link["ifindex"]) for name, link in links.items()}
    active = [b for b in bindings if b.state == "active" and b.proxy in links]
    ports_of: dict[int, list[int]] = {}
    for b in active:
        ports_of.setdefault(ifindex_of[b.proxy], []).append(b.port_id)
    addrs: dict[str, list[str]] = {}
    for link in ip_json(netns, "addr", "show"):
        addrs[link["ifname"]] = [
            f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])
        ]
    ports = []
    for b in active:
        link = links[b.proxy]
        flags = link.get("flags", [])
        ports.append(
            PortState(
                port_id=b.port_id,
                proxy=b.proxy,
                ifindex=ifindex_of[b.proxy],
                mac=link.get("address"),
                mtu=link["mtu"],
                up="UP" in flags,
                carrier="LOWER_UP" in flags,
                addrs=sorted(addrs.get(b.proxy, [])),
            )
        )
    routes = _routes(netns, ifindex_of, ports_of, all_routes)
    neighs = []
    for n in ip_json(netns, "neigh", "show", "nud", "all"):
        ifindex = ifindex_of.get(n.get("dev", ""), 0)
        states = [s.lower() for s in n.get("state", [])]
        # Published as the bridge does: not NONE, and NOARP only for unicast addresses.
        if not states or states[0] == "none":
            continue
        if states[0] == "noarp" and _group_address(n["dst"]):
            continue
        for port in ports_of.get(ifindex, []):
            neighs.append(
                NeighState(
                    port_id=port,
                    ip=n["dst"],
                    mac=n.get("lladdr"),
                    state=states[0] if states else "none",
                )
            )
    return State(
        bindings=[b for b in bindings],
        ports=ports,
        routes=routes,
        neighs=neighs,
        rules=_rules(netns),
    )
