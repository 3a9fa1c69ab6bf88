"""How route changes reach the wire: the views of next hops under the bindings, and the
events of each route form (pure).

What a route looks like on the wire depends on the bindings (which next hops lead to
a bound port), cached per group and bindings generation. Routes travel in two forms,
each built only while someone takes it: flat (topic ``route``: each route with its
next hops) and by group (topic ``fib``: ``nhgroup_set``/``nhgroup_del`` and routes
naming a group by id), one object each (:class:`GroupForm`, :class:`FlatForm`) that
answers the same named changes. The mirror (:mod:`~ifpx.bridge.routes`) says what
changed to a :class:`Renderer`, which holds the views and hands each change to the
forms taken, group form first.
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


class GroupForm:
    """Topic ``fib``: next-hop groups (``nhgroup_set``/``nhgroup_del``) and routes that
    name one by id. A link that goes down is one ``nhgroup_set`` per group through it."""

    def __init__(self, build: Build, hop_list: Callable[[NhView], list[ev.NextHop]]) -> None:
        self.build = build
        self.hop_list = hop_list

    def announce(self, group: Group, view: NhView, force: bool = False) -> list[ev.EventBase]:
        """``nhgroup_set`` for ``group`` unless this form already says ``view``."""
        if group is NO_GROUP or (group.sent == view and not force):
            return []
        group.sent = view
        return [self.build(ev.NhGroupSet, group=group.gid, nexthops=self.hop_list(view))]

    def retire(self, group: Group) -> list[ev.EventBase]:
        """``nhgroup_del`` for a group this form holds and no published route uses."""
        if group.sent is None:
            return []
        group.sent = None
        return self.gone(group)

    def gone(self, group: Group) -> list[ev.EventBase]:
        """``nhgroup_del`` for ``group``."""
        return [self.build(ev.NhGroupDel, group=group.gid)]

    def route_event(self, key: PublicKey, val: RouteVal, deleted: bool) -> ev.EventBase:
        """A route in this form."""
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

    def added(self, key: PublicKey, val: RouteVal, view: NhView) -> list[ev.EventBase]:
        """A route published (anew, or said again): its group first if it is news."""
        return [*self.announce(val[1], view), self.route_event(key, val, False)]

    def deleted(self, key: PublicKey, val: RouteVal, _old_view: NhView) -> list[ev.EventBase]:
        """A published route withdrawn."""
        return [self.route_event(key, val, True)]

    def changed(
        self, key: PublicKey, old: RouteVal, old_view: NhView, new: RouteVal, new_view: NhView
    ) -> list[ev.EventBase]:
        """A published route changed: said again if its group or values changed; only its
        group if just the group's view did."""
        if (old[0], old[2], old[3]) != (new[0], new[2], new[3]) or old[1] is not new[1]:
            return self.added(key, new, new_view)
        return [] if old_view == new_view else self.announce(new[1], new_view)

    def group_begin(
        self, group: Group, _old_view: NhView | None, new_view: NhView | None
    ) -> list[ev.EventBase]:
        """A group's hops changed: its one ``nhgroup_set``."""
        return [] if new_view is None else self.announce(group, new_view, force=True)

    def needs_routes(self, _group: Group, old_view: NhView | None, new_view: NhView | None) -> bool:
        """Whether the routes through a changed group are said again: only when they
        start or stop being published."""
        return (old_view is None) != (new_view is None)

    def group_route(
        self, key: PublicKey, val: RouteVal, old_view: NhView | None, new_view: NhView | None
    ) -> list[ev.EventBase]:
        """A route through a changed group (see :meth:`needs_routes`)."""
        if new_view is None:
            return [self.route_event(key, val, True)]
        if old_view is None:
            return self.added(key, val, new_view)
        return []

    def group_end(self, group: Group, new_view: NhView | None) -> list[ev.EventBase]:
        """After the routes: a group no longer published is withdrawn."""
        return self.retire(group) if new_view is None else []


class FlatForm:
    """Topic ``route``: each route with its next hops. A link that goes down republishes
    every route through it (put off with :attr:`defer`, until :meth:`owed`)."""

    def __init__(self, build: Build, hop_list: Callable[[NhView], list[ev.NextHop]]) -> None:
        self.build = build
        self.hop_list = hop_list
        self.defer = False
        """Put off the republishing of every route through a group whose hops changed
        until :meth:`owed` (the daemon's: the group form's one event goes out first, not
        after a million flat ones)."""
        self._deferred: dict[int, Group] = {}

    def route_event(
        self, key: PublicKey, val: RouteVal, view: NhView, deleted: bool
    ) -> ev.EventBase:
        """A route in this form."""
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

    def added(self, key: PublicKey, val: RouteVal, view: NhView) -> list[ev.EventBase]:
        """A route published (anew, or said again)."""
        return [self.route_event(key, val, view, False)]

    def deleted(self, key: PublicKey, val: RouteVal, old_view: NhView) -> list[ev.EventBase]:
        """A published route withdrawn, as it was published."""
        return [self.route_event(key, val, old_view, True)]

    def changed(
        self, key: PublicKey, old: RouteVal, old_view: NhView, new: RouteVal, new_view: NhView
    ) -> list[ev.EventBase]:
        """A published route changed: said again if anything it carries did."""
        if (old[0], old[2], old[3]) != (new[0], new[2], new[3]) or old_view != new_view:
            return self.added(key, new, new_view)
        return []

    def group_begin(
        self, _group: Group, _old_view: NhView | None, _new_view: NhView | None
    ) -> list[ev.EventBase]:
        """A group's hops changed: nothing of its own in this form."""
        return []

    def needs_routes(self, group: Group, old_view: NhView | None, new_view: NhView | None) -> bool:
        """Whether the routes through a changed group are said again now: always, unless
        they stay published and :attr:`defer` puts them off."""
        if self.defer and old_view is not None and new_view is not None:
            self._deferred[id(group)] = group
            return False
        return True

    def group_route(
        self, key: PublicKey, val: RouteVal, old_view: NhView | None, new_view: NhView | None
    ) -> list[ev.EventBase]:
        """A route through a changed group, as it is published now (or withdrawn)."""
        if new_view is None:
            assert old_view is not None
            return self.deleted(key, val, old_view)
        return self.added(key, val, new_view)

    def group_end(self, _group: Group, _new_view: NhView | None) -> list[ev.EventBase]:
        """After the routes: nothing in this form."""
        return []

    def take_deferred(self) -> list[Group]:
        """The groups put off since the last call."""
        groups, self._deferred = self._deferred, {}
        return list(groups.values())

    def owed(
        self,
        groups: list[Group],
        routes_of: Callable[[Group], Iterable[tuple[PublicKey, RouteVal]]],
        gview: Callable[[Group], NhView | None],
    ) -> Iterator[ev.EventBase]:
        """``route_add`` of every route through ``groups`` (``routes_of`` each), as they
        are published now (``gview``)."""
        for group in groups:
            view = gview(group)
            if view is None:
                continue
            for pkey, val in routes_of(group):
                yield self.route_event(pkey, val, view, False)

    def forget(self, group: Group) -> None:
        """``group`` is gone: nothing is owed for it."""
        self._deferred.pop(id(group), None)


Form = GroupForm | FlatForm


def _bound(hop: tuple[str | None, int, int | None, int, int]) -> bool:
    return hop[2] is not None


class Renderer:
    """Route changes as events in the forms someone takes (group form first, then flat:
    within one change, as subscribers of each topic expect), through the bindings."""

    def __init__(self, bindings: BindingTable, all_routes: bool, build: Build) -> None:
        self.bindings = bindings
        self.all_routes = all_routes
        """Publish routes whatever their next hops (not only those through a bound port)."""
        self.build = build
        self.quiet = False
        """Build no events at all (the initial dump: nobody holds this epoch yet)."""
        self._hop_models: dict[NhView, list[ev.NextHop]] = {}
        self.group_form = GroupForm(build, self.hop_list)
        self.flat_form = FlatForm(build, self.hop_list)
        self._grouped = False
        self._flat = True
        self.forms: tuple[Form, ...] = ()
        """The forms taken now, in the order their events go out."""
        self.added: Callable[[PublicKey, RouteVal, NhView], list[ev.EventBase]]
        """A route published as a view (anew, or said again), in every form taken."""
        self._taken()

    def _taken(self) -> None:
        group: tuple[Form, ...] = (self.group_form,) if self._grouped else ()
        self.forms = group + ((self.flat_form,) if self._flat else ())
        # Once per route of a table: straight to the one form when there is one.
        self.added = self.forms[0].added if len(self.forms) == 1 else self._added

    @property
    def flat(self) -> bool:
        """Build route events in the flat form (topic ``route``)."""
        return self._flat

    @flat.setter
    def flat(self, on: bool) -> None:
        self._flat = on
        self._taken()

    @property
    def grouped(self) -> bool:
        """Build route events in the group form (topic ``fib``)."""
        return self._grouped

    @grouped.setter
    def grouped(self, on: bool) -> None:
        self._grouped = on
        self._taken()

    @property
    def defer_flat(self) -> bool:
        """The flat form puts its republishing off (:attr:`FlatForm.defer`)."""
        return self.flat_form.defer

    @defer_flat.setter
    def defer_flat(self, on: bool) -> None:
        self.flat_form.defer = on

    # ---- views -----------------------------------------------------------------

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
        return ev.trimmed(tuple(view), _bound)

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

    # ---- groups ------------------------------------------------------------------

    def announce(self, group: Group, view: NhView, force: bool = False) -> list[ev.EventBase]:
        """``nhgroup_set`` for ``group`` unless the group form already says ``view``."""
        return self.group_form.announce(group, view, force) if self._grouped else []

    def retire(self, group: Group) -> list[ev.EventBase]:
        """``nhgroup_del`` for a group the group form holds and no published route uses."""
        return self.group_form.retire(group) if self._grouped else []

    def withdraw(self, group: Group) -> list[ev.EventBase]:
        """``nhgroup_del`` for a group whoever takes the group form may hold: announced
        since the last snapshot, or in it (published then, so now: a group's view does
        not depend on its routes)."""
        held = group.sent is not None or self.gview(group) is not None
        group.sent = None
        if not self._grouped or self.quiet or not held:
            return []
        return self.group_form.gone(group)

    # ---- routes ------------------------------------------------------------------

    def _added(self, key: PublicKey, val: RouteVal, view: NhView) -> list[ev.EventBase]:
        out: list[ev.EventBase] = []
        for form in self.forms:
            out.extend(form.added(key, val, view))
        return out

    def deleted(self, key: PublicKey, val: RouteVal, old_view: NhView) -> list[ev.EventBase]:
        """A route that was published as ``old_view`` withdrawn, in every form taken."""
        out: list[ev.EventBase] = []
        for form in self.forms:
            out.extend(form.deleted(key, val, old_view))
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
            return [] if view is None else self.added(key, new, view)
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
            return self.deleted(key, old, old_view)
        if force or old is None or old_view is None:
            return self.added(key, new, new_view)
        out: list[ev.EventBase] = []
        for form in self.forms:
            out.extend(form.changed(key, old, old_view, new, new_view))
        return out

    def group_changed(
        self,
        group: Group,
        old_view: NhView | None,
        new_view: NhView | None,
        routes: Iterable[tuple[PublicKey, RouteVal]],
    ) -> list[ev.EventBase]:
        """``group``, published as ``old_view``, is now ``new_view``; ``routes`` are the
        routes through it (a scan, taken only if a form needs them now): one
        ``nhgroup_set`` in the group form, every route again in the flat form, and in
        both the routes that start or stop being published."""
        forms = self.forms
        out: list[ev.EventBase] = []
        for form in forms:
            out.extend(form.group_begin(group, old_view, new_view))
        needing = [form for form in forms if form.needs_routes(group, old_view, new_view)]
        if needing:
            for pkey, val in routes:
                for form in needing:
                    out.extend(form.group_route(pkey, val, old_view, new_view))
        for form in forms:
            out.extend(form.group_end(group, new_view))
        return out

    def owed(
        self, routes_of: Callable[[Group], Iterable[tuple[PublicKey, RouteVal]]]
    ) -> Iterator[ev.EventBase]:
        """The flat form's ``route_add`` of every route (``routes_of`` each group)
        through the groups it put off since the last call, as they are now. (With nobody
        taking the flat form any more, nothing: a flat joiner takes a snapshot.)"""
        groups = self.flat_form.take_deferred()  # now, whenever they are taken
        return self.flat_form.owed(groups if self._flat else [], routes_of, self.gview)

    def forget(self, group: Group) -> None:
        """``group`` is gone: nothing is owed for it."""
        self.flat_form.forget(group)
