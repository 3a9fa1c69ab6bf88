"""One sample of every event, command and result: the golden files are made from these."""

from __future__ import annotations

from ifpx.schemas import codec
from ifpx.schemas import commands as c
from ifpx.schemas import events as ev
from ifpx.schemas.envelope import Message
from ifpx.schemas.events import EventBase, WireModel
from ifpx.schemas.state import (
    Binding,
    NeighState,
    PortState,
    RouteState,
    RuleState,
    SnapshotState,
    State,
)

P = {"port_id": 3, "proxy": "dtap0", "ifindex": 7}
HOPS = [
    ev.NextHop(gateway="192.0.2.2", ifindex=7, port_id=3, weight=1),
    ev.NextHop(gateway="198.51.100.2", ifindex=8, port_id=None, weight=2, flags=("linkdown",)),
]
HOPS6 = [ev.NextHop(gateway="2001:db8::2", ifindex=7, port_id=3)]

EVENTS: dict[str, EventBase] = {
    "mac_change": ev.MacChange(mac="02:00:00:00:00:10", **P),
    "mtu_change": ev.MtuChange(mtu=1400, **P),
    "link_change": ev.LinkChange(up=True, carrier=False, **P),
    "addr_add": ev.AddrAdd(ip="192.0.2.1", prefixlen=24, **P),
    "addr_del": ev.AddrDel(ip="192.0.2.1", prefixlen=24, **P),
    "addr6_add": ev.Addr6Add(ip="2001:db8::1", prefixlen=64, **P),
    "addr6_del": ev.Addr6Del(ip="2001:db8::1", prefixlen=64, **P),
    "route_add": ev.RouteAdd(
        dst="10.50.0.0", prefixlen=16, proto=4, metric=10, nexthops=HOPS, prefsrc="192.0.2.1"
    ),
    "route_del": ev.RouteDel(dst="10.50.0.0", prefixlen=16, proto=4, metric=10, nexthops=HOPS),
    "route6_add": ev.Route6Add(dst="2001:db8:99::", prefixlen=48, metric=1024, nexthops=HOPS6),
    "route6_del": ev.Route6Del(dst="2001:db8:99::", prefixlen=48, metric=1024, type="blackhole"),
    "nhgroup_set": ev.NhGroupSet(group=5, nexthops=HOPS),
    "nhgroup_del": ev.NhGroupDel(group=5),
    "groute_add": ev.GRouteAdd(
        dst="10.50.0.0", prefixlen=16, proto=4, metric=10, group=5, prefsrc="192.0.2.1"
    ),
    "groute_del": ev.GRouteDel(dst="10.50.0.0", prefixlen=16, proto=4, metric=10, group=5),
    "groute6_add": ev.GRoute6Add(dst="2001:db8:66::", prefixlen=48, group=6),
    "groute6_del": ev.GRoute6Del(
        dst="2001:db8:99::", prefixlen=48, metric=1024, group=0, type="blackhole"
    ),
    "rule_add": ev.RuleAdd(
        priority=100, table=100, src="10.0.0.0", src_len=8, iif="dtap0", fwmark=16, fwmask=255
    ),
    "rule_del": ev.RuleDel(priority=200, action="prohibit", ip_proto=6, dport=(80, 80)),
    "rule6_add": ev.Rule6Add(priority=300, action="goto", goto=400, dst="2001:db8::", dst_len=32),
    "rule6_del": ev.Rule6Del(priority=32766, table=254, proto=2),
    "neigh_add": ev.NeighAdd(ip="192.0.2.2", mac="02:00:00:00:00:02", state="permanent", **P),
    "neigh_del": ev.NeighDel(ip="192.0.2.2", mac="02:00:00:00:00:02", **P),
    "neigh6_add": ev.Neigh6Add(ip="2001:db8::2", mac="02:00:00:00:00:03", state="stale", **P),
    "neigh6_del": ev.Neigh6Del(ip="2001:db8::2", **P),
    "cfg_done": ev.CfgDone(),
    "port_bound": ev.PortBound(**P),
    "port_unbound": ev.PortUnbound(**P),
    "proxy_gone": ev.ProxyGone(**P),
    "proxy_renamed": ev.ProxyRenamed(old_name="tap9", **P),
    "proxy_back": ev.ProxyBack(old_ifindex=5, **P),
    "resync_begin": ev.ResyncBegin(reason="netlink overrun"),
    "resync_end": ev.ResyncEnd(reason="netlink overrun", changes=12),
    "heartbeat": ev.Heartbeat(topic_seqs={"link": 4, "route": 9}, interval=1.0),
}

MESSAGE = Message(
    epoch=1795534145962322791,
    seq=42,
    tseq=9,
    ts=1795534146.25,
    topic="route",
    events=[EVENTS["route_add"], EVENTS["route6_add"]],
)

STATE = State(
    bindings=[
        Binding(port_id=3, proxy="dtap0", ifindex=7),
        Binding(port_id=4, proxy="dtap9", ifindex=None, state="gone"),
    ],
    ports=[
        PortState(
            port_id=3,
            proxy="dtap0",
            ifindex=7,
            mac="02:00:00:00:00:10",
            mtu=1500,
            up=True,
            addrs=["192.0.2.1/24", "2001:db8::1/64"],
        )
    ],
    routes=[
        RouteState(family=4, dst="10.50.0.0/16", proto=4, nexthops=HOPS, prefsrc="192.0.2.1"),
        RouteState(family=6, dst="2001:db8:66::/48", proto=3, metric=1024, type="unreachable"),
    ],
    neighs=[NeighState(port_id=3, ip="192.0.2.2", mac="02:00:00:00:00:02", state="permanent")],
    rules=[
        RuleState(family=4, priority=100, table=100, src="10.0.0.0", src_len=8, iif="dtap0"),
        RuleState(family=6, priority=32766, table=254, proto=2),
    ],
)

COMMANDS: dict[str, WireModel] = {
    "hello": c.Hello(id=1, client="ifpx-ctl", versions=[1]),
    "bind": c.Bind(id=2, port_id=3, proxy="dtap0"),
    "unbind": c.Unbind(id=3, port_id=3, proxy=None),
    "create_proxy": c.CreateProxy(id=4, name="dtap0", mac="02:00:00:00:00:10", mtu=1500),
    "destroy_proxy": c.DestroyProxy(id=5, name="dtap0"),
    "list_bindings": c.ListBindings(id=6),
    "proxy_of_port": c.ProxyOfPort(id=7, port_id=3),
    "ports_of_proxy": c.PortsOfProxy(id=8, proxy=7),
    "proxy_info": c.ProxyInfo(id=9, proxy="dtap0"),
    "events_available": c.EventsAvailable(id=10),
    "snapshot": c.Snapshot(id=11),
    "status": c.Status(id=12),
    "replay": c.Replay(id=13, epoch=1795534145962322791, from_seq=40, topics=["route", "link"]),
    "report": c.Report(
        id=14,
        worker="lcore-3",
        instance=7390155417251397537,
        host="dp1",
        pid=4711,
        client="libifpx/1.2.0",
        epoch=1795534145962322791,
        seq=40,
        synced=True,
        topics=["route", "port", "sync", "hb"],
        interval=1.0,
        counters={"gaps": 1, "callback_errors": 0},
    ),
    "list_workers": c.ListWorkers(id=15),
    "wait_applied": c.WaitApplied(id=16, seq=40, epoch=1795534145962322791, workers=["lcore-3"]),
}

WORKER = c.WorkerInfo(
    name="lcore-3",
    state="lagging",
    host="dp1",
    pid=4711,
    client="libifpx/1.2.0",
    epoch=1795534145962322791,
    applied_seq=38,
    lag_seq=2,
    lag_seconds=1.25,
    last_report=0.5,
    reporting_for=60.0,
    topics=["hb", "port", "route", "sync"],
    counters={"gaps": 1},
)

B = Binding(port_id=3, proxy="dtap0", ifindex=7)
RESULTS: dict[str, WireModel] = {
    "hello": c.HelloResult(version=1, epoch=1, server="ifpx-bridge/0.1", capabilities=["journal"]),
    "bind": c.BindResult(binding=B, changed=True),
    "unbind": c.UnbindResult(removed=[B]),
    "create_proxy": c.CreateProxyResult(name="dtap0", ifindex=7, created=True),
    "destroy_proxy": c.DestroyProxyResult(name="dtap0", removed_bindings=[B]),
    "list_bindings": c.ListBindingsResult(bindings=[B]),
    "proxy_of_port": c.ProxyOfPortResult(binding=B),
    "ports_of_proxy": c.PortsOfProxyResult(proxy="dtap0", ifindex=7, port_ids=[3, 4]),
    "proxy_info": c.ProxyInfoResult(name="dtap0", ifindex=7, mtu=1500, addrs=["192.0.2.1/24"]),
    "events_available": c.EventsAvailableResult(kinds=["mtu_change", "cfg_done"]),
    "snapshot": c.SnapshotResult(
        epoch=1,
        seq=42,
        topic_seqs={"route": 9},
        cfg_done=True,
        state=SnapshotState.from_state(STATE),
    ),
    "status": c.StatusResult(epoch=1, seq=42, uptime=3.5, bindings=1, counters={"events": 7}),
    "replay": c.ReplayResult(
        epoch=1795534145962322791, messages=[codec.encode_message(MESSAGE)[1]]
    ),
    "report": c.ReportResult(epoch=1795534145962322791, seq=42),
    "list_workers": c.ListWorkersResult(epoch=1795534145962322791, seq=42, workers=[WORKER]),
    "wait_applied": c.WaitAppliedResult(
        done=False, epoch=1795534145962322791, seq=40, workers=["lcore-3"], waiting=[WORKER]
    ),
}

REPLIES: dict[str, WireModel] = {
    "ok": c.OkReply(id=2, result=RESULTS["bind"]),
    "error": c.ErrorReply(
        id=2, error=c.ErrorInfo(code=c.ErrorCode.NO_SUCH_PROXY, message="no interface 'x'")
    ),
}


def all_samples() -> dict[str, WireModel]:
    """Every sample, keyed by its golden file's stem."""
    out: dict[str, WireModel] = {}
    out.update({f"event.{k}": v for k, v in EVENTS.items()})
    out.update({f"command.{k}": v for k, v in COMMANDS.items()})
    out.update({f"result.{k}": v for k, v in RESULTS.items()})
    out.update({f"reply.{k}": v for k, v in REPLIES.items()})
    out["envelope.message"] = MESSAGE
    out["state"] = STATE
    return out
