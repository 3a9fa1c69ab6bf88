"""IPv4 routes the kernel holds behind another under one key (pure).

``ip route append`` and ``prepend`` put several IPv4 routes under one (table, dst,
tos, metric), and the kernel forwards by the first alone. The route mirror keeps the
first as a route and the others here, in the kernel's order, as the kernel's own
messages: they are not published, they come forward as those in front go, and they
follow links and next-hop objects as the kernel's do, silently.

Device routes under one key are kept apart per interface and published merged; what
is kept here of them is which stand in front of the first of the key's other routes
(a gateway, a drop route, a next-hop object: :attr:`Aliases.ahead`): the kernel
forwards by those, and only they are published.
"""

from __future__ import annotations

from collections.abc import Callable, KeysView

from . import nlmsg
from .groups import PublicKey, RouteVal, bare, marked

Identity = tuple[int, int, int, str | None, tuple[nlmsg.NextHopT, ...]]
"""What tells IPv4 routes under one key apart: (type, next-hop object, protocol,
preferred source, next hops without liveness; none through an object)."""


def identity(
    rtype: int, nhid: int, proto: int, prefsrc: str | None, hops: tuple[nlmsg.NextHopT, ...]
) -> Identity:
    """A route's identity among those under its key, from its resolved type and hops."""
    return rtype, nhid, proto, prefsrc, () if nhid else bare(hops)


def value_identity(val: RouteVal) -> Identity:
    """The identity of a mirrored route (its shared value)."""
    return identity(val[2], val[4], val[0], val[3], val[1].hops)


def ahead_after(
    flags: int, oif: int, first: bool, ahead: list[int], devices: list[int]
) -> list[int] | None:
    """The device routes (by interface) in front of an IPv4 key's first route that is not
    a device route, after a new route of the key notified with ``flags``; None: as they
    were.

    ``oif``: the new route's interface if it is a device route, else 0; ``first``: the
    key held such a first; ``ahead``: the device routes in front of it until now;
    ``devices``: all of the key's device routes until now. ``ip route add`` succeeds
    only on an empty key; ``append`` goes behind all; ``prepend`` in front of all;
    ``replace`` replaces the first, whatever it is.
    """
    if flags & nlmsg.NLM_F_EXCL:
        return []
    if flags & nlmsg.NLM_F_APPEND:
        return devices if not oif and not first and devices else None
    if not flags & (nlmsg.NLM_F_CREATE | nlmsg.NLM_F_REPLACE):
        return None
    if not oif:
        return []
    if not first:
        return None
    return [oif] + (ahead[1:] if flags & nlmsg.NLM_F_REPLACE else ahead)


class Aliases:
    """The hidden IPv4 routes, by public key, each list in the kernel's order."""

    def __init__(self) -> None:
        self.by_key: dict[PublicKey, list[nlmsg.Route]] = {}
        """Read directly on the route path (a dict's truth, not a call per route)."""
        self.ahead: dict[PublicKey, list[int]] = {}
        """Key -> the interfaces of its device routes in front of its first route that
        is not a device route (``ip route prepend ... dev``; an ``append`` behind them)."""

    def __bool__(self) -> bool:
        return bool(self.by_key)

    @property
    def count(self) -> int:
        """How many routes are hidden."""
        return sum(len(v) for v in self.by_key.values())

    def keys(self) -> KeysView[PublicKey]:
        """The keys with a route hidden behind the first."""
        return self.by_key.keys()

    def get(self, key: PublicKey) -> list[nlmsg.Route] | None:
        """The routes hidden under ``key``, in the kernel's order (None: none)."""
        return self.by_key.get(key)

    def append(self, key: PublicKey, rec: nlmsg.Route) -> None:
        """``rec`` goes behind the others under ``key`` (``ip route append``; a dump)."""
        self.by_key.setdefault(key, []).append(rec)

    def prepend(self, key: PublicKey, rec: nlmsg.Route) -> None:
        """``rec``, the first until now, goes behind a new first (``ip route prepend``)."""
        self.by_key.setdefault(key, []).insert(0, rec)

    def forget(self, key: PublicKey) -> None:
        """Nothing is hidden under ``key`` any more."""
        self.by_key.pop(key, None)

    def bring_forward(self, key: PublicKey) -> nlmsg.Route:
        """The first hidden under ``key``, no longer hidden (the first went)."""
        hidden = self.by_key[key]
        nxt = hidden.pop(0)
        if not hidden:
            del self.by_key[key]
        return nxt

    def remove(self, key: PublicKey, i: int) -> None:
        """The ``i``-th hidden under ``key`` is gone."""
        hidden = self.by_key[key]
        del hidden[i]
        if not hidden:
            del self.by_key[key]

    def replace(self, by_key: dict[PublicKey, list[nlmsg.Route]]) -> None:
        """What a whole IPv4 dump found hidden, instead of what was held."""
        self.by_key = by_key

    def place(self, key: PublicKey, ahead: list[int]) -> None:
        """The device routes of ``key`` in front of its first are now ``ahead``."""
        if ahead:
            self.ahead[key] = ahead
        else:
            self.ahead.pop(key, None)

    def device_gone(self, key: PublicKey, ifindex: int) -> None:
        """The device route of ``key`` through ``ifindex`` is gone."""
        ahead = self.ahead.get(key)
        if ahead and ifindex in ahead:
            self.place(key, [i for i in ahead if i != ifindex])

    def follow_link(self, ifindex: int, mark: int | None) -> None:
        """The hidden routes through ``ifindex`` as the kernel leaves them: gone with
        the link (``mark`` None), or with their hops through it marked (and gone if
        none is left alive)."""
        for key, hidden in list(self.by_key.items()):
            kept: list[nlmsg.Route] = []
            for rec in hidden:
                if not any(h[1] == ifindex for h in rec.nexthops):
                    kept.append(rec)
                elif mark is not None:
                    hops = marked(rec.nexthops, ifindex, mark)
                    if not all(h[3] & nlmsg.RTNH_F_DEAD for h in hops):
                        kept.append(rec._replace(nexthops=hops))
            self._set(key, kept)

    def objects_gone(self, ids: set[int], exists: Callable[[int], bool]) -> None:
        """The hidden routes through next-hop objects of ``ids`` that no longer
        ``exists`` went with them."""
        for key, hidden in list(self.by_key.items()):
            kept = [r for r in hidden if r.nhid not in ids or exists(r.nhid)]
            if len(kept) != len(hidden):
                self._set(key, kept)

    def _set(self, key: PublicKey, hidden: list[nlmsg.Route]) -> None:
        if hidden:
            self.by_key[key] = hidden
        else:
            self.by_key.pop(key, None)
