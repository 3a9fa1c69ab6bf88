"""Next-hop groups: the shared sets of next hops routes forward by, and their ids (pure).

A full table is a million routes over a handful of next-hop sets, so routes refer to
shared :class:`Group` objects (one per set of next hops and scope, whatever
their liveness, or per kernel next-hop object, or per merged route) and the (proto,
group, ...) values of routes are interned here too. A group holds its hops' liveness: a
link that goes down changes a few groups in place, not a million routes. Ids are dense
(the lowest free one is reused): a forwarding table's next-hop index. Nothing here
makes events.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator

from . import nlmsg

PublicKey = tuple[int, int, str, int, int, int]
"""(family, table, dst, prefixlen, tos, metric): what identifies a published route."""
RouteKey = PublicKey | tuple[int, int, str, int, int, int, int]
"""A kernel route: its public key, plus the interface for a route with one next hop and
no gateway. The kernel keeps such routes apart per interface under one public key (each
port's fe80::/64, one subnet on two links); they are published merged, as one route."""
NhView = tuple[tuple[str | None, int, int | None, int, int], ...]
"""Published next hops: (gateway, ifindex, port_id, weight, flags)."""
Variant = tuple[tuple[nlmsg.NextHopT, ...], int, int, int, str | None]
"""(hops, table, metric, proto, prefsrc) of a route: its next hops and what else the
kernel keys its next-hop information by (an IPv4 ``fib_info``), the scope. Routes
through the same hops that differ in scope keep liveness of their own: a hop the kernel
marked dead in one is alive in a route made later in another table. One tuple, as the
route path builds one per route."""
ValueKey = tuple[int, int, int, str | None, int]
"""A route value's key among the interned: (proto, id of its group, type, prefsrc, nhid)."""


class Group:
    """A next-hop group: the hops routes forward by, with their current liveness flags.

    Shared by every route with the same hops (whatever their liveness) and scope
    (:data:`Variant`), or the same kernel next-hop object; mutated in place when a hop dies,
    comes back or the object is replaced, which is what makes a link failure cost
    O(groups).
    """

    __slots__ = ("bare", "gid", "hops", "keys", "refs", "sent", "values", "variants", "view",
                 "view_gen")  # fmt: skip

    def __init__(
        self,
        gid: int,
        hops: tuple[nlmsg.NextHopT, ...],
        bare: Variant | None = None,
    ) -> None:
        self.gid = gid
        self.hops = hops
        self.bare = bare
        """Its hops without liveness and its scope, for a group of a set of next hops
        (its key in the mirror); None for a kernel object's group and a merged route's."""
        self.refs = 0
        """How many mirrored routes forward by it: at 0 it is withdrawn, and a group of a
        set of next hops is forgotten (its id is reused)."""
        self.variants: list[Variant] = []
        """Its hops as the kernel has reported them, liveness and all, with its scope
        (keys to it)."""
        self.values: list[ValueKey] = []
        """The keys of the interned route values that name it."""
        self.keys: set[RouteKey] | None = set()
        """The routes through it while they are few (a link's own subnet, say), so that
        those a dead link takes along are found without a scan; None once there were
        more than :data:`FEW` (the big groups a scan is kept for)."""
        self.sent: NhView | None = None
        """What the group form last said of it (None: nothing since the last snapshot)."""
        self.view: NhView | None = None
        self.view_gen = -1

    def via(self, ifindex: int) -> bool:
        """Whether a hop goes through ``ifindex``."""
        return any(h[1] == ifindex for h in self.hops)


FEW = 64
"""Most routes a group keeps the keys of (see :attr:`Group.keys`)."""

NO_GROUP = Group(0, ())
"""The group of routes without next hops (drop routes): id 0 on the wire. Shared by
every mirror, so it keeps no keys, no count of its routes that could reach 0, and is
never announced, changed or forgotten."""
NO_GROUP.keys = None
NO_GROUP.refs = 1 << 62

IN_SNAPSHOT: NhView = ()
""":attr:`Group.sent` of a group the last snapshot carried: its loaders hold it (so it
is withdrawn when it stops being published) but it is announced again before a route
refers to it (no group's real view is empty, so it never compares equal)."""


RouteVal = tuple[int, Group, int, str | None, int]
"""(proto, next-hop group, type, prefsrc, next-hop object id or 0): shared by every
route with the same values (interned). ``type`` is an ``RTN_*`` of
:data:`~ifpx.bridge.routes.TYPE_NAMES`; routes of any other type than unicast have
:data:`NO_GROUP`."""
Hops = tuple[nlmsg.NextHopT, ...]

LIVENESS = nlmsg.RTNH_F_DEAD | nlmsg.RTNH_F_LINKDOWN
"""The next-hop flags that say whether a hop is alive (the kernel sets them silently)."""


def marked(hops: Hops, ifindex: int, mark: int) -> Hops:
    """``hops`` with the liveness of those through ``ifindex`` set to ``mark``."""
    return tuple(
        (gw, ifx, w, (f & ~LIVENESS) | mark if ifx == ifindex else f) for gw, ifx, w, f in hops
    )


def bare(hops: Hops) -> Hops:
    """``hops`` without their liveness flags: what identifies a group."""
    return tuple((gw, ifx, w, f & ~LIVENESS) for gw, ifx, w, f in hops)


def as_record(key: RouteKey, val: RouteVal, deleted: bool) -> nlmsg.Route:
    """A kernel message for a mirrored route (as the kernel would have sent it)."""
    proto, group, rtype, prefsrc, nhid = val
    family, table, dst, plen, tos, metric = key[:6]
    if nhid:
        rtype = nlmsg.RTN_UNICAST  # the object decides again what it resolves to
    return nlmsg.Route(deleted, family, table, dst, plen, tos, proto, rtype, 0, metric,
                       group.hops, prefsrc, nhid)  # fmt: skip


class GroupTable:
    """Every group the mirror knows, by what identifies it, and the interned route values."""

    def __init__(self) -> None:
        self.by_bare: dict[Variant, Group] = {}
        """Next hops without their liveness flags, and the scope -> their group."""
        self.by_hops: dict[Variant, Group] = {}
        """Next hops as the kernel reports them (with liveness), and the scope -> their
        group."""
        self.by_object: dict[int, Group] = {}
        """Kernel next-hop object id -> the group of the routes through it."""
        self.merged: dict[Hops, Group] = {}
        """Next hops of a merged route without their liveness -> its group: made from its
        parts' hops, and following their liveness in place (one ``nhgroup_set`` when a
        port of fe80::/64 goes down, not a new group)."""
        self.values: dict[ValueKey, RouteVal] = {}
        """The interned route values: (proto, group, ...) repeat across a whole table,
        and sharing them saves a tuple per route."""
        self._next_gid = 1
        self._free_gids: list[int] = []
        """Ids of forgotten groups (a heap): reused lowest first, so that ids stay as
        dense as the groups in use."""

    def stale_values(
        self, ids: set[int], resolve: Callable[[int], tuple[int, Hops] | None]
    ) -> set[int]:
        """The values (by id) through next-hop objects of ``ids`` that lost their object
        or changed kind or group (as ``resolve`` now resolves them): their routes must be
        said again.

        Values are few (one per object, protocol and source): only when one of them is
        stale are the routes scanned.
        """
        stale: set[int] = set()
        for val in self.values.values():
            if val[4] not in ids:
                continue
            resolved = resolve(val[4])
            if (
                resolved is None
                or resolved[0] != val[2]
                or (resolved[0] == nlmsg.RTN_UNICAST and val[1] is not self.by_object.get(val[4]))
            ):
                stale.add(id(val))
        return stale

    def new(self, hops: Hops, bare_hops: Variant | None = None) -> Group:
        """A group with the lowest free id."""
        if self._free_gids:
            return Group(heapq.heappop(self._free_gids), hops, bare_hops)
        group = Group(self._next_gid, hops, bare_hops)
        self._next_gid += 1
        return group

    def for_hops(self, variant: Variant) -> Group:
        """The group of a route without a next-hop object (its liveness may differ)."""
        group = self.by_hops.get(variant)
        if group is None:
            key = (bare(variant[0]), *variant[1:])
            group = self.by_bare.get(key)
            if group is None:
                group = self.by_bare[key] = self.new(variant[0], key)
            self.by_hops[variant] = group
            group.variants.append(variant)
        return group

    def for_object(self, nhid: int, hops: Hops) -> Group:
        """The group of the routes through kernel next-hop object ``nhid``."""
        group = self.by_object.get(nhid)
        if group is None:
            group = self.by_object[nhid] = self.new(hops)
        return group

    def for_merged(self, hops: Hops) -> Group:
        """The group of a merged route made of parts through ``hops``."""
        key = bare(hops)
        group = self.merged.get(key)
        if group is None:
            group = self.merged[key] = self.new(hops)
        return group

    def value(
        self, proto: int, group: Group, rtype: int, prefsrc: str | None, nhid: int
    ) -> RouteVal:
        """The shared value."""
        vkey = (proto, id(group), rtype, prefsrc, nhid)
        val = self.values.get(vkey)
        if val is None:
            val = self.values[vkey] = (proto, group, rtype, prefsrc, nhid)
            if group is not NO_GROUP:
                group.values.append(vkey)
        return val

    def drop_hops_group(self, group: Group) -> None:
        """Unfile a group of a set of next hops that lost its last route."""
        assert group.bare is not None
        del self.by_bare[group.bare]
        for variant in group.variants:
            if self.by_hops.get(variant) is group:
                del self.by_hops[variant]

    def forget(self, group: Group) -> None:
        """Drop the values that name a group no route uses any more, and free its id."""
        for vkey in group.values:
            self.values.pop(vkey, None)
        group.values.clear()
        heapq.heappush(self._free_gids, group.gid)

    def __len__(self) -> int:
        return len(self.by_bare) + len(self.by_object) + len(self.merged)

    def __iter__(self) -> Iterator[Group]:
        yield from self.by_bare.values()
        yield from self.by_object.values()
        yield from self.merged.values()
