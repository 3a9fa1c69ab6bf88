"""The struct decoder against pyroute2's parser, field by field: recorded and generated."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from nlref import reference, split_recording
from pyroute2.netlink.rtnl.fibmsg import fibmsg
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from ifpx.bridge import nlmsg

RECORDING = Path(__file__).parent / "data" / "rtnl-dump.bin"


def test_recorded_dump_matches_pyroute2() -> None:
    datagrams = split_recording(RECORDING.read_bytes())
    total = 0
    kinds: set[type] = set()
    for data in datagrams:
        ours = nlmsg.decode(data)
        assert ours == reference(data)
        total += len(ours)
        kinds.update(type(r) for r in ours)
    assert total >= 30
    assert {nlmsg.Link, nlmsg.Addr, nlmsg.Route, nlmsg.Neigh, nlmsg.Done} <= kinds
    routes = [r for d in datagrams for r in nlmsg.decode(d) if isinstance(r, nlmsg.Route)]
    ecmp = [r for r in routes if r.dst == "10.50.0.0"]
    # Taps without a reader have no carrier: the kernel marks their hops linkdown.
    assert ecmp and ecmp[0].nexthops == (("10.0.0.2", 2, 1, 16), ("10.1.0.2", 3, 3, 16))
    via6 = [r for r in routes if r.dst == "10.70.0.0"]
    assert via6 and via6[0].nexthops[0][0] == "2001:db8::5"


def _encode(msg: Any, mtype: int) -> bytes:
    msg["header"]["type"] = mtype
    msg.encode()
    return bytes(msg.data)


u32 = st.integers(0, 2**32 - 1)
macs = st.binary(min_size=6, max_size=6).map(lambda b: b.hex(":"))
names = st.text("abcdefghijklmnop0123456789", min_size=1, max_size=15)


_LINK_FILLERS: list[tuple[str, Any]] = [
    ("IFLA_BROADCAST", "ff:ff:ff:ff:ff:ff"),
    ("IFLA_TXQLEN", 1000),
    ("IFLA_GROUP", 0),
    ("IFLA_QDISC", "fq_codel"),
]


@settings(max_examples=300)
@given(
    st.sampled_from([nlmsg.RTM_NEWLINK, nlmsg.RTM_DELLINK]),
    st.integers(1, 2**31 - 1),
    names,
    u32,
    st.none() | macs,
    st.integers(0, 2**32 - 1),
    st.data(),
)
def test_links(
    mtype: int, index: int, name: str, mtu: int, mac: str | None, flags: int, data: Any
) -> None:
    # The decoder stops once it has name, MTU and MAC: any order, other attributes
    # around them, and no MAC at all (a tun) must read as pyroute2 reads them.
    m = ifinfmsg()
    m["index"] = index
    m["flags"] = flags
    attrs = [("IFLA_IFNAME", name), ("IFLA_MTU", mtu), *_LINK_FILLERS]
    if mac is not None:
        attrs.append(("IFLA_ADDRESS", mac))
    m["attrs"] = data.draw(st.permutations(attrs))
    raw = _encode(m, mtype)
    assert nlmsg.decode(raw) == reference(raw)


@settings(max_examples=50)
@given(st.sampled_from([nlmsg.RTM_NEWLINK, nlmsg.RTM_DELLINK]), st.integers(1, 2**31 - 1))
def test_a_bridge_ports_link_messages_are_not_the_links(mtype: int, index: int) -> None:
    # `ip link set X nomaster` says RTM_DELLINK of family AF_BRIDGE: X stays.
    m = ifinfmsg()
    m["family"] = socket.AF_BRIDGE
    m["index"] = index
    m["attrs"] = [("IFLA_IFNAME", "p0"), ("IFLA_MTU", 1500)]
    assert nlmsg.decode(_encode(m, mtype)) == []


@settings(max_examples=300)
@given(
    st.sampled_from([nlmsg.RTM_NEWADDR, nlmsg.RTM_DELADDR]),
    st.booleans(),
    st.integers(1, 2**31 - 1),
    st.ip_addresses(),
    st.integers(0, 128),
)
def test_addrs(mtype: int, local: bool, index: int, ip: Any, plen: int) -> None:
    m = ifaddrmsg()
    m["family"] = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    m["index"] = index
    m["prefixlen"] = plen
    m["attrs"] = [("IFA_LOCAL" if local else "IFA_ADDRESS", str(ip))]
    data = _encode(m, mtype)
    assert nlmsg.decode(data) == reference(data)


hop = st.tuples(
    st.none() | st.ip_addresses(v=4).map(str),
    st.integers(1, 1000),
    st.integers(0, 255),
    st.sampled_from([0, nlmsg.RTNH_F_DEAD | nlmsg.RTNH_F_LINKDOWN, nlmsg.RTNH_F_ONLINK, 0x8]),
)


@settings(max_examples=300)
@given(
    st.sampled_from([nlmsg.RTM_NEWROUTE, nlmsg.RTM_DELROUTE]),
    st.ip_addresses(v=4).map(str),
    st.integers(0, 32),
    st.integers(0, 255),
    u32,
    st.integers(0, 255),
    st.integers(0, 11),
    st.none() | u32,
    st.lists(hop, min_size=1, max_size=5),
    st.none() | st.ip_addresses(v=4).map(str),
)
def test_routes(
    mtype: int,
    dst: str,
    plen: int,
    table: int,
    big_table: int,
    proto: int,
    rtype: int,
    metric: int | None,
    hops: list[tuple[str | None, int, int, int]],
    prefsrc: str | None,
) -> None:
    m = rtmsg()
    m["family"] = socket.AF_INET
    m["dst_len"] = plen
    m["table"] = table
    m["proto"] = proto
    m["type"] = rtype
    attrs: list[tuple[str, Any]] = [("RTA_DST", dst), ("RTA_TABLE", big_table)]
    if metric is not None:
        attrs.append(("RTA_PRIORITY", metric))
    if prefsrc is not None:
        attrs.append(("RTA_PREFSRC", prefsrc))
    if len(hops) == 1:
        gw, oif, _w, flags = hops[0]
        m["flags"] = flags
        attrs.append(("RTA_OIF", oif))
        if gw:
            attrs.append(("RTA_GATEWAY", gw))
    else:
        attrs.append(
            (
                "RTA_MULTIPATH",
                [
                    {
                        "oif": oif,
                        "hops": w,
                        "flags": f,
                        "attrs": [("RTA_GATEWAY", gw)] if gw else [],
                    }
                    for gw, oif, w, f in hops
                ],
            )
        )
    m["attrs"] = attrs
    data = _encode(m, mtype)
    ours = nlmsg.decode(data)
    assert ours == reference(data)
    assert isinstance(ours[0], nlmsg.Route) and ours[0].table == big_table


@given(
    st.sampled_from([nlmsg.RTM_NEWROUTE, nlmsg.RTM_DELROUTE]),
    st.ip_addresses(v=4).map(str),
    st.integers(0, 32),
    u32,
    st.integers(0, 255),
    st.integers(0, 11),
    st.none() | u32,
    st.ip_addresses(v=4).map(str),
    st.integers(1, 2**31 - 1),
    # rtm_flags: the hop's own (linkdown through a proxy without carrier, dead,
    # onlink) and others the kernel sets (RTM_F_NOTIFY, RTM_F_CLONED, RTM_F_OFFLOAD)
    st.sampled_from([0, 0x10, 0x11, 0x4, 0x14, 0x100, 0x200, 0x4000, 0x110]),
)
def test_routes_in_the_kernels_layout_take_the_fast_path(
    mtype: int,
    dst: str,
    plen: int,
    table: int,
    proto: int,
    rtype: int,
    metric: int | None,
    gw: str,
    oif: int,
    rtm_flags: int,
) -> None:
    # table, dst, [priority,] gateway, oif: how the kernel sends IPv4 routes via a gateway.
    m = rtmsg()
    m["family"] = socket.AF_INET
    m["dst_len"] = plen
    m["table"] = table & 0xFF
    m["proto"] = proto
    m["type"] = rtype
    m["flags"] = rtm_flags
    attrs: list[tuple[str, Any]] = [("RTA_TABLE", table), ("RTA_DST", dst)]
    if metric is not None:
        attrs.append(("RTA_PRIORITY", metric))
    attrs += [("RTA_GATEWAY", gw), ("RTA_OIF", oif)]
    m["attrs"] = attrs
    data = _encode(m, mtype)
    fast = nlmsg._route4_fast(mtype, data, 16, len(data) - 16)
    assert fast is not None
    assert fast == nlmsg._route_any(mtype, data, 16, len(data))
    assert nlmsg.decode(data) == reference(data) == [fast]


@settings(max_examples=200)
@given(
    st.sampled_from([nlmsg.RTM_NEWNEIGH, nlmsg.RTM_DELNEIGH]),
    st.ip_addresses(),
    st.none() | macs,
    st.integers(0, 255),
)
def test_neighs(mtype: int, ip: Any, mac: str | None, state: int) -> None:
    m = ndmsg()
    m["family"] = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    m["ifindex"] = 5
    m["state"] = state
    m["attrs"] = [("NDA_DST", str(ip))] + ([("NDA_LLADDR", mac)] if mac else [])
    data = _encode(m, mtype)
    assert nlmsg.decode(data) == reference(data)


@settings(max_examples=1000)
@given(
    st.sampled_from([*sorted(nlmsg._DECODERS), nlmsg.NLMSG_DONE, nlmsg.NLMSG_ERROR]),
    st.binary(max_size=120),
)
def test_garbage_bodies_never_raise(mtype: int, body: bytes) -> None:
    # A well-formed header around arbitrary bytes: truncated headers, lying attribute lengths.
    data = (16 + len(body)).to_bytes(4, "little") + mtype.to_bytes(2, "little") + bytes(10) + body
    nlmsg.decode(data)


def test_several_messages_in_one_datagram() -> None:
    a = ifinfmsg()
    a["index"] = 3
    a["attrs"] = [("IFLA_IFNAME", "tap0"), ("IFLA_MTU", 1500)]
    b = ifaddrmsg()
    b["family"] = socket.AF_INET
    b["index"] = 3
    b["prefixlen"] = 24
    b["attrs"] = [("IFA_LOCAL", "192.0.2.1")]
    data = _encode(a, nlmsg.RTM_NEWLINK) + _encode(b, nlmsg.RTM_NEWADDR)
    recs = nlmsg.decode(data)
    assert [type(r) for r in recs] == [nlmsg.Link, nlmsg.Addr]
    assert recs == reference(data)


def test_a_failed_dump_reports_its_errno() -> None:
    # What the kernel answered to a route dump filtered on a missing interface (ENODEV).
    data = bytes.fromhex("140000000300020001000000fc580000edffffff")
    assert nlmsg.decode(data) == [nlmsg.Done(seq=1, interrupted=False, error=19)]
    assert reference(data) == nlmsg.decode(data)


@settings(max_examples=300)
@given(
    st.sampled_from([nlmsg.RTM_NEWRULE, nlmsg.RTM_DELRULE]),
    st.sampled_from([socket.AF_INET, socket.AF_INET6]),
    st.sampled_from(sorted(nlmsg.RULE_ACTIONS)),
    u32,
    st.integers(0, 255),
    st.booleans(),
    st.lists(
        st.sampled_from(
            [
                ("FRA_TABLE", 1000),
                ("FRA_GOTO", 500),
                ("FRA_FWMARK", 16),
                ("FRA_FWMASK", 255),
                ("FRA_IIFNAME", "v0"),
                ("FRA_OIFNAME", "v1"),
                ("FRA_SUPPRESS_PREFIXLEN", 0),
                ("FRA_SUPPRESS_PREFIXLEN", 0xFFFFFFFF),
                ("FRA_SUPPRESS_IFGROUP", 3),
                ("FRA_L3MDEV", 1),
                ("FRA_PROTOCOL", 186),
                ("FRA_IP_PROTO", 6),
                ("FRA_SPORT_RANGE", "100:200"),
                ("FRA_DPORT_RANGE", "80:80"),
                ("FRA_UID_RANGE", "10:20"),
                ("FRA_TUN_ID", 7),
                ("FRA_FLOW", 9),
            ]
        ),
        unique_by=lambda a: a[0],
        max_size=8,
    ),
)
def test_rules(
    mtype: int,
    family: int,
    action: int,
    priority: int,
    table: int,
    invert: bool,
    extra: list[tuple[str, Any]],
) -> None:
    m = fibmsg()
    m["family"] = family
    m["action"] = action
    m["table"] = table
    m["flags"] = nlmsg.FIB_RULE_INVERT if invert else 0
    six = family == socket.AF_INET6
    m["src_len"] = 32 if six else 8
    m["dst_len"] = 64 if six else 16
    m["attrs"] = [
        ("FRA_PRIORITY", priority),
        ("FRA_SRC", "2001:db8::" if six else "10.0.0.0"),
        ("FRA_DST", "2001:db8:1::" if six else "192.168.0.0"),
        *extra,
    ]
    data = _encode(m, mtype)
    ours = nlmsg.decode(data)
    assert ours == reference(data)
    assert isinstance(ours[0], nlmsg.Rule) and ours[0].priority == priority
