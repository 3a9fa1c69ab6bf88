"""The route mirror: the kernel's routes, merged per public key and kept in kernel order (pure).

Routes refer to shared next-hop groups (:mod:`~ifpx.bridge.groups`): a link that goes
down changes a few groups in place, not a million routes. Routes the kernel keeps apart
per interface under one public key (each port's fe80::/64) are published merged; IPv4
routes appended behind another under one key are held hidden, in the kernel's order,
and come forward as those in front go. What the kernel does silently (hops marked dead,
routes flushed with a link or a next-hop object) is done here too, and re-dumps are
asked for to confirm it. What changes is said through a :class:`~.render.Renderer`,
which knows the bindings and route forms; the mirror neither. BridgeCore owns one (fib).
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Container, Iterable, Iterator
from contextlib import contextmanager
from operator import itemgetter
from typing import TypeVar

from ifpx.schemas import events as ev

from . import bulkload, nlmsg, siblings
from .aliases import Aliases, Identity, ahead_after, identity, value_identity
from .groups import (
    FEW,
    NO_GROUP,
    Group,
    GroupTable,
    NhView,
    PublicKey,
    RouteKey,
    RouteVal,
    as_record,
    bare,
    marked,
)
from .nhobjects import NhTable
from .redump import AF4, AF6, Counters, Redump, replaced
from .render import TYPE_NAMES, Renderer

_T = TypeVar("_T")

PACE = 4096
"""Routes a long loop goes through between two calls of :attr:`RouteMirror.progress`."""


_UNICAST = nlmsg.RTN_UNICAST
_REPLACE = nlmsg.NLM_F_REPLACE
_INTERFACE = itemgetter(6)  # of an interface-keyed route (see RouteKey)
_PLAIN = frozenset(
    f
    for f in (i << 8 for i in range(16))  # REPLACE, EXCL, CREATE, APPEND: 0x100-0x800
    if not f & nlmsg.NLM_F_APPEND
    and (f & nlmsg.NLM_F_CREATE == 0 or f & (nlmsg.NLM_F_EXCL | nlmsg.NLM_F_REPLACE))
)
"""The flags of a route notification that put no route behind another: with no route
hidden, the common path alone applies it (``ip route add`` says CREATE|EXCL)."""
_CLONED = nlmsg.RTM_F_CLONED


def _keys(rec: nlmsg.Route, hops: tuple[nlmsg.NextHopT, ...]) -> tuple[PublicKey, RouteKey]:
    """A kernel route's public key and its key in the mirror (see :data:`RouteKey`).

    ``hops`` are the route's resolved next hops. Routes through next-hop objects and
    routes of the drop types are never kept per interface.
    """
    pkey: PublicKey = (rec.family, rec.table, rec.dst, rec.prefixlen, rec.tos, rec.metric)
    if len(hops) == 1 and hops[0][0] is None and not rec.nhid:
        return pkey, (*pkey, hops[0][1])
    return pkey, pkey


def _nothing() -> None:
    pass


class RouteMirror:
    """The routes of the kernel mirror, their groups and next-hop objects; what changes is
    said through :attr:`out` (the core's routes: :attr:`BridgeCore.fib`)."""

    def __init__(
        self,
        out: Renderer,
        counters: Counters,
        redumps: set[Redump],
        apply: Callable[[nlmsg.Record], list[ev.EventBase]],
    ) -> None:
        self.out = out
        """Says what changed in the route forms that are wanted."""
        self.counters = counters
        self.redumps = redumps
        """Where the re-dumps the kernel's silence makes necessary are asked for."""
        self.apply = apply
        """The core's ``apply``: dumped records go through it, counted as all are."""
        self.routes: dict[RouteKey, RouteVal] = {}
        self.nh_objects = NhTable()
        self.variants: dict[PublicKey, list[RouteKey]] = {}
        """Public keys held by interface-keyed routes -> those routes' keys, by interface."""
        self.aliases = Aliases()
        """IPv4 routes behind the first of their key (``ip route append``/``prepend``)."""
        self.nhg = GroupTable()
        self.progress: Callable[[], None] = _nothing
        """Called every :data:`PACE` routes of a loop through a whole table (a link's
        routes dropped, a binding's republished): the daemon's heartbeats keep going
        through the seconds that takes at a million routes."""

    def paced(self, items: Iterable[_T]) -> Iterator[_T]:
        """``items``, calling :attr:`progress` every :data:`PACE` of them."""
        for i, item in enumerate(items, 1):
            if not i % PACE:
                self.progress()
            yield item

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """Within it, route changes update the mirror but build no events (the initial dump)."""
        self.out.quiet = True
        try:
            yield
        finally:
            self.out.quiet = False

    @property
    def is_quiet(self) -> bool:
        """True inside :meth:`quiet`."""
        return self.out.quiet

    # ---- groups ---------------------------------------------------------------

    def _unused(self, group: Group) -> list[ev.EventBase]:
        """``group`` lost its last route: withdrawn, and forgotten unless it is a kernel
        object's (kept while the object exists: its id is the object's for the epoch)."""
        out = self.out.withdraw(group)
        if group.bare is not None:
            self.nhg.drop_hops_group(group)
            self._forget(group)
        return out

    def _merged_unused(
        self, pkey: PublicKey, before: RouteVal | None, after: RouteVal | None
    ) -> list[ev.EventBase]:
        """Withdraw and forget the group ``before`` was published with under ``pkey``
        (now ``after``), if it was a merged route's and no merged route is published with
        it any more (they are few)."""
        if before is None or (after is not None and after[1] is before[1]):
            return []
        group, key = before[1], bare(before[1].hops)
        if self.nhg.merged.get(key) is not group:
            return []
        for k in self.variants:
            val = after if k == pkey else self.published(k)
            if val is not None and val[1] is group:
                return []
        del self.nhg.merged[key]
        out = self.out.withdraw(group)
        self._forget(group)
        return out

    def _forget(self, group: Group) -> None:
        """Drop what refers to a group no route uses any more, and free its id."""
        self.out.forget(group)
        self.nhg.forget(group)

    @property
    def group_count(self) -> int:
        """How many groups the mirror keeps (each in use, or a kernel object's)."""
        return len(self.nhg)

    def groups(self) -> Iterator[Group]:
        """Every group the mirror knows (some may be used by no route any more)."""
        return iter(self.nhg)

    def forget_sent(self) -> None:
        """A snapshot is being taken: whoever loads it holds the groups its routes use
        (marked :data:`IN_SNAPSHOT` by the builder), and no other."""
        for group in self.groups():
            group.sent = None

    def set_group(self, group: Group, hops: tuple[nlmsg.NextHopT, ...]) -> list[ev.EventBase]:
        """``group`` now forwards by ``hops`` (liveness changed, or its object was replaced).

        The merged routes with a part through it are said again; the renderer says
        the group and the routes through it in each form
        (:meth:`~ifpx.bridge.render.Renderer.group_changed`).
        """
        if group.hops == hops:
            return []
        old_view = self.out.gview(group)
        merged = [] if self.out.quiet else self._merged_using(group)
        group.hops = hops
        group.view_gen = -1
        new_view = self.out.gview(group)
        if self.out.quiet:
            return []
        out: list[ev.EventBase] = []
        for pkey, before, before_view in merged:
            after = self.published(pkey)
            out.extend(self.out.change(pkey, before, before_view, after))
            out.extend(self._merged_unused(pkey, before, after))
        if new_view != old_view:
            routes = self.paced(self._published_using(group))
            out.extend(self.out.group_changed(group, old_view, new_view, routes))
        return out

    def deferred(self) -> Iterator[ev.EventBase]:
        """The flat form's ``route_add`` of every route through the groups whose hops
        changed since the last call (with the renderer's ``defer_flat``), as they are now.

        Made as they are taken (a million of them take seconds: the caller publishes
        them in slices, and keeps its heartbeats going between). The mirror must not
        change until they are all taken.
        """
        return self._counted(self.out.owed(self._published_using))

    def _counted(self, events: Iterator[ev.EventBase]) -> Iterator[ev.EventBase]:
        for event in events:
            self.counters.events += 1
            yield event

    def _published_using(self, group: Group) -> Iterator[tuple[PublicKey, RouteVal]]:
        """The routes published as they are (not merged) through ``group`` (a scan)."""
        variants, routes = self.variants, self.routes
        for k in self._keys_of({id(group): group}):
            if len(k) == 6 and k not in variants:
                yield k, routes[k]

    def _merged_using(self, group: Group) -> list[tuple[PublicKey, RouteVal, NhView | None]]:
        """The merged routes with a part through ``group``: (key, published value, view)."""
        found = []
        for pkey, keys in sorted(self.variants.items()):
            parts = ([pkey] if pkey in self.routes else []) + list(keys)
            if any(self.routes[k][1] is group for k in parts):
                val = self.published(pkey)
                if val is not None:
                    found.append((pkey, val, self.out.view(val)))
        return found

    # ---- the table -------------------------------------------------------------

    def routes_via(self, ifindex: int) -> list[RouteKey]:
        """The keys of the routes with a next hop through ``ifindex``, in the mirror's
        order.

        Found by a scan rather than kept in an index: an index of a full table costs
        a set entry per route (33 bytes at a million), while a bind, an unbind, a
        proxy's removal or the re-dump after a link goes down, the only callers, are
        rare. Routes refer to shared groups, so the scan compares identities (about
        0.2 s at a million routes, paced).
        """
        via = {id(g): g for g in self.groups() if g.via(ifindex)}
        return self._keys_of(via) if via else []

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

    def published(self, pkey: PublicKey) -> RouteVal | None:
        """What is published under ``pkey``: its routes merged, interface order."""
        variants = self.variants.get(pkey)
        if not variants:
            return self.routes.get(pkey)
        keys: list[RouteKey] = [pkey] if pkey in self.routes else []
        keys += variants
        vals = [self.routes[k] for k in keys]
        ahead = self.aliases.ahead.get(pkey) if keys[0] == pkey else None
        if ahead:  # the kernel forwards by the device routes in front of the first
            vals = [self.routes[k] for k in keys[1:] if k[-1] in ahead]
        if len(vals) == 1 or vals[0][2] != _UNICAST:
            # A drop route appended beside device routes (`ip route append`) is
            # published as it is: next hops are not a drop route's to merge.
            return vals[0]
        hops = tuple(h for v in vals for h in v[1].hops)
        group = self.nhg.for_merged(hops)
        if group.hops != hops:
            # A part's liveness changed: only set_group changes it, and it goes through
            # the merged routes of the part with their views as they were before, so
            # their events (the group's nhgroup_set among them) are made there.
            group.hops = hops
            group.view_gen = -1
        first = vals[0]
        return self.nhg.value(first[0], group, first[2], first[3], 0)

    def published_keys(self, keys: Iterable[RouteKey]) -> list[PublicKey]:
        """The public keys of ``keys``, each once, in their order."""
        return list(dict.fromkeys((k[0], k[1], k[2], k[3], k[4], k[5]) for k in keys))

    def route(self, rec: nlmsg.Route) -> list[ev.EventBase]:  # noqa: C901
        """Apply a kernel route message; return the events for what it changed."""
        rtype = rec.type
        nhid = rec.nhid
        pre: list[ev.EventBase] = []
        if rtype == _UNICAST and not nhid:
            hops = rec.nexthops  # the common case, without a call
        elif rtype not in TYPE_NAMES:
            return []
        else:
            rtype, hops = self._resolve(rec)
        if rec.flags & _CLONED:
            return []
        pkey, key = _keys(rec, hops)
        aliases, ahead = self.aliases, None
        merged = len(key) == 7 or pkey in self.variants
        placed = aliases.ahead and pkey in aliases.ahead  # device routes in front of its first
        if (aliases.by_key or placed or rec.nlflags not in _PLAIN) and rec.family == AF4:
            ahead = self._ahead_after(rec.nlflags, key) if merged else None  # no devices: none
            if len(key) == 6:
                handled = self._alias(rec, rtype, hops, pkey)
                if handled is not None:
                    return handled
        old = self.routes.get(key)
        if rec.deleted:
            return [] if old is None else self._deleted(pkey, key, old, merged)
        if rtype != _UNICAST:
            group = NO_GROUP
        elif nhid and self.nh_objects.resolve(nhid) is not None:
            group = self.nhg.for_object(nhid, hops)
        else:
            variant = (hops, rec.table, rec.metric, rec.proto, rec.prefsrc)
            group = self.nhg.by_hops.get(variant) or self.nhg.for_hops(variant)
            if group.hops is not hops and group.hops != hops:
                # The kernel says the hops' liveness is now this: for every route of them.
                pre = self.set_group(group, hops)
        new = self.nhg.value(rec.proto, group, rtype, rec.prefsrc, nhid)
        if old is new:
            return pre
        before = self.published(pkey) if merged else old
        if ahead is not None:
            aliases.place(pkey, ahead)
        self.routes[key] = new
        group.refs += 1
        if old is not None:
            old[1].refs -= 1
            if old[1] is not group and old[1].keys is not None:
                old[1].keys.discard(key)
        keys = group.keys
        if keys is not None:
            keys.add(key)
            if len(keys) > FEW:
                group.keys = None
        if len(key) == 7 and old is None:
            insort(self.variants.setdefault(pkey, []), key, key=_INTERFACE)
        if merged and not self.out.quiet and (rec.nlflags & _REPLACE or not rec.nlflags):
            others = ([pkey] if pkey in self.routes else []) + self.variants.get(pkey, [])
            self.redumps.update(replaced(key, others, self.routes))
        after = self.published(pkey) if merged else new
        render = self.out
        out = [] if render.quiet else pre + render.route_change(pkey, before, after)
        if old is not None and not old[1].refs:
            out += self._unused(old[1])
        if merged:
            out += self._merged_unused(pkey, before, after)
        return out

    def _ahead_after(self, flags: int, key: RouteKey) -> list[int] | None:
        """The device routes of ``key``'s public key in front of its first once a route
        under ``key`` is notified with ``flags`` (see :func:`~.aliases.ahead_after`)."""
        pkey = (key[0], key[1], key[2], key[3], key[4], key[5])
        devices = [k[-1] for k in self.variants.get(pkey, ())]
        first, ahead = pkey in self.routes, self.aliases.ahead.get(pkey, [])
        return ahead_after(flags, key[-1] if len(key) == 7 else 0, first, ahead, devices)

    def _deleted(
        self, pkey: PublicKey, key: RouteKey, old: RouteVal, merged: bool
    ) -> list[ev.EventBase]:
        """The events for a mirrored route the kernel deleted."""
        before = self.published(pkey) if merged else old
        del self.routes[key]
        group = old[1]
        keys = group.keys
        if keys is not None:
            keys.discard(key)
        if len(key) == 7:
            variants = self.variants[pkey]
            variants.remove(key)
            if not variants:
                del self.variants[pkey]
            self.aliases.device_gone(pkey, key[6])
        else:
            self.aliases.ahead.pop(pkey, None)
        after = self.published(pkey) if merged else None
        out = self.out.route_change(pkey, before, after)
        group.refs -= 1
        if not group.refs:
            out += self._unused(group)
        if merged:
            out += self._merged_unused(pkey, before, after)
        return out

    def _record_identity(self, rec: nlmsg.Route) -> Identity:
        rtype, hops = self._resolve(rec)
        return identity(rtype, rec.nhid, rec.proto, rec.prefsrc, hops)

    def _alias(  # noqa: C901
        self, rec: nlmsg.Route, rtype: int, hops: tuple[nlmsg.NextHopT, ...], key: PublicKey
    ) -> list[ev.EventBase] | None:
        """An IPv4 route among others under one key: its events if it is hidden (or
        brings a hidden one forward), None if it is the first (the caller applies it).

        May put the first behind (``prepend``) before returning None.
        """
        first = self.routes.get(key)
        aliases = self.aliases
        hidden = aliases.get(key)
        this = identity(rtype, rec.nhid, rec.proto, rec.prefsrc, hops)
        if rec.deleted:
            if not hidden:
                return None
            if first is not None and value_identity(first) == this:
                # The first goes: the next forwards, replacing it in one change. Where
                # it stands among the key's device routes, only a dump says.
                if key in self.variants:
                    self.redumps.add(Redump(AF4))
                return self.route(aliases.bring_forward(key))
            for i, other in enumerate(hidden):
                if self._record_identity(other) == this:
                    aliases.remove(key, i)
                    return []
            # The kernel deleted one we never held: only a dump says what is left.
            self.redumps.add(Redump(AF4))
            return []
        flags = rec.nlflags
        if first is None or not flags:
            return None
        if flags & nlmsg.NLM_F_APPEND:
            aliases.append(key, rec._replace(nlflags=0))
            return []
        if flags & nlmsg.NLM_F_REPLACE:
            # Also what the kernel says of every route through a next-hop object that
            # changed, the hidden ones among them: those stay hidden.
            if hidden and rec.nhid and value_identity(first) != this:
                for other in hidden:
                    if other.nhid == rec.nhid:
                        return []
            if key in aliases.ahead:
                # It replaced the device route in front: the first goes behind it.
                aliases.prepend(key, as_record(key, first, False))
            return None
        if flags & nlmsg.NLM_F_EXCL:
            # The only one under its key: the mirror missed the others' deletion.
            aliases.forget(key)
            return None
        # CREATE alone (`ip route prepend`): in front of the first.
        aliases.prepend(key, as_record(key, first, False))
        return None

    def load_one(self, rec: nlmsg.Record) -> None:
        """Apply a record of a dump whose routes came in empty: an IPv4 route under a
        key an earlier one took is behind it (the kernel dumps its aliases in order)."""
        if isinstance(rec, nlmsg.Route):
            key, behind = self._dumped_key(rec, self.routes)
            if behind is not None:
                self.aliases.append(behind, rec)
                return
            if key in self.variants and rec.family == AF4:  # its device routes came first
                self.aliases.place(key, [k[-1] for k in self.variants[key]])
        self.apply(rec)

    def _dumped_key(
        self, rec: nlmsg.Route, firsts: Container[RouteKey]
    ) -> tuple[RouteKey, PublicKey | None]:
        """A dumped route's key in the mirror, and that key again if the route is an IPv4
        one that comes behind one of ``firsts`` (hidden), else None."""
        pkey, key = _keys(rec, self._resolve(rec)[1])
        hidden = (
            key == pkey
            and rec.family == AF4
            and not rec.deleted
            and rec.type in TYPE_NAMES
            and not rec.flags & _CLONED
            and key in firsts
        )
        return key, pkey if hidden else None

    def reconcile(
        self, records: Iterable[nlmsg.Record], family: int, oif: int
    ) -> list[ev.EventBase]:
        """A route dump (of ``family``, via ``oif`` if non-zero) applied as it streams in,
        then the routes in its scope it did not hold swept away.

        One pass, holding no list of the dump: the caller's iterator may do its own
        work between records (the daemon keeps its heartbeats going through a re-dump
        of a million routes).
        """
        scope = {k for k in (self.routes_via(oif) if oif else self.routes) if k[0] == family}
        out: list[ev.EventBase] = []
        seen: set[RouteKey] = set()
        # The kernel dumps the IPv4 routes of one key in its order: the first forwards,
        # the others are hidden behind it. A dump through one interface holds only some
        # of them: the hidden ones follow the links instead, and their keys stay.
        whole4 = family == AF4 and not oif
        hidden: dict[PublicKey, list[nlmsg.Route]] = {}
        devices: dict[PublicKey, list[int]] = {}
        ahead: dict[PublicKey, list[int]] = {}  # the device routes listed before a first
        firsts = seen if whole4 else self.aliases.keys()
        for rec in records:
            if isinstance(rec, nlmsg.Route) and (scope or firsts or whole4):
                key, behind = self._dumped_key(rec, firsts)
                if whole4 and len(key) == 7:
                    devices.setdefault((key[0], key[1], key[2], key[3], key[4], key[5]), [])
                    devices[(key[0], key[1], key[2], key[3], key[4], key[5])].append(key[6])
                elif whole4 and behind is None and key in devices and key not in seen:
                    ahead[key] = list(devices[key])
                seen.add(key)
                if behind is not None:
                    if whole4:
                        hidden.setdefault(behind, []).append(rec)
                    continue
            out.extend(self.apply(rec))
        if whole4:
            self.aliases.replace(hidden)
            out.extend(self._reorder(ahead))
        if oif and family == AF6 and not seen and siblings.leave_multipath(scope, self.routes):
            self.redumps.add(Redump(AF6))  # an empty dump: the link went (see siblings)
        for key in self.paced(sorted(scope - seen)):
            if key in self.routes:
                out.extend(self.drop_route(key))
        return out

    def _reorder(self, ahead: dict[PublicKey, list[int]]) -> list[ev.EventBase]:
        """The events for the keys whose device routes in front of their first differ
        between a whole IPv4 dump (``ahead``) and what was held."""
        out: list[ev.EventBase] = []
        held = self.aliases.ahead
        for pkey in sorted(k for k in held.keys() | ahead.keys() if held.get(k) != ahead.get(k)):
            before = self.published(pkey)
            self.aliases.place(pkey, ahead.get(pkey, []))
            after = self.published(pkey)
            if not self.out.quiet:
                out += self.out.route_change(pkey, before, after)
                out += self._merged_unused(pkey, before, after)
        return out

    def drop_route(self, key: RouteKey) -> list[ev.EventBase]:
        """Delete a mirrored route as if the kernel had said so; return the events."""
        return self.route(as_record(key, self.routes[key], True))

    def nexthop_objects_changed(self, ids: set[int]) -> list[ev.EventBase]:
        """Republish the routes through next-hop objects ``ids``; withdraw those whose
        object is gone (the kernel deletes such routes without a message).

        An object that still resolves to next hops changes its group in place: one
        ``nhgroup_set`` (and the flat form's routes). Only an object that is gone or
        changed its kind (a blackhole object) goes through every route that uses it.
        """
        if not ids:
            return []
        self.aliases.objects_gone(ids, lambda nhid: self.nh_objects.resolve(nhid) is not None)
        out: list[ev.EventBase] = []
        for nhid in sorted(ids):
            group = self.nhg.by_object.get(nhid)
            resolved = self.nh_objects.resolve(nhid)
            if group is not None and resolved is not None and resolved[0] == _UNICAST:
                out.extend(self.set_group(group, resolved[1]))
        stale = self.nhg.stale_values(ids, self.nh_objects.resolve)
        if stale:
            # (In the mirror's order: FRR's million routes may share the object.)
            keys = [k for k, v in self.paced(self.routes.items()) if id(v) in stale]
            for key in self.paced(keys):
                val = self.routes[key]
                if self.nh_objects.resolve(val[4]) is None:
                    self.counters.compensations += 1
                    out.extend(self.drop_route(key))
                else:
                    out.extend(self.route(as_record(key, val, False)))
        for nhid in sorted(ids):
            if nhid in self.nhg.by_object and self.nh_objects.resolve(nhid) is None:
                group = self.nhg.by_object.pop(nhid)
                out.extend(self.out.retire(group))
                if not group.refs:  # its routes went first, as the kernel's did
                    self._forget(group)
        return out

    def link_deleted(self, ifindex: int) -> list[ev.EventBase]:
        """The routes through a deleted link gone, as the kernel makes them go.

        IPv4 routes through a deleted link vanish silently; IPv6 ones are announced,
        but dropping both here keeps the mirror exact either way. So do the next-hop
        objects through it, and the routes that used them.
        """
        out = self.nexthop_objects_changed(self.nh_objects.flush_dev(ifindex))
        self.aliases.follow_link(ifindex, None)
        for key in self.paced(self.routes_via(ifindex)):
            if len(self.routes[key][1].hops) > 1:
                # ECMP routes may survive on their other next hops: ask the kernel.
                self.redumps.add(Redump(key[0]))
            out.extend(self.drop_route(key))
        return out

    def follow_link(self, ifindex: int, up: bool, carrier: bool) -> list[ev.EventBase]:
        """Next-hop liveness after a link's state changed, as the kernel derives it silently.

        The kernel marks hops through a link that is down ``dead`` and ``linkdown``, and
        through a link without carrier ``linkdown``, deletes the routes left without a
        live hop, and flushes the next-hop objects through the link, all without a
        route message for IPv4 (nor for IPv6 multipath hops). The same is done here at
        once, group by group; the caller then reconciles with a re-dump
        (:attr:`redumps`).
        """
        mark = (0 if up else nlmsg.RTNH_F_DEAD) | (0 if up and carrier else nlmsg.RTNH_F_LINKDOWN)
        if self.aliases:
            self.aliases.follow_link(ifindex, mark)  # first: a first dropped below may bring one on
        out: list[ev.EventBase] = []
        if mark:
            out.extend(self.nexthop_objects_changed(self.nh_objects.flush_dev(ifindex)))
        dead: dict[int, Group] = {}
        changed: list[tuple[Group, tuple[nlmsg.NextHopT, ...]]] = []
        for group in list(self.nhg.by_bare.values()):
            if not group.via(ifindex):
                continue
            hops = marked(group.hops, ifindex, mark)
            if all(h[3] & nlmsg.RTNH_F_DEAD for h in hops):
                dead[id(group)] = group
            elif hops != group.hops:
                changed.append((group, hops))
        # The routes left without a live hop go first, as the kernel deletes them.
        if dead:
            for key in self.paced(self._keys_of(dead)):
                if key in self.routes:
                    out.extend(self.drop_route(key))
        for group, hops in changed:
            out.extend(self.set_group(group, hops))
        return out

    def _keys_of(self, groups: dict[int, Group]) -> list[RouteKey]:
        """The keys of the routes through ``groups`` (by id): a scan only if one is big.

        Sorted if they are few, in the mirror's order otherwise: sorting a million keys
        would take the bridge a second without a heartbeat, for no one's benefit.
        """
        if all(g.keys is not None for g in groups.values()):
            return sorted({k for g in groups.values() for k in g.keys or ()})
        return [k for k, v in self.paced(self.routes.items()) if id(v[1]) in groups]

    def load_routes(self, records: Iterable[nlmsg.Record]) -> None:
        """Apply a route dump to a mirror that holds none of its routes yet (the start;
        :func:`~ifpx.bridge.bulkload.load`, the common case inline)."""
        bulkload.load(self, records)
