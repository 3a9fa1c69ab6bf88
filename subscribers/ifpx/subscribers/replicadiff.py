"""The events between two replicas (pure): what takes a replica to a snapshot.

After a snapshot repair a worker is told the difference, not the whole state: these
are the events that, applied to the old replica, make it equal the new one; from an
empty replica they are the initial events (routes produced as they are consumed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import chain
from typing import Any, TypeVar

from ifpx.schemas import events as ev
from ifpx.schemas.state import RuleState, SnapshotState, State

from .replica import RULE_FIELDS, GRouteVal, Hop, Port, Replica, RouteKey, RouteVal, hop_model


def diff(old: Replica, new: State | SnapshotState) -> list[ev.EventBase]:
    """Events that take a replica holding ``old`` to ``new`` (used after a snapshot repair)."""
    target = Replica(old.form)
    target.load(new)
    return diff_replicas(old, target)


def initial_events(target: Replica) -> Iterator[ev.EventBase]:
    """The events that build ``target`` from nothing, produced as they are consumed.

    What it iterates is copied first, so later changes to ``target`` do not disturb it.
    """
    head = diff_replicas(Replica(target.form), target, routes=False)
    head += [_group_event(gid, hops) for gid, hops in sorted(target.groups.items())]
    routes = list(target.routes.items())
    groutes = list(target.groutes.items())
    return chain(
        head,
        (_route_event(k, v, deleted=False) for k, v in routes),
        (_groute_event(k, v, deleted=False) for k, v in groutes),
    )


def diff_replicas(old: Replica, target: Replica, routes: bool = True) -> list[ev.EventBase]:
    """Events that take ``old`` to ``target``; applying them to ``old`` makes the two equal."""
    out = _binding_changes(old, target)
    out += _neigh_changes(old, target)
    out += _rule_changes(old, target)
    if routes:
        out += _route_changes(old, target)
    return out


def _binding_changes(old: Replica, target: Replica) -> list[ev.EventBase]:
    """Bindings gone, then each port of ``target`` as ``old`` must come to hold it."""
    out: list[ev.EventBase] = []
    for pid, b in sorted(old.bindings.items()):
        nb = target.bindings.get(pid)
        if nb is None:
            out.append(ev.PortUnbound(port_id=pid, proxy=b.proxy, ifindex=b.ifindex or 0))
        elif nb.state == "gone" and (b.state != "gone" or b.proxy != nb.proxy):
            # The name the binding waits for now, which may not be the one it had.
            out.append(ev.ProxyGone(port_id=pid, proxy=nb.proxy, ifindex=b.ifindex or 0))
    for pid, nb in sorted(target.bindings.items()):
        ob = old.bindings.get(pid)
        if nb.state == "gone":
            if ob is None:
                out.append(ev.ProxyGone(port_id=pid, proxy=nb.proxy, ifindex=0))
            continue
        out += _port_changes(old.ports.get(pid) if ob is not None else None, target.ports[pid])
    return out


def _port_changes(op: Port | None, np_: Port) -> list[ev.EventBase]:
    """What takes a bound port ``op`` (None: not bound) to ``np_``."""
    out: list[ev.EventBase] = []
    pid = np_.port_id
    fresh = op is None or op.ifindex != np_.ifindex
    if fresh or op is None:
        out.append(ev.PortBound(port_id=pid, proxy=np_.proxy, ifindex=np_.ifindex))
        op = Port(pid, np_.proxy, np_.ifindex)
    elif op.proxy != np_.proxy:
        out.append(
            ev.ProxyRenamed(port_id=pid, proxy=np_.proxy, ifindex=np_.ifindex, old_name=op.proxy)
        )
    common: dict[str, Any] = {"port_id": pid, "proxy": np_.proxy, "ifindex": np_.ifindex}
    # A freshly bound port gets its whole link configuration, as a bind replay does.
    if np_.mac is not None and (fresh or np_.mac != op.mac):
        out.append(ev.MacChange(mac=np_.mac, **common))
    if fresh or np_.mtu != op.mtu:
        out.append(ev.MtuChange(mtu=np_.mtu, **common))
    if fresh or (np_.up, np_.carrier) != (op.up, op.carrier):
        out.append(ev.LinkChange(up=np_.up, carrier=np_.carrier, **common))
    for a in sorted(op.addrs - np_.addrs):
        ip, plen = a.rsplit("/", 1)
        cls = ev.AddrDel if ":" not in ip else ev.Addr6Del
        out.append(cls(ip=ip, prefixlen=int(plen), **common))
    for a in sorted(np_.addrs - op.addrs):
        ip, plen = a.rsplit("/", 1)
        acls = ev.AddrAdd if ":" not in ip else ev.Addr6Add
        out.append(acls(ip=ip, prefixlen=int(plen), **common))
    return out


def _neigh_changes(old: Replica, target: Replica) -> list[ev.EventBase]:
    """Neighbours gone from ports still bound, then those new or changed."""
    out: list[ev.EventBase] = []
    # A port bound afresh (new, back, or on another interface) lost its neighbours with
    # port_bound, so they are all announced again.
    rebound = {
        pid
        for pid, p in target.ports.items()
        if pid not in old.ports or old.ports[pid].ifindex != p.ifindex
    }
    for (pid, ip), (mac, _st) in sorted(old.neighs.items()):
        if (pid, ip) not in target.neighs and pid in target.ports and pid not in rebound:
            p = target.ports[pid]
            dcls = ev.NeighDel if ":" not in ip else ev.Neigh6Del
            out.append(dcls(port_id=pid, proxy=p.proxy, ifindex=p.ifindex, ip=ip, mac=mac))
    for (pid, ip), val in sorted(target.neighs.items(), key=lambda kv: kv[0]):
        if old.neighs.get((pid, ip)) != val or pid in rebound:
            p = target.ports[pid]
            ncls = ev.NeighAdd if ":" not in ip else ev.Neigh6Add
            out.append(
                ncls(port_id=pid, proxy=p.proxy, ifindex=p.ifindex, ip=ip, mac=val[0], state=val[1])
            )
    return out


def _rule_changes(old: Replica, target: Replica) -> list[ev.EventBase]:
    """Rules gone, then rules new."""
    out = [_rule_event(r, True) for r in sorted(old.rules - target.rules, key=RuleState.sort_key)]
    out += [_rule_event(r, False) for r in sorted(target.rules - old.rules, key=RuleState.sort_key)]
    return out


def _route_changes(old: Replica, target: Replica) -> list[ev.EventBase]:
    """The flat form's routes; the group form's groups, routes, and groups unused."""
    out = list(_table_changes(old.routes, target.routes, _route_event))
    # The group form: groups first (a route never names a group its holder lacks),
    # then routes, then the groups no route needs any more.
    for gid, hops in sorted(target.groups.items()):
        if old.groups.get(gid) != hops:
            out.append(_group_event(gid, hops))
    out.extend(_table_changes(old.groutes, target.groutes, _groute_event))
    for gid in sorted(old.groups.keys() - target.groups.keys()):
        out.append(ev.NhGroupDel.model_construct(group=gid))
    return out


def _rule_event(rule: RuleState, deleted: bool) -> ev.EventBase:
    cls: type[ev.RuleAdd | ev.RuleDel | ev.Rule6Add | ev.Rule6Del]
    if rule.family == 4:
        cls = ev.RuleDel if deleted else ev.RuleAdd
    else:
        cls = ev.Rule6Del if deleted else ev.Rule6Add
    fields = {name: getattr(rule, name) for name in RULE_FIELDS}
    return cls.model_construct(**fields, src=rule.src, dst=rule.dst)


_V = TypeVar("_V")


def _table_changes(
    old: dict[RouteKey, _V],
    new: dict[RouteKey, _V],
    event: Callable[[RouteKey, _V, bool], ev.EventBase],
) -> Iterator[ev.EventBase]:
    """A route table's deletions, then its additions and changes, as ``event`` makes them."""
    for key, val in old.items():
        if key not in new:
            yield event(key, val, True)
    for key, val in new.items():
        if old.get(key) != val:
            yield event(key, val, False)


def _route_event(key: RouteKey, val: RouteVal, deleted: bool) -> ev.EventBase:
    proto, hops, rtype, prefsrc = val
    nexthops = [hop_model(h) for h in hops]
    return _route_model(key, deleted, False, proto, rtype, prefsrc, nexthops=nexthops)


def _route_model(
    key: RouteKey,
    deleted: bool,
    grouped: bool,
    proto: int,
    rtype: ev.RouteType,
    prefsrc: str | None,
    **hops: Any,
) -> ev.EventBase:
    """A route event of either form; ``hops`` is its ``nexthops`` or its ``group``."""
    fam, table, dst, plen, metric = key
    return ev.route_event_type(fam == 6, deleted, grouped).model_construct(
        dst=dst,
        prefixlen=plen,
        table=table,
        proto=proto,
        metric=metric,
        type=rtype,
        prefsrc=prefsrc,
        **hops,
    )


def _group_event(gid: int, hops: tuple[Hop, ...]) -> ev.EventBase:
    return ev.NhGroupSet.model_construct(group=gid, nexthops=[hop_model(h) for h in hops])


def _groute_event(key: RouteKey, val: GRouteVal, deleted: bool) -> ev.EventBase:
    proto, gid, rtype, prefsrc = val
    return _route_model(key, deleted, True, proto, rtype, prefsrc, group=gid)
