"""``ifpx watch``'s one-line rendering of events, in the words ``ip route`` uses."""

from __future__ import annotations

from ifpx.schemas import events as ev
from ifpx.subscribers import names
from ifpx.subscribers.fmt import addr_label, describe, rule_text


def test_routes_read_like_ip_route() -> None:
    hops = [
        ev.NextHop(gateway="10.1.0.2", ifindex=2, port_id=0),
        ev.NextHop(gateway="10.2.0.2", ifindex=3, port_id=1, flags=("dead", "linkdown")),
    ]
    ecmp = ev.RouteAdd(dst="172.16.4.0", prefixlen=24, proto=4, nexthops=hops, prefsrc="10.1.0.1")
    assert describe(ecmp) == (
        "route add 172.16.4.0/24 via 10.1.0.2 port 0 weight 1, via 10.2.0.2 port 1 weight 1"
        " dead linkdown proto static src 10.1.0.1"
    )
    drop = ev.Route6Del(dst="2001:db8:6::", prefixlen=48, table=100, metric=1024, type="prohibit")
    assert describe(drop) == "route del prohibit 2001:db8:6::/48 table 100 proto unspec metric 1024"
    frr = ev.RouteAdd(dst="10.0.0.0", prefixlen=8, table=253, proto=196, type="blackhole")
    assert describe(frr) == "route add blackhole 10.0.0.0/8 table default proto static"
    group = ev.NhGroupSet(group=7, nexthops=hops)
    assert describe(group) == (
        "nhgroup 7 via 10.1.0.2 port 0 weight 1, via 10.2.0.2 port 1 weight 1 dead linkdown"
    )
    by_group = ev.GRouteAdd(dst="172.16.4.0", prefixlen=24, proto=4, group=7)
    assert describe(by_group) == "route add 172.16.4.0/24 nhgroup 7 proto static"
    assert describe(ev.NhGroupDel(group=7)) == "nhgroup del 7"


def test_links_addresses_and_rules_read_like_ip() -> None:
    up = ev.LinkChange(port_id=0, proxy="tap0", ifindex=2, up=True, carrier=False)
    assert describe(up).endswith("link NO-CARRIER")
    assert addr_label("2001:db8::1/64") == "inet6" and addr_label("10.0.0.1/8") == "inet"
    rule = ev.Rule6Add(priority=100, invert=True, src="2001:db8::", src_len=32, table=254)
    assert rule_text(rule) == "100: not from 2001:db8::/32 lookup main"
    # A rule from all to all reads the same in both families: `ip -6 rule`'s flag tells.
    every6, every4 = ev.Rule6Add(priority=5, table=100), ev.RuleAdd(priority=5, table=100)
    assert describe(every6) == "-6 rule add 5: from all lookup 100"
    assert describe(every4) == "rule add 5: from all lookup 100"
    assert names.proto(186) == "bgp" and names.proto(250) == "250" and names.table(7) == "7"
