"""IPv4 routes under one (table, dst, tos, metric): the kernel forwards by the first.

``ip route append`` and ``prepend`` put several IPv4 routes under one key; the kernel
keeps them in order and forwards by the first alone. A model of the kernel's rules
(net/ipv4/fib_trie.c: fib_table_insert, fib_table_delete) drives the core with the
notifications the kernel would send, and the published route must be the model's first
after every step, through link failures and the re-dumps that follow them.
"""

from __future__ import annotations

import socket

from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_core import _assert_groups_reclaimed

from ifpx.bridge import nlmsg
from ifpx.bridge.core import BridgeCore
from ifpx.schemas import events as ev
from ifpx.subscribers.replica import Replica

AF4 = socket.AF_INET
CREATE_EXCL = nlmsg.NLM_F_CREATE | nlmsg.NLM_F_EXCL
APPEND = nlmsg.NLM_F_CREATE | nlmsg.NLM_F_APPEND
PREPEND = nlmsg.NLM_F_CREATE
REPLACE = nlmsg.NLM_F_REPLACE
DSTS = ("10.1.0.0", "10.2.0.0")
BLACKHOLE = 0
"""An alias that is a blackhole route; the others are gateways 10.0.0.N on ifindex N,
or for -N a device route on ifindex N."""


def _record(dst: str, alias: int, deleted: bool = False, nlflags: int = 0) -> nlmsg.Route:
    if alias == BLACKHOLE:
        return nlmsg.Route(deleted, AF4, 254, dst, 16, 0, 3, 6, 0, 0, (), None, 0, nlflags)
    hop = (f"10.0.0.{alias}", alias, 1, 0) if alias > 0 else (None, -alias, 1, 0)
    return nlmsg.Route(deleted, AF4, 254, dst, 16, 0, 3, 1, 0, 0, (hop,), None, 0, nlflags)


class Kernel:
    """The kernel's aliases per key, and the notifications its changes send."""

    def __init__(self) -> None:
        self.aliases: dict[str, list[int]] = {d: [] for d in DSTS}
        self.down: set[int] = set()

    def change(self, verb: str, dst: str, alias: int) -> list[nlmsg.Route]:
        have = self.aliases[dst]
        if abs(alias) in self.down:
            return []  # "Nexthop device is not up"
        if verb == "del":
            if alias not in have:
                return []
            have.remove(alias)
            return [_record(dst, alias, deleted=True)]
        if verb == "delfirst":  # `ip route del 10.1.0.0/16`: the first goes
            return [_record(dst, have.pop(0), deleted=True)] if have else []
        if not have:
            have.append(alias)
            return [_record(dst, alias, nlflags=CREATE_EXCL)]
        if verb == "add" or (alias in have and verb != "replace"):
            return []  # EEXIST
        if verb == "replace":
            if alias in have:
                return []  # the first already (a no-op), or EEXIST
            have[0] = alias
            return [_record(dst, alias, nlflags=REPLACE)]
        if verb == "append":
            have.append(alias)
            return [_record(dst, alias, nlflags=APPEND)]
        have.insert(0, alias)
        return [_record(dst, alias, nlflags=PREPEND)]

    def link(self, ifindex: int, up: bool) -> None:
        """A link down: its routes go, silently (fib_flush); up brings none back."""
        if up:
            self.down.discard(ifindex)
            return
        self.down.add(ifindex)
        for have in self.aliases.values():
            have[:] = [a for a in have if abs(a) != ifindex]

    def dump(self, oif: int = 0) -> list[nlmsg.Route]:
        return [
            _record(dst, a) for dst in DSTS for a in self.aliases[dst] if not oif or abs(a) == oif
        ]


def _link(ifindex: int, up: bool) -> nlmsg.Link:
    return nlmsg.Link(False, ifindex, f"tap{ifindex - 2}", 1500, "02:00:00:00:00:01", up, up)


def _core() -> BridgeCore:
    core = BridgeCore()
    core.apply_all([_link(i, True) for i in (2, 3, 4)])
    for i in (2, 3, 4):
        core.bind(i - 2, core.links[i])
    return core


Forwarding = tuple[str, list[tuple[str, int]]] | None


def _forwarding(replica: Replica) -> dict[str, Forwarding]:
    """What the replica forwards 10.N.0.1 by: (type, its hops), or None."""
    out: dict[str, Forwarding] = {}
    for dst in DSTS:
        found = replica.lookup(dst[:-1] + "1")
        hops = sorted((h[0] or "", h[1]) for h in found.nexthops) if found else []
        out[dst] = (found.type, hops) if found else None
    return out


def _expected(kernel: Kernel) -> dict[str, Forwarding]:
    """What the kernel forwards by, as published: the first of a key; device routes
    merged, those in front of the first other route alone, and behind a gateway route
    in front, with it."""
    out: dict[str, Forwarding] = {}
    for dst, have in kernel.aliases.items():
        devices = [("", -a) for a in have if a < 0]
        firsts = [i for i, a in enumerate(have) if a >= 0][:1]
        if not have:
            out[dst] = None
        elif not firsts or have[0] < 0:
            ahead = have[: firsts[0]] if firsts else have
            out[dst] = ("unicast", sorted(("", -a) for a in ahead))
        elif have[0] == BLACKHOLE:
            out[dst] = ("blackhole", [])
        else:
            out[dst] = ("unicast", sorted([(f"10.0.0.{have[0]}", have[0]), *devices]))
    return out


def _hidden(core: BridgeCore) -> dict[str, list[nlmsg.Route]]:
    """The hidden routes per destination, as dumped records."""
    return {
        key[2]: [r._replace(nlflags=0) for r in recs]
        for key, recs in sorted(core.fib.aliases.by_key.items())
    }


verbs = st.sampled_from(["add", "append", "prepend", "replace", "del", "delfirst"])
steps = st.one_of(
    st.tuples(verbs, st.sampled_from(DSTS), st.sampled_from([BLACKHOLE, 2, 3, 4, -2, -3])),
    st.tuples(st.just("link"), st.sampled_from([2, 3]), st.booleans()),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(steps, max_size=30))
@example([("add", "10.1.0.0", 2), ("append", "10.1.0.0", 3), ("del", "10.1.0.0", 2)])
@example([("add", "10.1.0.0", 2), ("append", "10.1.0.0", 3), ("del", "10.1.0.0", 3)])
@example([("add", "10.1.0.0", 2), ("prepend", "10.1.0.0", 0), ("delfirst", "10.1.0.0", 0)])
@example([("add", "10.1.0.0", 2), ("append", "10.1.0.0", 3), ("link", 2, False)])
@example([("add", "10.1.0.0", 0), ("prepend", "10.1.0.0", -2)])  # walk seed 405
@example([("add", "10.1.0.0", -2), ("append", "10.1.0.0", 0), ("prepend", "10.1.0.0", -3)])
@example([("add", "10.1.0.0", -2), ("append", "10.1.0.0", 0), ("append", "10.1.0.0", 3),
          ("delfirst", "10.1.0.0", 0), ("del", "10.1.0.0", 0)])  # fmt: skip
@example([("add", "10.1.0.0", -2), ("append", "10.1.0.0", 0), ("replace", "10.1.0.0", 3)])
def test_the_published_route_is_the_one_the_kernel_forwards_by(steps_: list) -> None:  # type: ignore[type-arg]
    kernel, core, replica = Kernel(), _core(), Replica()
    replica.load(core.snapshot())
    for step in steps_:
        if step[0] == "link":
            kernel.link(step[1], step[2])
            events = core.apply(_link(step[1], step[2]))
        else:
            events = core.apply_all(kernel.change(*step))
        # The re-dumps a link change asks for, answered as the kernel would.
        for redump in sorted(core.redumps, key=repr):
            if redump.kind == "route" and redump.family == AF4:
                events += core.reconcile("route", kernel.dump(redump.oif), AF4, redump.oif)
        core.redumps.clear()
        replica.apply_all(events)
        assert _forwarding(replica) == _expected(kernel), step
    assert replica.to_state() == core.snapshot().canonical()
    _assert_groups_reclaimed(core)
    # The routes hidden behind the first are the kernel's, in its order...
    others = {dst: [a for a in have if a >= 0] for dst, have in kernel.aliases.items()}
    hidden = {dst: [_record(dst, a) for a in have[1:]] for dst, have in others.items() if have[1:]}
    assert _hidden(core) == hidden
    # ... as a start from the kernel's dump finds them, and a whole re-dump changes nothing.
    fresh = _core()
    fresh.apply_all([_link(i, False) for i in sorted(kernel.down)])
    with fresh.fib.quiet():
        fresh.fib.load_routes(kernel.dump())
    assert fresh.snapshot().canonical() == core.snapshot().canonical()
    assert _hidden(fresh) == hidden
    assert core.reconcile("route", kernel.dump(), AF4) == []
    assert _hidden(core) == hidden


def test_a_whole_dump_finds_the_first_and_the_hidden_in_the_kernels_order() -> None:
    core = _core()
    core.apply(_record("10.1.0.0", 3, nlflags=CREATE_EXCL))  # the mirror's, out of date
    dump = [_record("10.1.0.0", 2), _record("10.1.0.0", 3), _record("10.1.0.0", BLACKHOLE)]
    events = core.reconcile("route", dump, AF4)
    assert [(e.kind, e.nexthops[0].gateway) for e in events] == [("route_add", "10.0.0.2")]  # type: ignore[attr-defined]
    assert core.fib.aliases.count == 2
    # The first deleted: the next forwards, in one change (no gap in between).
    events = core.apply(_record("10.1.0.0", 2, deleted=True))
    assert [(e.kind, e.nexthops[0].gateway) for e in events] == [("route_add", "10.0.0.3")]  # type: ignore[attr-defined]
    # A hidden one deleted: nothing to say.
    assert core.apply(_record("10.1.0.0", BLACKHOLE, deleted=True)) == []
    assert core.fib.aliases.count == 0


def test_a_deletion_of_a_route_never_held_asks_for_a_redump() -> None:
    core = _core()
    core.apply(_record("10.1.0.0", 2, nlflags=CREATE_EXCL))
    core.apply(_record("10.1.0.0", 3, nlflags=APPEND))
    core.redumps.clear()
    assert core.apply(_record("10.1.0.0", 4, deleted=True)) == []
    assert {(r.kind, r.family, r.oif) for r in core.redumps} == {("route", AF4, 0)}
    assert core.fib.aliases.count == 1  # unchanged until the dump says


def test_an_object_update_of_a_hidden_route_keeps_it_hidden() -> None:
    core = _core()
    core.apply(nlmsg.NhObject(False, 7, AF4, "10.0.0.3", 3, 0, False, False, ()))
    core.apply(_record("10.1.0.0", 2, nlflags=CREATE_EXCL))
    through = nlmsg.Route(False, AF4, 254, "10.1.0.0", 16, 0, 3, 1, 0, 0, (), None, 7, APPEND)
    assert core.apply(through) == []
    # The kernel tells of every route through an object that changed, with REPLACE.
    assert core.apply(through._replace(nlflags=REPLACE)) == []
    events = core.apply(_record("10.1.0.0", 2, deleted=True))
    assert isinstance(events[-1], ev.RouteAdd) and events[-1].nexthops[0].gateway == "10.0.0.3"
    # The object gone: the kernel deletes the routes through it without a word.
    core.apply(_record("10.1.0.0", 2, nlflags=PREPEND))
    core.apply(nlmsg.NhObject(True, 7, AF4, None, 0, 0, False, False, ()))
    assert core.fib.aliases.count == 0
