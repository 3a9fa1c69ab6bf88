"""Links no binding reaches: their churn must cost the bound ports nothing.

Thousands of veths coming up beside a bound port used to ask the kernel for three
re-dumps each (next-hop objects, and the link's IPv4 and IPv6 routes), and more for
each link-local route a link brings (a re-dump of every other link's), and the bound
port's events waited behind them. Now only a link that something published goes
through is asked about, many such at once in one dump of the whole family, and only a
replace asks about the other routes of its key.
"""

from __future__ import annotations

import pytest
from netutil import counters, wait_bridge_equals_kernel

from ifpx.bridge.testing.harness import BridgeProcess, Netns, wait_for
from ifpx.schemas import commands as c
from ifpx.subscribers import Subscriber

pytestmark = pytest.mark.netns

LINKS = 200


def test_unbound_links_coming_up_ask_for_few_redumps_and_bind_as_the_kernel_says(
    vns: Netns, vbr: BridgeProcess, sub: Subscriber
) -> None:
    vns.batch([f"route add 172.20.{i // 250}.{i % 250}/32 dev v0" for i in range(1000)])
    vns.batch([f"link add x{i} type veth peer name y{i}" for i in range(LINKS)])
    wait_bridge_equals_kernel(vbr)
    before = counters(vbr)["compensations"]
    vns.batch(
        [f"link set x{i} up" for i in range(LINKS)] + [f"link set y{i} up" for i in range(LINKS)]
    )
    # A change on the bound port after them: once it is out, the bridge has read theirs.
    vns.cmd("route add 172.31.255.0/24 dev v0")

    def marker() -> bool:
        sub.poll(max_events=100_000)
        return sub.state.lookup("172.31.255.1") is not None

    wait_for(marker, 30, interval=0.05, what="the bound port's route after the links")
    wait_bridge_equals_kernel(vbr)
    # Each link-local route (fe80::/64 on every link) is published merged with the bound
    # ports': those links are asked about, in a few whole dumps. Was 3 per link and more.
    assert counters(vbr)["compensations"] - before < LINKS // 10
    # Bound now: what the bridge publishes of it is the kernel's.
    assert isinstance(vbr.result(c.Bind(port_id=5, proxy="x0")), c.BindResult)
    wait_bridge_equals_kernel(vbr)
