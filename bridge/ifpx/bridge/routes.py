"""The route seam of the bridge's core: the kernel's routes interned, merged and viewed (pure).

A full table is a million routes over a handful of next-hop sets, so next-hop
tuples and (proto, next hops) values are interned and shared; routes the kernel
keeps apart per interface under one public key (each port's fe80::/64) are
published merged; what a route looks like on the wire depends on the bindings
(which next hops lead to a bound port), and those views are cached per interned
next-hop set and bindings generation. :class:`~ifpx.bridge.core.BridgeCore`
builds on :class:`RouteMirror`, which holds all of this.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Iterator
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ifpx.schemas import events as ev

from . import nlmsg
from .bindings import BindingTable
from .nhobjects import NhTable

_M = TypeVar("_M", bound=ev.WireModel)

AF4 = socket.AF_INET
AF6 = socket.AF_INET6

PublicKey = tuple[int, int, str, int, int, int]
"""(family, table, dst, prefixlen, tos, metric): what identifies a published route."""
RouteKey = PublicKey | tuple[int, int, str, int, int, int, int]
"""A kernel route: its public key, plus the interface for a route with one next hop and
no gateway. The kernel keeps such routes apart per interface under one public key (each
port's fe80::/64, one subnet on two links); they are published merged, as one route."""
_NO_KEYS: frozenset[RouteKey] = frozenset()
RouteVal = tuple[int, tuple[nlmsg.NextHopT, ...], int, str | None, int]
"""(proto, next hops, type, prefsrc, next-hop object id or 0): shared by every route
with the same values (interned). ``type`` is an ``RTN_*`` of :data:`TYPE_NAMES`;
routes of any other type than unicast have no next hops."""
_MAX_HOP_MODELS = 4096
"""Next-hop views and model lists kept for reuse (more distinct ones than this: start over)."""

NhView = tuple[tuple[str | None, int, int | None, int, int], ...]
"""Published next hops: (gateway, ifindex, port_id, weight, flags)."""
_LIVENESS = nlmsg.RTNH_F_DEAD | nlmsg.RTNH_F_LINKDOWN
_UNICAST = nlmsg.RTN_UNICAST
_CLONED = nlmsg.RTM_F_CLONED


@dataclass(frozen=True, slots=True)
class Redump:
    """A re-dump the core needs: routes of ``family``, through ``oif`` only if non-zero;
    or, with ``kind`` ``nexthop``, every next-hop object."""

    family: int
    oif: int = 0
    kind: str = "route"


NEXTHOP_REDUMP = Redump(0, 0, "nexthop")


@dataclass
class Counters:
    """Counters the daemon reports in ``status``."""

    records: int = 0
    events: int = 0
    compensations: int = 0
    resyncs: int = 0


def _keys(rec: nlmsg.Route, hops: tuple[nlmsg.NextHopT, ...]) -> tuple[PublicKey, RouteKey]:
    """A kernel route's public key and its key in the mirror (see :data:`RouteKey`).

    ``hops`` are the route's resolved next hops. Routes through next-hop objects and
    routes of the drop types are never kept per interface.
    """
    pkey: PublicKey = (rec.family, rec.table, rec.dst, rec.prefixlen, rec.tos, rec.metric)
    if len(hops) == 1 and hops[0][0] is None and not rec.nhid:
        return pkey, (*pkey, hops[0][1])
    return pkey, pkey


_FLAG_NAMES: tuple[tuple[int, ev.HopFlag], ...] = (
    (nlmsg.RTNH_F_DEAD, "dead"),
    (nlmsg.RTNH_F_LINKDOWN, "linkdown"),
    (nlmsg.RTNH_F_ONLINK, "onlink"),
)
TYPE_NAMES: dict[int, ev.RouteType] = {
    nlmsg.RTN_UNICAST: "unicast",
    nlmsg.RTN_BLACKHOLE: "blackhole",
    nlmsg.RTN_UNREACHABLE: "unreachable",
    nlmsg.RTN_PROHIBIT: "prohibit",
    nlmsg.RTN_THROW: "throw",
}
"""The route types a forwarder acts on, with their names on the wire (local, broadcast,
multicast... are the host's, and not published)."""


def hop_flag_names(flags: int) -> tuple[ev.HopFlag, ...]:
    """The wire's names for a next hop's :data:`nlmsg.HOP_FLAGS` bits, in a fixed order."""
    if not flags:
        return ()
    return tuple(name for bit, name in _FLAG_NAMES if flags & bit)


class Build(Protocol):
    """How the core builds event models: validated, or trusted (our own decoder's values)."""

    def __call__(self, cls: type[_M], /, **fields: Any) -> _M:
        """An instance of ``cls`` with ``fields``."""


def validated(cls: type[_M], /, **fields: Any) -> _M:
    """``cls(**fields)``, checked by pydantic (the core's ``validate=True`` path)."""
    return cls(**fields)


class RouteMirror:
    """The routes of the kernel mirror and their published views (the base of the core)."""

    bindings: BindingTable
    all_routes: bool
    counters: Counters
    redumps: set[Redump]
    _ev: Build
    apply: Callable[[nlmsg.Record], list[ev.EventBase]]

    def __init__(self) -> None:
        self._quiet = False
        self.routes: dict[RouteKey, RouteVal] = {}
        self.nh_objects = NhTable()
        self._variants: dict[PublicKey, set[RouteKey]] = {}
        """Public keys held by interface-keyed routes -> those routes' keys."""
        self._hops: dict[tuple[nlmsg.NextHopT, ...], tuple[nlmsg.NextHopT, ...]] = {}
        # Route values too: (proto, interned next hops, ...) repeat across a whole table,
        # and sharing them saves a tuple per route. Keyed by the next hops' identity.
        self._values: dict[tuple[int, int, int, str | None, int], RouteVal] = {}
        self._hop_models: dict[NhView, list[ev.NextHop]] = {}
        self._views: dict[int, tuple[tuple[nlmsg.NextHopT, ...], NhView | None]] = {}
        self._views_generation = -1

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """Within it, route changes update the mirror but build no events (the initial dump)."""
        self._quiet = True
        try:
            yield
        finally:
            self._quiet = False

    @property
    def is_quiet(self) -> bool:
        """True inside :meth:`quiet`."""
        return self._quiet

    def _nh_view(self, hops: tuple[nlmsg.NextHopT, ...]) -> NhView | None:
        """How ``hops`` are published under the current bindings; None: not published."""
        # Once per interned next-hop set and bindings generation, not once per route.
        views = self._views
        if self.bindings.generation != self._views_generation or len(views) >= _MAX_HOP_MODELS:
            views.clear()
            self._views_generation = self.bindings.generation
        hit = views.get(id(hops))
        if hit is not None and hit[0] is hops:
            return hit[1]
        view = self._view_of(hops)
        views[id(hops)] = (hops, view)  # holding ``hops`` keeps its id from being reused
        return view

    def _view_of(self, hops: tuple[nlmsg.NextHopT, ...]) -> NhView | None:
        view = []
        bound = False
        for gw, ifindex, weight, flags in hops:
            ports = self.bindings.ports(ifindex)
            if ports:
                bound = True
            view.append((gw, ifindex, ports[0] if ports else None, weight, flags))
        if not bound and not self.all_routes:
            return None
        return tuple(view)

    def _view(self, val: RouteVal) -> NhView | None:
        """How a route is published; None: not at all.

        A unicast route is published when a next hop leads to a bound port; a drop
        route always is: it overrides any less specific route a worker would use.
        """
        if val[2] != _UNICAST:
            return ()
        return self._nh_view(val[1])

    def _route_event(
        self, key: PublicKey, val: RouteVal, view: NhView, deleted: bool
    ) -> ev.EventBase:
        family, table, dst, plen, _tos, metric = key
        # A table has a handful of distinct next-hop views: their (frozen) models are
        # built once and shared by every event that carries them.
        nexthops = self._hop_models.get(view)
        if nexthops is None:
            if len(self._hop_models) >= _MAX_HOP_MODELS:
                self._hop_models.clear()
            nexthops = self._hop_models[view] = [
                self._ev(
                    ev.NextHop,
                    gateway=gw,
                    ifindex=ifx,
                    port_id=port,
                    weight=w,
                    flags=hop_flag_names(flags),
                )
                for gw, ifx, port, w, flags in view
            ]
        cls: type[ev.RouteAdd | ev.RouteDel | ev.Route6Add | ev.Route6Del]
        if family == AF4:
            cls = ev.RouteDel if deleted else ev.RouteAdd
        else:
            cls = ev.Route6Del if deleted else ev.Route6Add
        # In the models' field order, which lets trusted() take its shortcut.
        return self._ev(
            cls,
            table=table,
            proto=val[0],
            metric=metric,
            nexthops=nexthops,
            type=TYPE_NAMES[val[2]],
            prefsrc=val[3],
            dst=dst,
            prefixlen=plen,
        )

    def routes_via(self, ifindex: int) -> AbstractSet[RouteKey]:
        """The keys of the routes with a next hop through ``ifindex``.

        Found by a scan rather than kept in an index: an index of a full table costs
        a set entry per route (33 bytes at a million), while a bind, an unbind, a
        proxy's removal or the re-dump after a link goes down, the only callers, are
        rare. Next-hop tuples are interned, so the scan compares identities (about
        0.2 s at a million routes).
        """
        via = {id(h) for h in self._hops.values() if any(hop[1] == ifindex for hop in h)}
        if not via:
            return _NO_KEYS
        return {key for key, val in self.routes.items() if id(val[1]) in via}

    def route_key(self, rec: nlmsg.Route) -> RouteKey:
        """The mirror's key for a kernel route (see :data:`RouteKey`)."""
        return _keys(rec, self._resolve(rec)[1])[1]

    def _resolve(self, rec: nlmsg.Route) -> tuple[int, tuple[nlmsg.NextHopT, ...]]:
        """(type, next hops) the route forwards with: through its next-hop object if any."""
        if rec.type != _UNICAST:
            return rec.type, ()  # an IPv6 blackhole names "lo" as its interface: no hop
        if rec.nhid:
            resolved = self.nh_objects.resolve(rec.nhid)
            if resolved is not None:
                return resolved
            # Not known yet (a resync in progress): what the message expanded, if anything.
        return _UNICAST, rec.nexthops

    def _value(
        self,
        proto: int,
        hops: tuple[nlmsg.NextHopT, ...],
        rtype: int = _UNICAST,
        prefsrc: str | None = None,
        nhid: int = 0,
    ) -> RouteVal:
        """The shared value; ``hops`` must be interned."""
        vkey = (proto, id(hops), rtype, prefsrc, nhid)
        val = self._values.get(vkey)
        if val is None:
            val = self._values[vkey] = (proto, hops, rtype, prefsrc, nhid)
        return val

    def _published(self, pkey: PublicKey) -> RouteVal | None:
        """What is published under ``pkey``: its routes merged, interface order."""
        variants = self._variants.get(pkey)
        if not variants:
            return self.routes.get(pkey)
        keys: list[RouteKey] = [pkey] if pkey in self.routes else []
        keys += sorted(variants)
        vals = [self.routes[k] for k in keys]
        if len(vals) == 1:
            return vals[0]
        hops = tuple(h for v in vals for h in v[1])
        first = vals[0]
        return self._value(first[0], self._hops.setdefault(hops, hops), first[2], first[3])

    def _published_keys(self, keys: Iterable[RouteKey]) -> list[PublicKey]:
        return sorted({(k[0], k[1], k[2], k[3], k[4], k[5]) for k in keys})

    def _route(self, rec: nlmsg.Route) -> list[ev.EventBase]:
        rtype = rec.type
        if rtype == _UNICAST and not rec.nhid:
            hops = rec.nexthops  # the common case, without a call
        elif rtype not in TYPE_NAMES:
            return []
        else:
            rtype, hops = self._resolve(rec)
        if rec.flags & _CLONED:
            return []
        pkey, key = _keys(rec, hops)
        old = self.routes.get(key)
        merged = len(key) == 7 or pkey in self._variants
        if rec.deleted:
            if old is None:
                return []
            before = self._published(pkey) if merged else old
            del self.routes[key]
            if len(key) == 7:
                variants = self._variants[pkey]
                variants.discard(key)
                if not variants:
                    del self._variants[pkey]
            return self._route_change(pkey, before, self._published(pkey) if merged else None)
        # Interned: a full table has a million routes but a handful of next-hop sets.
        hops = self._hops.setdefault(hops, hops)
        new = self._value(rec.proto, hops, rtype, rec.prefsrc, rec.nhid)
        if old == new:
            return []
        before = self._published(pkey) if merged else old
        self.routes[key] = new
        if len(key) == 7:
            self._variants.setdefault(pkey, set()).add(key)
        if merged and not self._quiet:
            self._check_replaced(pkey, key)
        if self._quiet:
            return []
        return self._route_change(pkey, before, self._published(pkey) if merged else new)

    def _check_replaced(self, pkey: PublicKey, key: RouteKey) -> None:
        # `ip route replace` swaps one route for another under the same public key
        # with RTM_NEWROUTE alone: whether the others still exist, only a dump says.
        others = ([pkey] if pkey in self.routes else []) + sorted(self._variants.get(pkey, ()))
        for other in others:
            if other != key:
                hops = self.routes[other][1]
                self.redumps.add(Redump(pkey[0], hops[0][1] if len(hops) == 1 else 0))

    def _route_change(
        self, key: PublicKey, old: RouteVal | None, new: RouteVal | None, force: bool = False
    ) -> list[ev.EventBase]:
        # _view() inline: this runs for every route event.
        old_view = None if old is None else () if old[2] != _UNICAST else self._nh_view(old[1])
        new_view = None if new is None else () if new[2] != _UNICAST else self._nh_view(new[1])
        if new_view is None or new is None:
            if old_view is None or old is None:
                return []
            return [self._route_event(key, old, old_view, True)]
        if (
            not force
            and old is not None
            and old_view == new_view
            and (old[0], old[2], old[3]) == (new[0], new[2], new[3])
        ):
            return []
        return [self._route_event(key, new, new_view, False)]

    def _record(self, key: RouteKey, val: RouteVal, deleted: bool) -> nlmsg.Route:
        """A kernel message for a mirrored route (as the kernel would have sent it)."""
        proto, hops, rtype, prefsrc, nhid = val
        family, table, dst, plen, tos, metric = key[:6]
        if nhid:
            rtype = _UNICAST  # the object decides again what it resolves to
        return nlmsg.Route(
            deleted, family, table, dst, plen, tos, proto, rtype, 0, metric, hops, prefsrc, nhid
        )

    def _drop_route(self, key: RouteKey) -> list[ev.EventBase]:
        """Delete a mirrored route as if the kernel had said so; return the events."""
        return self._route(self._record(key, self.routes[key], True))

    def nexthop_objects_changed(self, ids: set[int]) -> list[ev.EventBase]:
        """Republish the routes through next-hop objects ``ids``; withdraw those whose
        object is gone (the kernel deletes such routes without a message)."""
        if not ids:
            return []
        # Values are few (one per object, protocol and source): only when one of them
        # uses a changed object are the routes scanned (FRR adds objects all the time).
        stale = {id(v) for v in self._values.values() if v[4] in ids}
        if not stale:
            return []
        keys = sorted(k for k, v in self.routes.items() if id(v) in stale)
        out: list[ev.EventBase] = []
        for key in keys:
            val = self.routes[key]
            if self.nh_objects.resolve(val[4]) is None:
                self.counters.compensations += 1
                out.extend(self._drop_route(key))
            else:
                out.extend(self._route(self._record(key, val, False)))
        return out

    def follow_link(self, ifindex: int, up: bool, carrier: bool) -> list[ev.EventBase]:
        """Next-hop liveness after a link's state changed, as the kernel derives it silently.

        The kernel marks hops through a link that is down ``dead`` and ``linkdown``, and
        through a link without carrier ``linkdown``, deletes the routes left without a
        live hop, and flushes the next-hop objects through the link, all without a
        route message for IPv4 (nor for IPv6 multipath hops). The same is done here at
        once; the caller then reconciles with a re-dump (:attr:`redumps`).
        """
        mark = (0 if up else nlmsg.RTNH_F_DEAD) | (0 if up and carrier else nlmsg.RTNH_F_LINKDOWN)
        out: list[ev.EventBase] = []
        if mark:
            out.extend(self.nexthop_objects_changed(self.nh_objects.flush_dev(ifindex)))
        for key in sorted(self.routes_via(ifindex)):
            val = self.routes.get(key)
            if val is None or val[4]:
                continue  # gone with the one before, or through an object (above)
            hops = tuple(
                (gw, ifx, w, (f & ~_LIVENESS) | mark if ifx == ifindex else f)
                for gw, ifx, w, f in val[1]
            )
            if hops == val[1]:
                continue
            if all(h[3] & nlmsg.RTNH_F_DEAD for h in hops):
                out.extend(self._drop_route(key))
            else:
                out.extend(self._route(self._record(key, (val[0], hops, *val[2:]), False)))
        return out

    def load_routes(self, records: Iterable[nlmsg.Record]) -> None:
        """Apply a route dump to a mirror that holds none of its routes yet (the start).

        Nothing to sweep and, inside :meth:`quiet`, nobody to tell: the records are
        applied as they stream in, so a million of them never sit in a list. An
        exception from ``records`` (an interrupted dump) leaves what was applied.
        """
        routes, interned, values = self.routes, self._hops, self._values
        route_cls, unicast, cloned = nlmsg.Route, nlmsg.RTN_UNICAST, nlmsg.RTM_F_CLONED
        loaded = 0
        last_hops: tuple[nlmsg.NextHopT, ...] | None = None
        last_proto = -1
        last_src: str | None = None
        by_object: dict[tuple[int, int, str | None], RouteVal] = {}
        val: RouteVal = (0, (), unicast, None, 0)
        try:
            for rec in records:
                # The common case inline (about half the time of the general path);
                # anything unusual (a repeated key, a device route, not unicast) takes
                # the general one.
                if rec.__class__ is not route_cls:
                    self.apply(rec)
                    continue
                (deleted, family, table, dst, plen, tos, proto, rtype, flags, metric, hops,
                 prefsrc, nhid) = rec  # fmt: skip
                if (
                    deleted
                    or rtype != unicast
                    or flags & cloned
                    or (not nhid and len(hops) == 1 and hops[0][0] is None)
                ):
                    self.apply(rec)
                    continue
                if nhid:
                    # FRR's routes: each object resolved once, its value shared.
                    found = by_object.get((nhid, proto, prefsrc))
                    if found is None:
                        resolved = self.nh_objects.resolve(nhid)
                        if resolved is None:
                            self.apply(rec)
                            continue
                        kind, hops = resolved
                        hops = interned.setdefault(hops, hops)
                        found = by_object[(nhid, proto, prefsrc)] = self._value(
                            proto, hops, kind, prefsrc, nhid
                        )
                    val = found
                elif hops is not last_hops or proto != last_proto or prefsrc != last_src:
                    # A dump runs through a few next-hop sets: the decoder hands the
                    # same tuple on, and the same value serves the routes in a row.
                    last_hops, last_proto, last_src = hops, proto, prefsrc
                    hops = interned.setdefault(hops, hops)
                    vkey = (proto, id(hops), unicast, prefsrc, 0)
                    shared = values.get(vkey)
                    if shared is None:
                        shared = values[vkey] = (proto, hops, unicast, prefsrc, 0)
                    val = shared
                if routes.setdefault((family, table, dst, plen, tos, metric), val) is not val:
                    self.apply(rec)
                    continue
                loaded += 1
        finally:
            self.counters.records += loaded
