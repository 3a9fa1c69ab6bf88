"""Topics: the first frame of every published message, used for filtering at the socket.

Every topic has its own sequence counter (``tseq``) besides the global ``seq``,
so a subscriber that filters out some topics still sees a gap in the ones it
kept. Heartbeats carry the latest ``tseq`` of every topic, so a loss at the tail
shows up too. The ``port``, ``sync`` and ``hb`` topics are always subscribed:
bindings, ``cfg_done``/resync markers and heartbeats concern every replica.

Routes travel in two forms: ``route`` carries each route with its next hops
(flat), ``fib`` carries next-hop groups and routes that refer to a group by id
(so one event tells every route through a group that a hop died). A subscriber
takes one of the two; the bridge publishes a form only while someone takes it.
"""

from __future__ import annotations

from typing import Literal

Topic = Literal["link", "addr", "route", "fib", "rule", "neigh", "port", "sync", "hb"]

TOPICS: tuple[Topic, ...] = (
    "link",
    "addr",
    "route",
    "fib",
    "rule",
    "neigh",
    "port",
    "sync",
    "hb",
)
"""All topics. No topic is a prefix of another, so ZeroMQ prefix matching is exact."""

TOPIC_ORDER: tuple[Topic, ...] = (
    "link",
    "addr",
    "route",
    "neigh",
    "port",
    "sync",
    "hb",
    "rule",
    "fib",
)
"""The topics in the order they came: bit i of the C library's topic masks is topic i
(``ifpx.schemas.cgen``). Append only."""

ALWAYS_SUBSCRIBED: tuple[Topic, ...] = ("port", "sync", "hb")
"""Topics every subscriber takes whatever its kind filter."""

KIND_TOPIC: dict[str, Topic] = {
    "mac_change": "link",
    "mtu_change": "link",
    "link_change": "link",
    "addr_add": "addr",
    "addr_del": "addr",
    "addr6_add": "addr",
    "addr6_del": "addr",
    "route_add": "route",
    "route_del": "route",
    "route6_add": "route",
    "route6_del": "route",
    "nhgroup_set": "fib",
    "nhgroup_del": "fib",
    "groute_add": "fib",
    "groute_del": "fib",
    "groute6_add": "fib",
    "groute6_del": "fib",
    "rule_add": "rule",
    "rule_del": "rule",
    "rule6_add": "rule",
    "rule6_del": "rule",
    "neigh_add": "neigh",
    "neigh_del": "neigh",
    "neigh6_add": "neigh",
    "neigh6_del": "neigh",
    "port_bound": "port",
    "port_unbound": "port",
    "proxy_gone": "port",
    "proxy_renamed": "port",
    "proxy_back": "port",
    "cfg_done": "sync",
    "resync_begin": "sync",
    "resync_end": "sync",
    "heartbeat": "hb",
}
"""The topic each event kind is published on."""


RouteForm = Literal["flat", "group"]
"""How a subscriber takes routes: ``flat`` (topic ``route``) or ``group`` (topic ``fib``)."""

FORM_TOPIC: dict[RouteForm, Topic] = {"flat": "route", "group": "fib"}
"""The topic of each route form."""


def topics_for_kinds(kinds: set[str] | None, form: RouteForm = "flat") -> set[Topic]:
    """Topics a subscriber must take to receive ``kinds``.

    With ``kinds`` None: every topic, with routes in ``form`` only.
    """
    if kinds is None:
        other = FORM_TOPIC["group" if form == "flat" else "flat"]
        return set(TOPICS) - {other}
    unknown = kinds - KIND_TOPIC.keys()
    if unknown:
        raise ValueError(f"unknown event kinds: {', '.join(sorted(unknown))}")
    return {KIND_TOPIC[k] for k in kinds} | set(ALWAYS_SUBSCRIBED)
