"""How route changes reach the wire: the views of next hops under the bindings, and the
events of each route form (pure).

What a route looks like on the wire depends on the bindings (which next hops lead to
a bound port), cached per group and bindings generation. Routes travel in two forms,
each built only while someone takes it: flat (topic ``route``: each route with its
next hops) and by group (topic ``fib``: ``nhgroup_set``/``nhgroup_del`` and routes
naming a group by id). The mirror (:mod:`~ifpx.bridge.routes`) says what changed; a
:class:`Renderer` says it in the forms that are wanted.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

from ifpx.schemas import events as ev

from . import nlmsg
from .bindings import BindingTable
from .groups import NO_GROUP, Group, NhView, PublicKey, RouteVal

_M = TypeVar("_M", bound=ev.WireModel)

AF4 = socket.AF_INET
_MAX_HOP_MODELS = 4096
"""Next-hop views and model lists kept for reuse (more distinct ones than this: start over)."""

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
    """How events are built: validated, or trusted (our own decoder's values)."""

    def __call__(self, cls: type[_M], /, **fields: Any) -> _M:
        """An instance of ``cls`` with ``fields``."""


def validated(cls: type[_M], /, **fields: Any) -> _M:
    """``cls(**fields)``, checked by pydantic (the core's ``validate=True`` path)."""
    return cls(**fields)


class Renderer:
    """Route changes as events, in the forms someone takes, through the current bindings."""

    def __init__(self, bindings: BindingTable, all_routes: bool, build: Build) -> None:
        self.bindings = bindings
        self.all_routes = all_routes
        """Publish routes whatever their next hops (not only those through a bound port)."""
        self.build = build
        self.flat = True
        """Build route events in the flat form (topic ``route``)."""
        self.grouped = False
        """Build route events in the group form (topic ``fib``)."""
        self.quiet = False
        """Build no events at all (the initial dump: nobody holds this epoch yet)."""
        self.defer_flat = False
        """Put off the flat form's republishing of every route through a group whose
        hops changed until :meth:`owed` (the daemon's: the group form's one event goes
        out first, not after a million flat ones)."""
        self._deferred: dict[int, Group] = {}
        self._hop_models: dict[NhView, list[ev.NextHop]] = {}

    def withdraw(self, group: Group) -> list[ev.EventBase]:
        """``nhgroup_del`` for a group whoever takes the group form may hold: announced
        since the last snapshot, or in it (published then, so now: a group's view does
        not depend on its routes)."""
        held = group.sent is not None or self.gview(group) is not None
        group.sent = None
        if not self.grouped or self.quiet or not held:
            return []
        return [self.build(ev.NhGroupDel, group=group.gid)]

    def gview(self, group: Group) -> NhView | None:
        """How ``group``'s hops are published under the current bindings; None: not at all.

        A group is published when a hop leads to a bound port (or with ``all_routes``);
        the empty group of drop routes always is: a drop route overrides any less
        specific route a worker would use.
        """
        # Once per group and bindings generation, not once per route.
        if group.view_gen == self.bindings.generation:
            return group.view
        if group is NO_GROUP:
            view: NhView | None = ()
        elif not group.hops:
            view = None
        else:
            view = self.view_of(group.hops)
        group.view = view
        group.view_gen = self.bindings.generation
        return view

    def view_of(self, hops: tuple[nlmsg.NextHopT, ...]) -> NhView | None:
        """How ``hops`` are published now (uncached); None: not at all."""
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

    def view(self, val: RouteVal) -> NhView | None:
        """How a route's next hops are published; None: the route is not published."""
        return self.gview(val[1])

    def hop_list(self, view: NhView) -> list[ev.NextHop]:
        """The next-hop models of ``view``, shared by every event that carries it."""
        # A table has a handful of distinct next-hop views: their (frozen) models are
        # built once and shared by every event that carries them.
        nexthops = self._hop_models.get(view)
        if nexthops is None:
            if len(self._hop_models) >= _MAX_HOP_MODELS:
                self._hop_models.clear()
            nexthops = self._hop_models[view] = [
                self.build(
                    ev.NextHop,
                    gateway=gw,
                    ifindex=ifx,
                    port_id=port,
                    weight=w,
                    flags=hop_flag_names(flags),
                )
                for gw, ifx, port, w, flags in view
            ]
        return nexthops

    def announce(self, group: Group, view: NhView, force: bool = False) -> list[ev.EventBase]:
        """``nhgroup_set`` for ``group`` unless the group form already says ``view``."""
        if not self.grouped or group is NO_GROUP or (group.sent == view and not force):
            return []
        group.sent = view
        return [self.build(ev.NhGroupSet, group=group.gid, nexthops=self.hop_list(view))]

    def retire(self, group: Group) -> list[ev.EventBase]:
        """``nhgroup_del`` for a group the group form holds and no published route uses."""
        if not self.grouped or group.sent is None:
            return []
        group.sent = None
        return [self.build(ev.NhGroupDel, group=group.gid)]

    def route_event(
        self, key: PublicKey, val: RouteVal, view: NhView, deleted: bool
    ) -> ev.EventBase:
        """A route in the flat form."""
        family, table, dst, plen, _tos, metric = key
        # In the models' field order, which lets trusted() take its shortcut.
        return self.build(
            ev.route_event_type(family != AF4, deleted),
            table=table,
            proto=val[0],
            metric=metric,
            nexthops=self.hop_list(view),
            type=TYPE_NAMES[val[2]],
            prefsrc=val[3],
            dst=dst,
            prefixlen=plen,
        )

    def groute_event(self, key: PublicKey, val: RouteVal, deleted: bool) -> ev.EventBase:
        """A route in the group form."""
        family, table, dst, plen, _tos, metric = key
        return self.build(
            ev.route_event_type(family != AF4, deleted, grouped=True),
            table=table,
            proto=val[0],
            metric=metric,
            group=val[1].gid,
            type=TYPE_NAMES[val[2]],
            prefsrc=val[3],
            dst=dst,
            prefixlen=plen,
        )

    def add_events(
        self, key: PublicKey, val: RouteVal, view: NhView, flat: bool, grouped: bool
    ) -> list[ev.EventBase]:
        """A route added or changed: in the flat form if ``flat``, the group form if
        ``grouped`` (each only while it is wanted)."""
        out: list[ev.EventBase] = []
        if grouped and self.grouped:
            out.extend(self.announce(val[1], view))
            out.append(self.groute_event(key, val, False))
        if flat and self.flat:
            out.append(self.route_event(key, val, view, False))
        return out

    def del_events(self, key: PublicKey, val: RouteVal, old_view: NhView) -> list[ev.EventBase]:
        """A published route withdrawn, in every wanted form."""
        out: list[ev.EventBase] = []
        if self.grouped:
            out.append(self.groute_event(key, val, True))
        if self.flat:
            out.append(self.route_event(key, val, old_view, True))
        return out

    def route_change(
        self, key: PublicKey, old: RouteVal | None, new: RouteVal | None, force: bool = False
    ) -> list[ev.EventBase]:
        """The events for a route published as ``old`` (None: not at all) and now as
        ``new``; ``force`` says it again even if it did not change."""
        if old is None and new is not None:
            # A new route, the common case: without the general path's calls.
            group = new[1]
            view = group.view if group.view_gen == self.bindings.generation else self.gview(group)
            return [] if view is None else self.add_events(key, new, view, True, True)
        old_view = None if old is None else self.gview(old[1])
        return self.change(key, old, old_view, new, force)

    def change(
        self,
        key: PublicKey,
        old: RouteVal | None,
        old_view: NhView | None,
        new: RouteVal | None,
        force: bool = False,
    ) -> list[ev.EventBase]:
        """The events for a published route that went from ``old`` (published as
        ``old_view``) to ``new``."""
        new_view = None if new is None else self.gview(new[1])
        if new_view is None or new is None:
            if old_view is None or old is None:
                return []
            return self.del_events(key, old, old_view)
        if force or old is None or old_view is None:
            return self.add_events(key, new, new_view, True, True)
        same = (old[0], old[2], old[3]) == (new[0], new[2], new[3])
        grouped = not same or old[1] is not new[1]
        out = [] if grouped or old_view == new_view else self.announce(new[1], new_view)
        return out + self.add_events(key, new, new_view, not same or old_view != new_view, grouped)

    # ---- a group whose hops changed ---------------------------------------------

    def group_changed(
        self,
        group: Group,
        old_view: NhView | None,
        new_view: NhView | None,
        routes: Iterable[tuple[PublicKey, RouteVal]],
    ) -> list[ev.EventBase]:
        """``group``, published as ``old_view``, is now ``new_view``; ``routes`` are the
        routes through it (a scan, taken only if the flat form needs them now).

        The group form hears one ``nhgroup_set``; the flat form, every route through
        the group again (or later, with :attr:`defer_flat`). Routes that stop or start
        being published (an object replaced by one through other links) are withdrawn
        or added in both forms.
        """
        out: list[ev.EventBase] = []
        if new_view is not None:
            out.extend(self.announce(group, new_view, force=True))
        if self.flat and self.defer_flat and old_view is not None and new_view is not None:
            self._deferred[id(group)] = group
        elif self.flat or (old_view is None) != (new_view is None):
            for pkey, val in routes:
                if new_view is None:
                    assert old_view is not None
                    out.extend(self.del_events(pkey, val, old_view))
                elif old_view is None:
                    out.extend(self.add_events(pkey, val, new_view, True, True))
                else:
                    out.extend(self.add_events(pkey, val, new_view, True, False))
        if new_view is None:
            out.extend(self.retire(group))
        return out

    def owed(
        self, routes_of: Callable[[Group], Iterable[tuple[PublicKey, RouteVal]]]
    ) -> Iterator[ev.EventBase]:
        """The flat form's ``route_add`` of every route (``routes_of`` each group)
        through the groups put off since the last call, as they are now. (With nobody
        taking the flat form any more, nothing: a flat joiner takes a snapshot.)"""
        groups, self._deferred = self._deferred, {}  # now, whenever they are taken
        return self._owed(list(groups.values()) if self.flat else [], routes_of)

    def _owed(
        self,
        groups: list[Group],
        routes_of: Callable[[Group], Iterable[tuple[PublicKey, RouteVal]]],
    ) -> Iterator[ev.EventBase]:
        for group in groups:
            view = self.gview(group)
            if view is None:
                continue
            for pkey, val in routes_of(group):
                yield self.route_event(pkey, val, view, False)

    def forget(self, group: Group) -> None:
        """``group`` is gone: nothing is owed for it."""
        self._deferred.pop(id(group), None)
