"""The start's bulk load of a route dump into an empty route mirror (pure).

A full table is a million routes: :meth:`RouteMirror.route` per record would take
twice as long. So the common case (a unicast route, new key, through a next-hop set
or object) is taken here inline, with values shared across the runs of routes a dump
brings through the same hops; anything unusual goes through the mirror one by one
(:meth:`RouteMirror.load_one`). ``tests/test_core.py`` holds the two to the same
mirror.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from . import nlmsg
from .groups import FEW, NO_GROUP, RouteVal

if TYPE_CHECKING:
    from .routes import RouteMirror


def load(fib: RouteMirror, records: Iterable[nlmsg.Record]) -> None:  # noqa: C901
    """Apply a route dump to a mirror that holds none of its routes yet (the start).

    Nothing to sweep and, inside :meth:`RouteMirror.quiet`, nobody to tell: the records are
    applied as they stream in, so a million of them never sit in a list. An
    exception from ``records`` (an interrupted dump) leaves what was applied.
    """
    routes, values, nhg, variants = fib.routes, fib.nhg.values, fib.nhg, fib.variants
    route_cls, unicast, cloned = nlmsg.Route, nlmsg.RTN_UNICAST, nlmsg.RTM_F_CLONED
    loaded = 0
    last_hops: tuple[nlmsg.NextHopT, ...] | None = None
    last_scope: tuple[int, int, int, str | None] = (-1, -1, -1, None)
    by_object: dict[tuple[int, int, str | None], RouteVal] = {}
    val: RouteVal = (0, NO_GROUP, unicast, None, 0)
    try:
        for rec in records:
            # The common case inline (about half the time of the general path);
            # anything unusual (a repeated key, a device route, not unicast) takes
            # the general one.
            if rec.__class__ is not route_cls:
                fib.load_one(rec)
                last_hops = None  # it may have forgotten the group in hand
                continue
            (deleted, family, table, dst, plen, tos, proto, rtype, flags, metric, hops,
             prefsrc, nhid, _nlflags) = rec  # fmt: skip
            if (
                deleted
                or rtype != unicast
                or flags & cloned
                or (not nhid and len(hops) == 1 and hops[0][0] is None)
            ):
                fib.load_one(rec)
                last_hops = None
                continue
            if nhid:
                # FRR's routes: each object resolved once, its value shared.
                found = by_object.get((nhid, proto, prefsrc))
                if found is None:
                    resolved = fib.nh_objects.resolve(nhid)
                    if resolved is None:
                        fib.load_one(rec)
                        last_hops = None
                        continue
                    kind, hops = resolved
                    group = NO_GROUP if kind != unicast else nhg.for_object(nhid, hops)
                    found = by_object[(nhid, proto, prefsrc)] = nhg.value(
                        proto, group, kind, prefsrc, nhid
                    )
                val = found
            elif hops is not last_hops or (table, metric, proto, prefsrc) != last_scope:
                # A dump runs through a few next-hop sets: the decoder hands the
                # same tuple on, and the same value serves the routes in a row.
                last_hops, last_scope = hops, (table, metric, proto, prefsrc)
                group = nhg.for_hops((hops, table, metric, proto, prefsrc))
                if group.hops is not hops and group.hops != hops:
                    fib.set_group(group, hops)  # quiet: no events
                vkey = (proto, id(group), unicast, prefsrc, 0)
                shared = values.get(vkey)
                if shared is None:
                    shared = values[vkey] = (proto, group, unicast, prefsrc, 0)
                    group.values.append(vkey)
                val = shared
            key = (family, table, dst, plen, tos, metric)
            if key in routes or (variants and key in variants):
                fib.load_one(rec)
                last_hops = None
                continue
            routes[key] = val
            val[1].refs += 1
            keys = val[1].keys
            if keys is not None:
                keys.add(key)
                if len(keys) > FEW:
                    val[1].keys = None
            loaded += 1
    finally:
        fib.counters.records += loaded
