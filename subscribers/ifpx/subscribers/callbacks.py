"""Callbacks in the shape of DPDK's ``rte_ifpx_callbacks``: one optional method per kind."""

from __future__ import annotations

from ifpx.schemas import events as ev


class Callbacks:
    """Subclass and override what you need; every method is optional and does nothing.

    :meth:`Subscriber.run` calls ``<kind>(event)`` for each event; a method that
    raises is logged and counted, and the loop carries on.
    """

    def mac_change(self, e: ev.MacChange) -> None:
        """A proxy's MAC changed."""

    def mtu_change(self, e: ev.MtuChange) -> None:
        """A proxy's MTU changed."""

    def link_change(self, e: ev.LinkChange) -> None:
        """A proxy went administratively up or down (or its carrier changed)."""

    def addr_add(self, e: ev.AddrAdd) -> None:
        """An IPv4 address was added."""

    def addr_del(self, e: ev.AddrDel) -> None:
        """An IPv4 address was removed."""

    def addr6_add(self, e: ev.Addr6Add) -> None:
        """An IPv6 address was added."""

    def addr6_del(self, e: ev.Addr6Del) -> None:
        """An IPv6 address was removed."""

    def route_add(self, e: ev.RouteAdd) -> None:
        """An IPv4 route was added or replaced."""

    def route_del(self, e: ev.RouteDel) -> None:
        """An IPv4 route was removed."""

    def route6_add(self, e: ev.Route6Add) -> None:
        """An IPv6 route was added or replaced."""

    def route6_del(self, e: ev.Route6Del) -> None:
        """An IPv6 route was removed."""

    def nhgroup_set(self, e: ev.NhGroupSet) -> None:
        """A next-hop group is now ``e.nexthops`` (routes by group: ``routes="group"``)."""

    def nhgroup_del(self, e: ev.NhGroupDel) -> None:
        """A next-hop group no route names any more is gone."""

    def groute_add(self, e: ev.GRouteAdd) -> None:
        """An IPv4 route forwards by next-hop group ``e.group`` (0: a drop route)."""

    def groute_del(self, e: ev.GRouteDel) -> None:
        """An IPv4 route of the group form was removed."""

    def groute6_add(self, e: ev.GRoute6Add) -> None:
        """An IPv6 route forwards by next-hop group ``e.group``."""

    def groute6_del(self, e: ev.GRoute6Del) -> None:
        """An IPv6 route of the group form was removed."""

    def rule_add(self, e: ev.RuleAdd) -> None:
        """An IPv4 policy rule was added."""

    def rule_del(self, e: ev.RuleDel) -> None:
        """An IPv4 policy rule was removed."""

    def rule6_add(self, e: ev.Rule6Add) -> None:
        """An IPv6 policy rule was added."""

    def rule6_del(self, e: ev.Rule6Del) -> None:
        """An IPv6 policy rule was removed."""

    def neigh_add(self, e: ev.NeighAdd) -> None:
        """An IPv4 neighbour appeared or changed."""

    def neigh_del(self, e: ev.NeighDel) -> None:
        """An IPv4 neighbour was removed."""

    def neigh6_add(self, e: ev.Neigh6Add) -> None:
        """An IPv6 neighbour appeared or changed."""

    def neigh6_del(self, e: ev.Neigh6Del) -> None:
        """An IPv6 neighbour was removed."""

    def cfg_done(self, e: ev.CfgDone) -> None:
        """The initial configuration has been delivered."""

    def port_bound(self, e: ev.PortBound) -> None:
        """A port was bound; its proxy's configuration follows."""

    def port_unbound(self, e: ev.PortUnbound) -> None:
        """A port was unbound."""

    def proxy_gone(self, e: ev.ProxyGone) -> None:
        """A bound proxy disappeared."""

    def proxy_renamed(self, e: ev.ProxyRenamed) -> None:
        """A bound proxy was renamed."""

    def proxy_back(self, e: ev.ProxyBack) -> None:
        """A gone proxy reappeared and the binding followed it."""

    def resync_begin(self, e: ev.ResyncBegin) -> None:
        """State is being repaired; the difference follows as ordinary events."""

    def resync_end(self, e: ev.ResyncEnd) -> None:
        """The repair is over; the replica is exact again."""
