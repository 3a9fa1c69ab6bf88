"""``ifpx ctl``: one command to the bridge, its result in words or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from functools import singledispatch
from typing import Any

from pydantic import ValidationError

from ifpx.schemas import commands as c

from .clibase import EXIT_OK, EXIT_USAGE, failed, print_json, saying
from .client import ClientError, ControlClient


def _printable(text: str) -> str:
    # Cells come from other processes (a worker's host, its client name): a newline would
    # forge a row, an escape sequence reach the terminal.
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [headers] + [["-" if v is None else _printable(str(v)) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


@singledispatch
def _render(result: c.Result) -> str:
    """A result in words: each type its own below, JSON for the rest."""
    return json.dumps(result.model_dump(), indent=2)


@_render.register
def _bindings(result: c.ListBindingsResult) -> str:
    return _table(
        ["PORT", "PROXY", "IFINDEX", "STATE"],
        [[b.port_id, b.proxy, b.ifindex, b.state] for b in result.bindings],
    )


@_render.register
def _bound(result: c.BindResult) -> str:
    b = result.binding
    what = "bound" if result.changed else "already bound"
    moved = f"; moved from {result.moved_from}" if result.moved_from else ""
    return f"port {b.port_id} {what} to {b.proxy} (ifindex {b.ifindex}{moved})"


@_render.register
def _unbound(result: c.UnbindResult) -> str:
    if not result.removed:
        return "nothing to unbind"
    return "\n".join(f"port {b.port_id} unbound from {b.proxy}" for b in result.removed)


@_render.register
def _proxy_of_port(result: c.ProxyOfPortResult) -> str:
    b = result.binding
    return f"port {b.port_id}: {b.proxy} ifindex {b.ifindex} {b.state}"


@_render.register
def _ports_of_proxy(result: c.PortsOfProxyResult) -> str:
    where = f"ifindex {result.ifindex}" if result.ifindex is not None else "no such link"
    ports = ", ".join(map(str, result.port_ids)) or "none"
    return f"{result.proxy} ({where}): ports {ports}"


@_render.register
def _proxy_info(result: c.ProxyInfoResult) -> str:
    lines = [
        f"{result.name}: ifindex {result.ifindex} mac {result.mac} mtu {result.mtu} "
        f"{'UP' if result.up else 'DOWN'}{' LOWER_UP' if result.carrier else ''}",
        f"  ports: {', '.join(map(str, result.port_ids)) or '-'}",
    ]
    lines += [f"  addr {a}" for a in result.addrs]
    return "\n".join(lines)


@_render.register
def _created(result: c.CreateProxyResult) -> str:
    how = "created" if result.created else "existed"
    return f"{result.name}: ifindex {result.ifindex} ({how})"


@_render.register
def _destroyed(result: c.DestroyProxyResult) -> str:
    return f"{result.name} destroyed; {len(result.removed_bindings)} bindings removed"


@_render.register
def _status(result: c.StatusResult) -> str:
    head = [
        f"epoch {result.epoch}  seq {result.seq}  uptime {result.uptime:.1f}s  "
        f"bindings {result.bindings}  netns {result.netns or '-'}"
    ]
    return "\n".join(head + [f"  {k:<20} {v}" for k, v in sorted(result.counters.items())])


@_render.register
def _kinds(result: c.EventsAvailableResult) -> str:
    return "\n".join(result.kinds)


@_render.register
def _hello(result: c.HelloResult) -> str:
    caps = ", ".join(result.capabilities) or "-"
    return (
        f"{result.server} protocol v{result.version}.{result.minor} epoch {result.epoch}\n"
        f"  capabilities: {caps}"
    )


@_render.register
def _workers(result: c.ListWorkersResult) -> str:
    if not result.workers:
        return f"no worker reports to this bridge (seq {result.seq})"
    return _workers_table(result.workers)


def _workers_table(workers: list[c.WorkerInfo]) -> str:
    def repairs(w: c.WorkerInfo) -> int:
        return w.counters.get("journal_repairs", 0) + w.counters.get("snapshot_repairs", 0)

    headers = ["NAME", "STATE", "APPLIED", "LAG", "LAG_S", "LAST_S", "HOST", "PID", "CLIENT"]
    rows: list[list[Any]] = [
        [
            *(w.name, w.state, w.applied_seq, w.lag_seq, f"{w.lag_seconds:.3f}"),
            *(f"{w.last_report:.1f}", w.host or None, w.pid or None, w.client or None),
            *(w.counters.get("gaps", 0), repairs(w), w.counters.get("callback_errors", 0)),
            w.restarts,
        ]
        for w in workers
    ]
    return _table([*headers, "GAPS", "REPAIRS", "CB_ERRORS", "RESTARTS"], rows)


def _wait(ns: argparse.Namespace, client: ControlClient) -> int:
    seq = None if ns.now or ns.seq is None else ns.seq
    result = client.wait_applied(seq, ns.worker or None, timeout=ns.wait_timeout)
    if ns.json:
        print_json(result.model_dump())
    elif result.done:
        print(f"applied through seq {result.seq} by {len(result.workers)} workers")
    elif not result.workers:
        print(
            f"ifpx ctl wait: no worker reported to this bridge in {ns.wait_timeout:g}s: "
            f"nothing can have applied seq {result.seq}",
            file=sys.stderr,
        )
    else:
        names = ", ".join(f"{w.name} ({w.state}, applied {w.applied_seq})" for w in result.waiting)
        print(
            f"ifpx ctl wait: seq {result.seq} not applied after {ns.wait_timeout:g}s by: {names}",
            file=sys.stderr,
        )
    return EXIT_OK if result.done else 1


def ctl(ns: argparse.Namespace) -> int:
    """Run ``ifpx ctl``."""
    commands: dict[str, Callable[[argparse.Namespace], c.Command]] = {
        "bind": lambda a: c.Bind(port_id=a.port, proxy=a.proxy, exclusive=a.exclusive),
        "unbind": lambda a: c.Unbind(port_id=a.port, proxy=a.proxy),
        "list": lambda a: c.ListBindings(),
        "info": lambda a: c.ProxyInfo(proxy=a.proxy),
        "port": lambda a: c.ProxyOfPort(port_id=a.port),
        "ports": lambda a: c.PortsOfProxy(proxy=a.proxy),
        "create-proxy": lambda a: c.CreateProxy(
            name=a.name, mac=a.mac.lower() if a.mac else None, mtu=a.mtu
        ),
        "destroy-proxy": lambda a: c.DestroyProxy(name=a.name, force=a.force),
        "status": lambda a: c.Status(),
        "events-available": lambda a: c.EventsAvailable(),
        "hello": lambda a: c.Hello(client="ifpx-ctl"),
        "workers": lambda a: c.ListWorkers(),
        "wait": lambda a: c.WaitApplied(seq=a.seq, workers=a.worker or None),
    }
    try:
        cmd = commands[ns.ctl_cmd](ns)
    except ValueError as exc:
        print(f"ifpx ctl: invalid arguments: {_why(exc)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with ControlClient(
            ns.control,
            timeout=ns.timeout,
            retries=ns.retries,
            curve=ns.curve,
            on_retry=saying("ifpx ctl"),
        ) as client:
            if ns.ctl_cmd == "wait":
                return _wait(ns, client)
            result = client.request(cmd)
    except ClientError as exc:
        if ns.json:  # the failure as JSON too, for scripts that asked for JSON
            doc = {"ok": False, "error": {"code": exc.kind, "message": str(exc)}}
            print(json.dumps(doc), file=sys.stderr)
            return exc.exit_status
        return failed("ifpx ctl", exc)
    if ns.json:
        print_json(result.model_dump())
    else:
        print(_render(result))
    return EXIT_OK


def _why(exc: ValueError) -> str:
    """A validation error as one line an operator reads: per field, what the value must
    be, without pydantic's type names, regexes and documentation links."""
    if not isinstance(exc, ValidationError):
        return str(exc)
    said: dict[str, tuple[object, list[str]]] = {}
    for e in exc.errors(include_url=False):
        # A field that takes one of several types (a proxy's name or ifindex) reports
        # each branch under the branch's type name: one line for the field instead.
        loc = [str(p) for p in e["loc"] if not str(p).startswith(("constrained-", "function-"))]
        field = ".".join(loc) or "value"
        entry = said.setdefault(field, (e.get("input"), []))
        if e["type"] in ("int_parsing", "int_type") and isinstance(e.get("input"), str):
            continue  # the name branch of a name-or-index says what is wrong
        reason = _reason(e["type"], e.get("ctx", {}), e["msg"])
        if reason not in entry[1]:
            entry[1].append(reason)
    return "; ".join(
        f"{field}: {value!r}: {' or '.join(why) or 'not valid'}"
        for field, (value, why) in said.items()
    )


def _reason(kind: str, ctx: dict[str, Any], msg: str) -> str:
    if kind == "string_pattern_mismatch":
        return _PATTERNS.get(str(ctx.get("pattern")), "not of the form it must have")
    if kind == "string_too_long":
        return f"longer than {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        return "empty" if ctx.get("min_length") == 1 else msg
    return msg


_PATTERNS = {
    r"^[^\s/]+$": "an interface name has no spaces and no '/'",
    r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$": "a MAC address is six hex bytes, 02:00:00:00:00:01",
    r"^[!-~]+$": "printable characters only, no spaces",
    r"^[^\x00-\x1f\x7f]*$": "no control characters",
}
"""What the schemas' patterns mean, in words."""
