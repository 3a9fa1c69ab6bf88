"""Netlink dump requests: the messages the bridge sends (pure; :mod:`.nlmsg` decodes
what comes back)."""

from __future__ import annotations

import struct

from .nlmsg import (
    _FIB_RULE_HDR,
    _HDR,
    _IFADDR,
    _IFINFO,
    _NDMSG,
    _NHMSG,
    _RTA,
    _RTMSG,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    RTA_OIF,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_GETNEIGH,
    RTM_GETNEXTHOP,
    RTM_GETROUTE,
    RTM_GETRULE,
)


def _request(mtype: int, flags: int, seq: int, body: bytes) -> bytes:
    return _HDR.pack(16 + len(body), mtype, flags, seq, 0) + body


def _attr(atype: int, payload: bytes) -> bytes:
    raw = _RTA.pack(4 + len(payload), atype) + payload
    return raw + b"\0" * (-len(raw) % 4)


def dump_links(seq: int) -> bytes:
    """RTM_GETLINK dump request."""
    return _request(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq, _IFINFO.pack(0, 0, 0, 0, 0))


def dump_addrs(seq: int) -> bytes:
    """RTM_GETADDR dump request (both families)."""
    return _request(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq, _IFADDR.pack(0, 0, 0, 0, 0))


def dump_routes(seq: int, family: int, oif: int = 0) -> bytes:
    """RTM_GETROUTE dump request; with ``oif`` (and a strict-check socket) only routes via it."""
    body = _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    if oif:
        body += _attr(RTA_OIF, struct.pack("=i", oif))
    return _request(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq, body)


def dump_nexthops(seq: int) -> bytes:
    """RTM_GETNEXTHOP dump request (every kernel next-hop object)."""
    return _request(RTM_GETNEXTHOP, NLM_F_REQUEST | NLM_F_DUMP, seq, _NHMSG.pack(0, 0, 0, 0))


def dump_rules(seq: int, family: int) -> bytes:
    """RTM_GETRULE dump request (one family: the kernel dumps rules per family)."""
    body = _FIB_RULE_HDR.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    return _request(RTM_GETRULE, NLM_F_REQUEST | NLM_F_DUMP, seq, body)


def dump_neighs(seq: int) -> bytes:
    """RTM_GETNEIGH dump request."""
    return _request(RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, seq, _NDMSG.pack(0, 0, 0, 0, 0))
