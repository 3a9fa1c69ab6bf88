"""rtnetlink messages: a struct-based decoder for the hot path, and request builders.

Pure code: bytes in, records out. pyroute2's parser is the reference (the tests
compare the two field by field); this one exists because it is an order of
magnitude faster on full-table dumps.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
RTM_NEWROUTE = 24
RTM_DELROUTE = 25
RTM_GETROUTE = 26
RTM_NEWNEIGH = 28
RTM_DELNEIGH = 29
RTM_GETNEIGH = 30
RTM_NEWRULE = 32
RTM_DELRULE = 33
RTM_GETRULE = 34
RTM_NEWNEXTHOP = 104
RTM_DELNEXTHOP = 105
RTM_GETNEXTHOP = 106

NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_APPEND = 0x800
ROUTE_NLFLAGS = NLM_F_REPLACE | NLM_F_EXCL | NLM_F_CREATE | NLM_F_APPEND
"""The flags of an RTM_NEWROUTE notification that say where an IPv4 route went among
the routes of its (table, dst, tos, metric): ``ip route add`` (CREATE|EXCL: the only
one), ``append`` (CREATE|APPEND: last), ``prepend`` (CREATE: first), ``replace``
(REPLACE: the first replaced)."""

RTMGRP_LINK = 0x1
RTMGRP_NEIGH = 0x4
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV4_RULE = 0x80
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
RTMGRP_IPV6_RULE = 1 << (19 - 1)  # RTNLGRP_IPV6_RULE
RTNLGRP_NEXTHOP = 32
"""Next-hop objects' group: above 31, so joined with NETLINK_ADD_MEMBERSHIP, not bind()."""
ALL_GROUPS = (
    RTMGRP_LINK
    | RTMGRP_NEIGH
    | RTMGRP_IPV4_IFADDR
    | RTMGRP_IPV4_ROUTE
    | RTMGRP_IPV6_IFADDR
    | RTMGRP_IPV6_ROUTE
    | RTMGRP_IPV4_RULE
    | RTMGRP_IPV6_RULE
)

IFF_UP = 0x1
IFF_RUNNING = 0x40
IFF_LOWER_UP = 0x10000
AF_BRIDGE = 7

IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFA_ADDRESS = 1
IFA_LOCAL = 2
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_PREFSRC = 7
RTA_CACHEINFO = 12
RTA_MULTIPATH = 9
RTA_TABLE = 15
RTA_VIA = 18
RTA_NH_ID = 30
NHA_ID = 1
NHA_GROUP = 2
NHA_GROUP_TYPE = 3
NHA_BLACKHOLE = 4
NHA_OIF = 5
NHA_GATEWAY = 6
NHA_FDB = 11
FRA_DST = 1
FRA_SRC = 2
FRA_IIFNAME = 3
FRA_GOTO = 4
FRA_PRIORITY = 6
FRA_FWMARK = 10
FRA_FLOW = 11
FRA_TUN_ID = 12
FRA_SUPPRESS_IFGROUP = 13
FRA_SUPPRESS_PREFIXLEN = 14
FRA_TABLE = 15
FRA_FWMASK = 16
FRA_OIFNAME = 17
FRA_L3MDEV = 19
FRA_UID_RANGE = 20
FRA_PROTOCOL = 21
FRA_IP_PROTO = 22
FRA_SPORT_RANGE = 23
FRA_DPORT_RANGE = 24
FIB_RULE_INVERT = 0x2
RULE_ACTIONS = {1: "lookup", 2: "goto", 3: "nop", 6: "blackhole", 7: "unreachable", 8: "prohibit"}
"""FR_ACT_* by number, named as ``ip rule`` names them."""
NDA_DST = 1
NDA_LLADDR = 2

RTN_UNICAST = 1
RTN_BLACKHOLE = 6
RTN_UNREACHABLE = 7
RTN_PROHIBIT = 8
RTN_THROW = 9
RTM_F_CLONED = 0x200

RTNH_F_DEAD = 0x1
RTNH_F_ONLINK = 0x4
RTNH_F_LINKDOWN = 0x10
HOP_FLAGS = RTNH_F_DEAD | RTNH_F_ONLINK | RTNH_F_LINKDOWN
"""The next-hop flags that say whether and how a hop is used (rtnh_flags, rtm_flags)."""

NUD_STATES = {
    0x01: "incomplete",
    0x02: "reachable",
    0x04: "stale",
    0x08: "delay",
    0x10: "probe",
    0x20: "failed",
    0x40: "noarp",
    0x80: "permanent",
}
NUD_NOARP = 0x40

_HDR = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_NDMSG = struct.Struct("=BxxxiHBB")
_RTA = struct.Struct("=HH")
_RTNH = struct.Struct("=HBBi")
_U32 = struct.Struct("=I")

AF_INET = socket.AF_INET
AF_INET6 = socket.AF_INET6


@dataclass(frozen=True, slots=True)
class Link:
    """RTM_NEWLINK / RTM_DELLINK."""

    deleted: bool
    ifindex: int
    name: str
    mtu: int
    mac: str | None
    up: bool
    carrier: bool
    running: bool = False
    """IFF_RUNNING: the operational state the kernel's link watch settled on. Carrier
    (IFF_LOWER_UP) moves first; the kernel marks next hops ``linkdown`` only when this
    follows, up to a second later, so a change of it is a reason to look again."""


@dataclass(frozen=True, slots=True)
class Addr:
    """RTM_NEWADDR / RTM_DELADDR."""

    deleted: bool
    ifindex: int
    family: int
    ip: str
    prefixlen: int


NextHopT = tuple[str | None, int, int, int]
"""(gateway or None, ifindex, weight, flags: :data:`HOP_FLAGS` bits)."""


class Route(NamedTuple):
    """RTM_NEWROUTE / RTM_DELROUTE.

    A named tuple: a full-table dump makes a million of these, and a tuple is built
    several times faster than a frozen dataclass.
    """

    deleted: bool
    family: int
    table: int
    dst: str
    prefixlen: int
    tos: int
    proto: int
    type: int
    flags: int
    metric: int
    nexthops: tuple[NextHopT, ...]
    prefsrc: str | None = None
    nhid: int = 0
    """The kernel next-hop object the route uses (RTA_NH_ID); 0: none."""
    nlflags: int = 0
    """Of an RTM_NEWROUTE notification, its :data:`ROUTE_NLFLAGS` (0 in a dump)."""


class NhObject(NamedTuple):
    """RTM_NEWNEXTHOP / RTM_DELNEXTHOP: a kernel next-hop object (``ip nexthop``).

    A single hop (``gateway``/``ifindex``), a group (``group``: member ids and
    weights), or a blackhole. Weights are 1-256, as ``ip nexthop`` prints them.
    """

    deleted: bool
    id: int
    family: int
    gateway: str | None
    ifindex: int
    flags: int
    blackhole: bool
    fdb: bool
    group: tuple[tuple[int, int], ...]


class Rule(NamedTuple):
    """RTM_NEWRULE / RTM_DELRULE: a policy routing rule (``ip rule``).

    Selectors the rule does not use are None (or 0, for the plain numbers the kernel
    reports as 0 when unset). ``action`` is an ``FR_ACT_*`` number.
    """

    deleted: bool
    family: int
    priority: int
    action: int
    table: int
    goto: int | None
    src: str | None
    src_len: int
    dst: str | None
    dst_len: int
    tos: int
    fwmark: int
    fwmask: int
    iif: str | None
    oif: str | None
    invert: bool
    suppress_prefixlen: int | None
    suppress_ifgroup: int | None
    l3mdev: bool
    proto: int
    ip_proto: int | None
    sport: tuple[int, int] | None
    dport: tuple[int, int] | None
    uid: tuple[int, int] | None
    tun_id: int | None
    flow: int | None


class Neigh(NamedTuple):
    """RTM_NEWNEIGH / RTM_DELNEIGH."""

    deleted: bool
    ifindex: int
    family: int
    ip: str
    mac: str | None
    state: int


@dataclass(frozen=True, slots=True)
class Done:
    """NLMSG_DONE: the end of a dump.

    ``interrupted`` if the kernel flagged NLM_F_DUMP_INTR; ``error`` is the errno a
    failed dump reports in its DONE message (0 when it succeeded).
    """

    seq: int
    interrupted: bool
    error: int = 0


@dataclass(frozen=True, slots=True)
class Error:
    """NLMSG_ERROR; ``errno`` 0 is an acknowledgement."""

    seq: int
    errno: int


@dataclass(frozen=True, slots=True)
class Expiry:
    """The IPv6 route just decoded expires in ``seconds`` (``expires``, an address's
    ``valid_lft``). The kernel says nothing when it does: it stops forwarding by the
    route at once and deletes it at its next garbage collection, up to half a minute on."""

    seconds: float


Record = Link | Addr | Route | NhObject | Rule | Neigh | Expiry | Done | Error


def _attrs(buf: bytes, off: int, end: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    while off + 4 <= end:
        alen, atype = _RTA.unpack_from(buf, off)
        if alen < 4 or off + alen > end:
            break
        out[atype & 0x3FFF] = buf[off + 4 : off + alen]
        off += (alen + 3) & ~3
    return out


def _ip(family: int, raw: bytes) -> str:
    return socket.inet_ntop(family, raw)


def _mac(raw: bytes | None) -> str | None:
    if raw is None or len(raw) != 6:
        return None
    return raw.hex(":")


def _gateway(attrs: dict[int, bytes], family: int) -> str | None:
    gw = attrs.get(RTA_GATEWAY)
    if gw is not None:
        return _ip(family, gw)
    via = attrs.get(RTA_VIA)
    if via is not None and len(via) >= 2:
        vfam = struct.unpack_from("=H", via)[0]
        return _ip(vfam, via[2:])
    return None


def _multipath(raw: bytes, family: int) -> tuple[NextHopT, ...]:
    hops: list[NextHopT] = []
    off = 0
    while off + 8 <= len(raw):
        nlen, flags, weight, ifindex = _RTNH.unpack_from(raw, off)
        if nlen < 8:
            break
        nattrs = _attrs(raw, off + 8, off + nlen)
        hops.append((_gateway(nattrs, family), ifindex, weight + 1, flags & HOP_FLAGS))
        off += (nlen + 3) & ~3
    return tuple(hops)


_IFNAME_BIT = 1 << IFLA_IFNAME
_MTU_BIT = 1 << IFLA_MTU
_LINK_ATTRS = _IFNAME_BIT | _MTU_BIT | 1 << IFLA_ADDRESS


def _link(mtype: int, buf: bytes, off: int, end: int) -> Link | None:
    family, _type, index, flags, _change = _IFINFO.unpack_from(buf, off)
    if family == AF_BRIDGE:
        # The bridge's view of one of its ports: an RTM_DELLINK of this family says the
        # link stopped being a bridge port (`ip link set X nomaster`), not that it went.
        return None
    # A link message carries some forty attributes (statistics, queues, ...) and we
    # need three: slice only those and stop once all three are found (the kernel puts
    # them among the first thirty). A link change is on the latency path.
    name = b""
    mtu_raw: bytes | None = None
    mac_raw: bytes | None = None
    missing = _LINK_ATTRS
    off += _IFINFO.size
    unpack = _RTA.unpack_from
    while missing and off + 4 <= end:
        alen, atype = unpack(buf, off)
        if alen < 4 or off + alen > end:
            break
        bit = 1 << (atype & 0x3FFF)
        if bit & _LINK_ATTRS:
            value = buf[off + 4 : off + alen]
            if bit == _IFNAME_BIT:
                name = value
            elif bit == _MTU_BIT:
                mtu_raw = value
            else:
                mac_raw = value
            missing &= ~bit
        off += (alen + 3) & ~3
    return Link(
        deleted=mtype == RTM_DELLINK,
        ifindex=index,
        name=name.rstrip(b"\0").decode(errors="replace"),
        mtu=_U32.unpack(mtu_raw)[0] if mtu_raw and len(mtu_raw) == 4 else 0,
        mac=_mac(mac_raw),
        up=bool(flags & IFF_UP),
        carrier=bool(flags & IFF_LOWER_UP),
        running=bool(flags & IFF_RUNNING),
    )


def _addr(mtype: int, buf: bytes, off: int, end: int) -> Addr | None:
    family, plen, _flags, _scope, index = _IFADDR.unpack_from(buf, off)
    if family not in (AF_INET, AF_INET6):
        return None
    a = _attrs(buf, off + _IFADDR.size, end)
    raw = a.get(IFA_LOCAL) or a.get(IFA_ADDRESS)
    if raw is None:
        return None
    return Addr(mtype == RTM_DELADDR, index, family, _ip(family, raw), plen)


_I32 = struct.Struct("=i")
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_GATEWAYS: dict[tuple[int, bytes], str] = {}
"""Gateway text by raw address: a table has a million routes but few gateways."""


def _gateway_text(family: int, raw: bytes) -> str:
    key = (family, raw)
    text = _GATEWAYS.get(key)
    if text is None:
        text = socket.inet_ntop(family, raw)
        if len(_GATEWAYS) < 65536:
            _GATEWAYS[key] = text
    return text


# The kernel lays out an IPv4 route with a gateway always the same way: table, dst,
# [priority,] gateway, oif. One unpack reads such a message whole.
_ROUTE4 = struct.Struct("=BBBBBBBBIHHIHH4sHH4sHHi")
_ROUTE4_METRIC = struct.Struct("=BBBBBBBBIHHIHH4sHHIHH4sHHi")
_ROUTE4_ATTRS = (8, RTA_TABLE, 8, RTA_DST, 8, RTA_GATEWAY, 8, RTA_OIF)
_NLMSG_HDR = 16
_ROUTE4_MSG_SIZES = (_NLMSG_HDR + _ROUTE4.size, _NLMSG_HDR + _ROUTE4_METRIC.size)
"""Whole netlink messages of the two layouts (60 and 68 bytes)."""
# Where the gateway's bytes start in each layout: the attributes' 4-byte headers and
# 4-byte values in front of it, behind the 12-byte rtmsg (32 and 40 bytes).
_GATEWAY_AT = {
    _ROUTE4.size: struct.calcsize("=BBBBBBBBIHHIHH4sHH"),
    _ROUTE4_METRIC.size: struct.calcsize("=BBBBBBBBIHHIHH4sHHIHH"),
}
_HOPS4: dict[tuple[bytes, int], tuple[NextHopT, ...]] = {}
"""Next-hop tuples by the raw bytes of gateway and oif, and the hop's flags
(see :func:`_route4_fast`)."""
# The named tuple's own constructor is a Python-level function; this is what it calls.
_new_route: Callable[[type[Route], tuple[Any, ...]], Route] = tuple.__new__


def _route4_fast(mtype: int, buf: bytes, off: int, size: int, nlflags: int = 0) -> Route | None:
    if size == _ROUTE4.size:
        (family, dlen, _s, tos, _t, proto, _sc, rtype, flags,
         l1, t1, table, l2, t2, draw, l3, t3, graw, l4, t4, oif) = _ROUTE4.unpack_from(buf, off)  # fmt: skip  # noqa: E501
        metric = 0
    else:
        (family, dlen, _s, tos, _t, proto, _sc, rtype, flags, l1, t1, table, l2, t2, draw,
         lp, tp, metric, l3, t3, graw, l4, t4, oif) = _ROUTE4_METRIC.unpack_from(buf, off)  # fmt: skip  # noqa: E501
        if lp != 8 or tp != RTA_PRIORITY:
            return None
    attrs = (l1, t1, l2, t2, l3, t3, l4, t4)
    if family != AF_INET or attrs != _ROUTE4_ATTRS:
        return None
    # Gateway, oif header and oif are contiguous: their bytes and the hop's flags (a
    # proxy without carrier makes every route through it linkdown) name the next hop,
    # whose tuple is built once (a table has a million routes and a handful of hops).
    start = off + _GATEWAY_AT[size]
    key = (buf[start : start + 12], flags & HOP_FLAGS)
    hops = _HOPS4.get(key)
    if hops is None:
        hops = ((_gateway_text(AF_INET, graw), oif, 1, key[1]),)
        if len(_HOPS4) < 65536:
            _HOPS4[key] = hops
    return _new_route(Route, (
        mtype == RTM_DELROUTE, AF_INET, table, socket.inet_ntop(AF_INET, draw), dlen, tos,
        proto, rtype, flags, metric, hops, None, 0, nlflags,
    ))  # fmt: skip


def _route_any(  # noqa: C901
    mtype: int, buf: bytes, off: int, end: int, nlflags: int = 0, out: list[Record] | None = None
) -> Route | None:
    """Any route message; an expiring one adds an :class:`Expiry` to ``out``."""
    family, dlen, _slen, tos, table, proto, _scope, rtype, flags = _RTMSG.unpack_from(buf, off)
    if family != AF_INET and family != AF_INET6:
        return None
    dst = "0.0.0.0" if family == AF_INET else "::"
    metric = oif = nhid = expires = 0
    gw: str | None = None
    prefsrc: str | None = None
    via: bytes | None = None
    mp: bytes | None = None
    o = off + _RTMSG.size
    while o + 4 <= end:
        alen, atype = _RTA.unpack_from(buf, o)
        if alen < 4 or o + alen > end:
            break
        atype &= 0x3FFF
        if atype == RTA_DST:
            if alen > 4:
                dst = socket.inet_ntop(family, buf[o + 4 : o + alen])
        elif atype == RTA_GATEWAY:
            gw = _gateway_text(family, buf[o + 4 : o + alen])
        elif alen == 8 and atype == RTA_PRIORITY:
            metric = _U32.unpack_from(buf, o + 4)[0]
        elif alen == 8 and atype == RTA_OIF:
            oif = _I32.unpack_from(buf, o + 4)[0]
        elif alen == 8 and atype == RTA_TABLE:
            table = _U32.unpack_from(buf, o + 4)[0]
        elif atype == RTA_MULTIPATH:
            mp = buf[o + 4 : o + alen]
        elif atype == RTA_VIA:
            via = buf[o + 4 : o + alen]
        elif atype == RTA_PREFSRC:
            prefsrc = _gateway_text(family, buf[o + 4 : o + alen])
        elif alen == 8 and atype == RTA_NH_ID:
            nhid = _U32.unpack_from(buf, o + 4)[0]
        elif alen >= 16 and atype == RTA_CACHEINFO:
            expires = _I32.unpack_from(buf, o + 12)[0]  # rta_expires, in clock ticks
        o += (alen + 3) & ~3
    if expires:
        if expires < 0 and mtype == RTM_NEWROUTE:
            return None  # expired: the kernel no longer forwards by it
        if expires > 0 and out is not None:
            out.append(Expiry(expires / _CLK_TCK))
    if mp is not None:
        nexthops = _multipath(mp, family)
    else:
        if gw is None and via is not None and len(via) >= 2:
            gw = _ip(struct.unpack_from("=H", via)[0], via[2:])
        nexthops = ((gw, oif, 1, flags & HOP_FLAGS),) if (oif or gw) else ()
    return Route(
        mtype == RTM_DELROUTE, family, table, dst, dlen, tos, proto, rtype, flags, metric,
        nexthops, prefsrc, nhid, nlflags,
    )  # fmt: skip


def _neigh(mtype: int, buf: bytes, off: int, end: int) -> Neigh | None:
    family, index, state, _flags, _type = _NDMSG.unpack_from(buf, off)
    if family not in (AF_INET, AF_INET6):
        return None  # AF_BRIDGE fdb entries and the like
    a = _attrs(buf, off + _NDMSG.size, end)
    raw = a.get(NDA_DST)
    if raw is None:
        return None
    return Neigh(
        mtype == RTM_DELNEIGH, index, family, _ip(family, raw), _mac(a.get(NDA_LLADDR)), state
    )


_NHMSG = struct.Struct("=BBBxI")
_NH_GRP = struct.Struct("=IBxH")


def _nexthop(mtype: int, buf: bytes, off: int, end: int) -> NhObject | None:
    family, _scope, _proto, flags = _NHMSG.unpack_from(buf, off)
    a = _attrs(buf, off + _NHMSG.size, end)
    raw_id = a.get(NHA_ID)
    if raw_id is None or len(raw_id) != 4:
        return None
    group: list[tuple[int, int]] = []
    raw_group = a.get(NHA_GROUP, b"")
    for i in range(0, len(raw_group) - _NH_GRP.size + 1, _NH_GRP.size):
        member, weight, _resvd = _NH_GRP.unpack_from(raw_group, i)
        group.append((member, weight + 1))
    gw = a.get(NHA_GATEWAY)
    oif = a.get(NHA_OIF)
    return NhObject(
        deleted=mtype == RTM_DELNEXTHOP,
        id=_U32.unpack(raw_id)[0],
        family=family,
        gateway=_ip(family, gw) if gw is not None and family in (AF_INET, AF_INET6) else None,
        ifindex=_U32.unpack(oif)[0] if oif is not None and len(oif) == 4 else 0,
        flags=flags & HOP_FLAGS,
        blackhole=NHA_BLACKHOLE in a,
        fdb=NHA_FDB in a,
        group=tuple(group),
    )


_FIB_RULE_HDR = struct.Struct("=BBBBBBBBI")
_U32_UNSET = 0xFFFFFFFF


def _u32(raw: bytes | None) -> int | None:
    return _U32.unpack(raw)[0] if raw is not None and len(raw) == 4 else None


def _name(raw: bytes | None) -> str | None:
    return raw.rstrip(b"\0").decode(errors="replace") if raw is not None else None


def _range(raw: bytes | None, fmt: str) -> tuple[int, int] | None:
    if raw is None or len(raw) != struct.calcsize(fmt):
        return None
    lo, hi = struct.unpack(fmt, raw)
    return (lo, hi)


def _rule(mtype: int, buf: bytes, off: int, end: int) -> Rule | None:
    family, dlen, slen, tos, table, _r1, _r2, action, flags = _FIB_RULE_HDR.unpack_from(buf, off)
    if family not in (AF_INET, AF_INET6):
        return None
    a = _attrs(buf, off + _FIB_RULE_HDR.size, end)
    src, dst = a.get(FRA_SRC), a.get(FRA_DST)
    suppress_len, suppress_group = (
        _u32(a.get(FRA_SUPPRESS_PREFIXLEN)),
        _u32(a.get(FRA_SUPPRESS_IFGROUP)),
    )
    tun = a.get(FRA_TUN_ID)
    l3mdev, proto, ip_proto = a.get(FRA_L3MDEV), a.get(FRA_PROTOCOL), a.get(FRA_IP_PROTO)
    return Rule(
        deleted=mtype == RTM_DELRULE,
        family=family,
        priority=_u32(a.get(FRA_PRIORITY)) or 0,
        action=action,
        table=_u32(a.get(FRA_TABLE)) or table,
        goto=_u32(a.get(FRA_GOTO)),
        src=_ip(family, src) if src is not None else None,
        src_len=slen,
        dst=_ip(family, dst) if dst is not None else None,
        dst_len=dlen,
        tos=tos,
        fwmark=_u32(a.get(FRA_FWMARK)) or 0,
        fwmask=_u32(a.get(FRA_FWMASK)) or 0,
        iif=_name(a.get(FRA_IIFNAME)),
        oif=_name(a.get(FRA_OIFNAME)),
        invert=bool(flags & FIB_RULE_INVERT),
        suppress_prefixlen=None if suppress_len in (None, _U32_UNSET) else suppress_len,
        suppress_ifgroup=None if suppress_group in (None, _U32_UNSET) else suppress_group,
        l3mdev=bool(l3mdev and l3mdev[0]),
        proto=proto[0] if proto else 0,
        ip_proto=ip_proto[0] if ip_proto else None,
        sport=_range(a.get(FRA_SPORT_RANGE), "=HH"),
        dport=_range(a.get(FRA_DPORT_RANGE), "=HH"),
        uid=_range(a.get(FRA_UID_RANGE), "=II"),
        tun_id=struct.unpack(">Q", tun)[0] if tun is not None and len(tun) == 8 else None,
        flow=_u32(a.get(FRA_FLOW)),
    )


_DECODERS = {
    RTM_NEWLINK: (_link, _IFINFO.size),
    RTM_DELLINK: (_link, _IFINFO.size),
    RTM_NEWADDR: (_addr, _IFADDR.size),
    RTM_DELADDR: (_addr, _IFADDR.size),
    RTM_NEWNEIGH: (_neigh, _NDMSG.size),
    RTM_DELNEIGH: (_neigh, _NDMSG.size),
    RTM_NEWRULE: (_rule, _FIB_RULE_HDR.size),
    RTM_DELRULE: (_rule, _FIB_RULE_HDR.size),
    RTM_NEWNEXTHOP: (_nexthop, _NHMSG.size),
    RTM_DELNEXTHOP: (_nexthop, _NHMSG.size),
}


def decode(buf: bytes) -> list[Record]:
    """Decode every netlink message in one datagram; skip kinds we do not track."""
    out: list[Record] = []
    off = 0
    size = len(buf)
    while off + 16 <= size:
        mlen, mtype, mflags, seq, _pid = _HDR.unpack_from(buf, off)
        if mlen < 16 or off + mlen > size:
            break
        body = off + 16
        end = off + mlen
        if mtype in (RTM_NEWROUTE, RTM_DELROUTE):
            # The hottest messages (full-table dumps, BGP churn): the common IPv4 layout
            # in one unpack, anything else with its attributes read in one pass.
            # (The kernel sends RTM_DELROUTE without flags.)
            nlflags = mflags & ROUTE_NLFLAGS
            found = (
                _route4_fast(mtype, buf, body, mlen - 16, nlflags)
                if mlen in _ROUTE4_MSG_SIZES
                else None
            )
            if found is None and mlen - 16 >= _RTMSG.size:
                try:
                    found = _route_any(mtype, buf, body, end, nlflags, out)
                except (struct.error, ValueError):
                    found = None
            if found is not None:
                out.append(found)
            off += (mlen + 3) & ~3
            continue
        dec = _DECODERS.get(mtype)
        if dec is not None:
            try:
                rec = dec[0](mtype, buf, body, end) if end - body >= dec[1] else None
            except (struct.error, ValueError):
                rec = None  # malformed: the kernel never sends it, and we never trust it
            if rec is not None:
                out.append(rec)
        elif mtype == NLMSG_DONE:
            err = struct.unpack_from("=i", buf, body)[0] if end - body >= 4 else 0
            out.append(Done(seq, bool(mflags & NLM_F_DUMP_INTR), max(-err, 0)))
        elif mtype == NLMSG_ERROR:
            err = struct.unpack_from("=i", buf, body)[0] if end - body >= 4 else 0
            out.append(Error(seq, -err))
        off += (mlen + 3) & ~3
    return out
