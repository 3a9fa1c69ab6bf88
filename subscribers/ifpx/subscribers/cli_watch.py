"""``ifpx snapshot`` and ``ifpx watch``: the bridge's state, and its changes as they come."""

from __future__ import annotations

import argparse
import json
import signal
import sys

from ifpx.schemas import commands as c
from ifpx.schemas import events as ev

from . import fmt, names
from .clibase import EXIT_OK, EXIT_UNREACHABLE, failed, print_json, saying, snapshot_json
from .client import ClientError, ControlClient


def snapshot(ns: argparse.Namespace) -> int:
    """Run ``ifpx snapshot``."""
    try:
        with ControlClient(
            ns.control, timeout=ns.timeout, curve=ns.curve, on_retry=saying("ifpx snapshot")
        ) as client:
            snap = client.request(c.Snapshot())
    except ClientError as exc:
        return failed("ifpx snapshot", exc)
    assert isinstance(snap, c.SnapshotResult)
    state = snap.state.canonical()  # once: a full table's is costly to make
    if ns.json:
        print_json(snapshot_json(snap, state))
        return EXIT_OK
    print(f"epoch {snap.epoch} seq {snap.seq}")
    for b in state.bindings:
        print(f"port {b.port_id} -> {b.proxy} (ifindex {b.ifindex}) {b.state}")
    for p in state.ports:
        link = fmt.link_state(p.up, p.carrier)
        print(f"port {p.port_id} {p.proxy}: mac {p.mac} mtu {p.mtu} {link}")
        for a in p.addrs:
            print(f"    {fmt.addr_label(a)} {a}")
    for r in state.routes:
        hops = fmt.hop_list(r.nexthops)
        what = hops if r.type == "unicast" else r.type
        src = f" src {r.prefsrc}" if r.prefsrc else ""
        print(
            f"route {r.dst} table {names.table(r.table)} proto {names.proto(r.proto)}"
            f" metric {r.metric}{src}: {what}"
        )
    for n in state.neighs:
        print(f"neigh port {n.port_id} {n.ip} lladdr {n.mac} {n.state}")
    for rule in state.rules:
        print(f"rule{'' if rule.family == 4 else '6'} {fmt.rule_text(rule)}")
    return EXIT_OK


def watch(ns: argparse.Namespace) -> int:
    """Run ``ifpx watch``."""
    from .subscriber import Subscriber

    kinds = set(ns.kind) if ns.kind else None
    # A watcher is no worker: it reports nothing, so `ctl wait` never waits for it.
    sub = Subscriber(
        ns.events,
        ns.control,
        kinds=kinds,
        ports=ns.port or None,
        curve=ns.curve,
        report_interval=None,
        routes=ns.routes,
    )
    stop = False

    def _on_signal(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        try:
            sub.sync(timeout=ns.timeout)
        except TimeoutError as exc:
            print(f"ifpx watch: bridge not reachable: {exc}", file=sys.stderr)
            return EXIT_UNREACHABLE
        print(f"# synced: epoch {sub.epoch} seq {sub.seq}", file=sys.stderr, flush=True)
        if ns.no_snapshot:
            sub.poll(max_events=1 << 30)  # the initial state: consumed, not shown
        seen = 0
        misses = sub.stats.heartbeat_misses
        while not stop:
            batch = sub.poll(max_events=256, timeout=0.2)
            if sub.stats.heartbeat_misses != misses:
                # Say so while it lasts, rather than go silent (it repeats per timeout).
                misses = sub.stats.heartbeat_misses
                print(
                    f"# no heartbeat from the bridge for {sub.heartbeat_timeout:g}s:"
                    " is it running? waiting for it",
                    file=sys.stderr,
                    flush=True,
                )
            for e in batch:
                if not _shown(e, kinds, ns.port):
                    continue
                if ns.json:
                    print(json.dumps(e.model_dump()), flush=True)
                else:
                    print(fmt.line(e), flush=True)
                seen += 1
                if ns.count and seen >= ns.count:
                    return EXIT_OK
    finally:
        sub.close()
    return EXIT_OK


def _shown(e: ev.EventBase, kinds: set[str] | None, ports: list[int] | None) -> bool:
    """What ``watch`` prints: exactly the kinds asked for (the subscriber also hands on
    bindings and resync markers), and of the ports asked for, their own events and the
    routes with a next hop through one of them, and the drop routes (they apply to all)."""
    if kinds is not None and e.kind not in kinds:
        return False
    if ports:
        if isinstance(e, ev.PortScoped):
            return e.port_id in ports
        hops = getattr(e, "nexthops", None)
        if hops is not None and getattr(e, "type", "unicast") == "unicast":
            return any(h.port_id in ports for h in hops)
    return True
