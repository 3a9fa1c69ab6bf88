"""``ifpx watch``'s one-line rendering of events, in the words ``ip route`` uses."""

from __future__ import annotations

from ifpx.schemas import events as ev
from ifpx.subscribers.fmt import describe


def test_routes_read_like_ip_route() -> None:
    hops = [
        ev.NextHop(gateway="10.1.0.2", ifindex=2, port_id=0),
        ev.NextHop(gateway="10.2.0.2", ifindex=3, port_id=1, flags=("dead", "linkdown")),
    ]
    ecmp = ev.RouteAdd(dst="172.16.4.0", prefixlen=24, proto=4, nexthops=hops, prefsrc="10.1.0.1")
    assert describe(ecmp) == (
        "route add 172.16.4.0/24 via 10.1.0.2 port 0 weight 1, via 10.2.0.2 port 1 weight 1"
        " dead linkdown proto 4 src 10.1.0.1"
    )
    drop = ev.Route6Del(dst="2001:db8:6::", prefixlen=48, table=100, metric=1024, type="prohibit")
    assert describe(drop) == "route del prohibit 2001:db8:6::/48 table 100 proto 0 metric 1024"
