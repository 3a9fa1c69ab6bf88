"""What every ``ifpx`` subcommand shares: exit statuses, endpoint flags, output helpers."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import BridgeUnreachable, ClientError

if TYPE_CHECKING:
    from ifpx.schemas import commands as c
    from ifpx.schemas.state import RouteState, State

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130
"""Ctrl-C, as a shell reports a process SIGINT ended (128 + 2)."""


def endpoints(p: argparse.ArgumentParser) -> None:
    """The flags that say where the bridge is (resolved once, in ``main``)."""
    p.add_argument("--events", default=None, help="PUB endpoint (IFPX_EVENTS)")
    p.add_argument("--control", default=None, help="control endpoint (IFPX_CONTROL)")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds per try (default 3)")
    p.add_argument(
        "--curve-server-key",
        help="the bridge's public key file, for tcp+CURVE (IFPX_CURVE_SERVER_KEY)",
    )
    p.add_argument("--curve-cert", help="this client's secret key file (IFPX_CURVE_CERT)")
    p.set_defaults(client_endpoints=True)


def print_json(doc: Any) -> None:
    """``doc`` as indented JSON on stdout."""
    print(json.dumps(doc, indent=2, sort_keys=False))


def saying(prog: str) -> Callable[[str], None]:
    """What a command passes as ``on_retry``: each retry said on stderr as it begins."""
    return lambda why: print(f"{prog}: {why}", file=sys.stderr, flush=True)


def failed(prog: str, exc: ClientError) -> int:
    """Say why a command got no result; return the exit status for it."""
    what = "bridge not reachable: " if isinstance(exc, BridgeUnreachable) else ""
    print(f"{prog}: {what}{exc}", file=sys.stderr)
    return exc.exit_status


def _route_json(r: RouteState) -> dict[str, Any]:
    doc = r.model_dump()
    dst, plen = doc.pop("dst").rsplit("/", 1)
    return {"family": doc.pop("family"), "dst": dst, "prefixlen": int(plen), **doc}


def snapshot_json(snap: c.SnapshotResult, state: State | None = None) -> dict[str, Any]:
    """The documented JSON form of a snapshot (see README); ``state`` is its canonical
    form when the caller has it already (a full table's is costly to make)."""
    state = snap.state.canonical() if state is None else state
    return {
        "epoch": snap.epoch,
        "seq": snap.seq,
        "cfg_done": snap.cfg_done,
        "bindings": [b.model_dump() for b in state.bindings],
        "ports": {str(p.port_id): p.model_dump(exclude={"port_id"}) for p in state.ports},
        # Split as the route events are: the address in "dst", its length in "prefixlen".
        "routes": [_route_json(r) for r in state.routes],
        "neighs": [n.model_dump() for n in state.neighs],
        "rules": [r.model_dump() for r in state.rules],
    }


_FAMILIES = {
    "link": "link",
    "addr": "addr",
    "address": "addr",
    "route": "route",
    "fib": "fib",
    "rule": "rule",
    "neigh": "neigh",
    "neighbour": "neigh",
    "neighbor": "neigh",
}


def kind_words() -> list[str]:
    """What ``--kind`` takes: every event kind and every family name."""
    from ifpx.schemas.events import EVENT_TYPES

    return [*sorted(EVENT_TYPES), *sorted(set(_FAMILIES.values()))]


def kinds(text: str) -> list[str]:
    """``--kind``: an event kind, or a family as ``ip monitor`` names it (``route``,
    ``addr``, ``link``, ``neigh``, or a prefix of one: ``ro``) for all its kinds;
    ``fib`` for the routes by next-hop group."""
    # Here rather than at the top: the parser is built for --help without the schemas.
    from ifpx.schemas.events import EVENT_TYPES
    from ifpx.schemas.topics import KIND_TOPIC

    if text in EVENT_TYPES:
        return [text]
    topics = {topic for name, topic in _FAMILIES.items() if text and name.startswith(text)}
    if len(topics) != 1:
        raise argparse.ArgumentTypeError(
            f"unknown kind {text!r}: an event kind, or link, addr, route, fib, rule or neigh"
        )
    topic = topics.pop()
    return sorted(kind for kind, t in KIND_TOPIC.items() if t == topic)


def route_form(parser: argparse.ArgumentParser) -> None:
    """``--routes``: the form routes come in (the group form needs a bridge of minor 3)."""
    parser.add_argument(
        "--routes",
        choices=["flat", "group"],
        default="flat",
        help="routes flat (route_add with next hops; default) or by next-hop group "
        "(nhgroup_set, groute_add)",
    )
