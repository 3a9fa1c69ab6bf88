"""The ``ifpx`` command line.

Subcommands that need only the wire contract live here; the bridge adds its
own (``bridge``, ``demo``) through the ``ifpx.commands`` entry point, so a
worker host can run ``ifpx watch`` without the bridge's dependencies loaded.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ifpx.schemas import commands as c
from ifpx.schemas import events as ev

from . import fmt, names
from .cli_recording import add_recording
from .clibase import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    endpoints,
    failed,
    kinds,
    print_json,
    route_form,
    snapshot_json,
)
from .client import ClientError, ControlClient
from .settings import resolve

log = logging.getLogger("ifpx")

# ---- ctl ------------------------------------------------------------------------


def _port(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} out of range 0..65535")
    return value


def _proxy(text: str) -> str | int:
    return int(text) if text.isdigit() else text


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


def _render(result: c.Result) -> str:
    if isinstance(result, c.ListBindingsResult):
        return _table(
            ["PORT", "PROXY", "IFINDEX", "STATE"],
            [[b.port_id, b.proxy, b.ifindex, b.state] for b in result.bindings],
        )
    if isinstance(result, c.BindResult):
        b = result.binding
        what = "bound" if result.changed else "already bound"
        moved = f"; moved from {result.moved_from}" if result.moved_from else ""
        return f"port {b.port_id} {what} to {b.proxy} (ifindex {b.ifindex}{moved})"
    if isinstance(result, c.UnbindResult):
        if not result.removed:
            return "nothing to unbind"
        return "\n".join(f"port {b.port_id} unbound from {b.proxy}" for b in result.removed)
    if isinstance(result, c.ProxyOfPortResult):
        b = result.binding
        return f"port {b.port_id}: {b.proxy} ifindex {b.ifindex} {b.state}"
    if isinstance(result, c.PortsOfProxyResult):
        where = f"ifindex {result.ifindex}" if result.ifindex is not None else "no such link"
        ports = ", ".join(map(str, result.port_ids)) or "none"
        return f"{result.proxy} ({where}): ports {ports}"
    if isinstance(result, c.ProxyInfoResult):
        lines = [
            f"{result.name}: ifindex {result.ifindex} mac {result.mac} mtu {result.mtu} "
            f"{'UP' if result.up else 'DOWN'}{' LOWER_UP' if result.carrier else ''}",
            f"  ports: {', '.join(map(str, result.port_ids)) or '-'}",
        ]
        lines += [f"  addr {a}" for a in result.addrs]
        return "\n".join(lines)
    if isinstance(result, c.CreateProxyResult):
        how = "created" if result.created else "existed"
        return f"{result.name}: ifindex {result.ifindex} ({how})"
    if isinstance(result, c.DestroyProxyResult):
        return f"{result.name} destroyed; {len(result.removed_bindings)} bindings removed"
    if isinstance(result, c.StatusResult):
        head = [
            f"epoch {result.epoch}  seq {result.seq}  uptime {result.uptime:.1f}s  "
            f"bindings {result.bindings}  netns {result.netns or '-'}"
        ]
        return "\n".join(head + [f"  {k:<20} {v}" for k, v in sorted(result.counters.items())])
    if isinstance(result, c.EventsAvailableResult):
        return "\n".join(result.kinds)
    if isinstance(result, c.HelloResult):
        caps = ", ".join(result.capabilities) or "-"
        return (
            f"{result.server} protocol v{result.version}.{result.minor} epoch {result.epoch}\n"
            f"  capabilities: {caps}"
        )
    if isinstance(result, c.ListWorkersResult):
        if not result.workers:
            return f"no worker reports to this bridge (seq {result.seq})"
        return _workers_table(result.workers)
    return json.dumps(result.model_dump(), indent=2)


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


def _ctl(ns: argparse.Namespace) -> int:
    commands: dict[str, Callable[[argparse.Namespace], c.Command]] = {
        "bind": lambda a: c.Bind(port_id=a.port, proxy=a.proxy),
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
            ns.control, timeout=ns.timeout, retries=ns.retries, curve=ns.curve
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


def _add_ctl(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("ctl", help="send a command to the bridge")
    endpoints(p)
    p.add_argument("--retries", type=int, default=2, help="retries after a timeout (default 2)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    # `ifpx ctl status --json` as well as `ifpx ctl --json status`.
    json_too = argparse.ArgumentParser(add_help=False)
    json_too.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    cs = p.add_subparsers(dest="ctl_cmd", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return cs.add_parser(name, help=help, parents=[json_too])

    b = command("bind", help="bind PORT to PROXY (idempotent)")
    b.add_argument("port", type=_port)
    b.add_argument("proxy", type=_proxy)
    u = command("unbind", help="unbind PORT (from PROXY only, if given)")
    u.add_argument("port", type=_port)
    u.add_argument("proxy", type=_proxy, nargs="?")
    command("list", help="all bindings")
    i = command("info", help="a proxy's configuration")
    i.add_argument("proxy", type=_proxy)
    pp = command("port", help="the proxy of PORT")
    pp.add_argument("port", type=_port)
    ps = command("ports", help="the ports of PROXY")
    ps.add_argument("proxy", type=_proxy)
    cp = command("create-proxy", help="create a multi_queue tap for net_tap")
    cp.add_argument("name")
    cp.add_argument("--mac")
    cp.add_argument("--mtu", type=int)
    dp = command("destroy-proxy", help="remove a tap ifpx made, and its bindings")
    dp.add_argument("name")
    dp.add_argument("--force", action="store_true", help="remove it even if ifpx did not make it")
    command("status", help="epoch, sequence, counters")
    command("events-available", help="event kinds this bridge delivers")
    command("hello", help="protocol version and epoch")
    command("workers", help="the workers reporting to the bridge: applied, lag, state")
    w = command("wait", help="wait until every worker has applied a sequence number")
    at = w.add_mutually_exclusive_group()
    at.add_argument("--seq", type=int, help="this sequence number")
    at.add_argument("--now", action="store_true", help="the bridge's sequence number now (default)")
    w.add_argument(
        "--worker",
        action="append",
        metavar="NAME",
        help="this worker (repeat; default: every live one)",
    )
    w.add_argument(
        "--timeout",
        dest="wait_timeout",
        type=float,
        default=30.0,
        help="give up after this many seconds and name the laggards (default 30)",
    )
    p.set_defaults(func=_ctl)


# ---- snapshot / watch -----------------------------------------------------------


def _snapshot(ns: argparse.Namespace) -> int:
    try:
        with ControlClient(ns.control, timeout=ns.timeout, curve=ns.curve) as client:
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


def _watch(ns: argparse.Namespace) -> int:
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


def _add_watch(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    w = sub.add_parser("watch", help="live events, one line each (like ip monitor)")
    endpoints(w)
    w.add_argument("--json", action="store_true", help="JSON lines")
    w.add_argument(
        "--kind", action="extend", type=kinds, help="only these kinds (or families: route, ...)"
    )
    w.add_argument("--port", action="append", type=_port, help="only these ports")
    route_form(w)
    w.add_argument("--no-snapshot", action="store_true", help="do not print the current state")
    w.add_argument("--count", type=int, default=0, help="exit after N events")
    w.set_defaults(func=_watch)
    s = sub.add_parser("snapshot", help="the bridge's current state")
    endpoints(s)
    s.add_argument("--json", action="store_true", help="JSON")
    s.set_defaults(func=_snapshot)


# ---- record / replay / recording ---------------------------------------------------


def _schema(ns: argparse.Namespace) -> int:
    from ifpx.schemas import jsonschema

    if ns.out:
        paths = jsonschema.write(Path(ns.out))
        print(f"wrote {len(paths)} schemas to {ns.out}")
    else:
        print_json(jsonschema.schemas())
    return EXIT_OK


def _version() -> str:
    try:
        return version("ifpx")
    except PackageNotFoundError:
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The full ``ifpx`` parser, plugins included."""
    parser = argparse.ArgumentParser(
        prog="ifpx", description="IF proxy bridge for DPDK: Linux proxy config as events"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"ifpx {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for ep in entry_points(group="ifpx.commands"):
        try:
            ep.load()(sub)
        except ImportError as exc:  # the bridge's dependencies may be absent on a worker host
            log.debug("subcommands from %s unavailable: %s", ep.name, exc)
    _add_ctl(sub)
    _add_watch(sub)
    add_recording(sub)
    kg = sub.add_parser("keygen", help="make a CURVE key pair (NAME.key, NAME.key_secret)")
    kg.add_argument("dir")
    kg.add_argument("--name", default="ifpx", help="file name stem (default ifpx)")
    kg.add_argument("--force", action="store_true", help="replace an existing key pair")
    kg.set_defaults(func=_keygen)
    sc = sub.add_parser("schema", help="JSON Schema of every event, command and reply")
    sc.add_argument("--out", help="directory to write <name>.schema.json files into")
    sc.set_defaults(func=_schema)
    co = sub.add_parser("completion", help="shell completion: source <(ifpx completion bash)")
    co.add_argument("shell", choices=["bash", "zsh"], help="zsh: after bashcompinit")
    co.set_defaults(func=lambda _ns: _completion(parser))
    return parser


def _completion(parser: argparse.ArgumentParser) -> int:
    from .completion import bash

    print(bash(parser), end="")
    return EXIT_OK


def _keygen(ns: argparse.Namespace) -> int:
    from .security import keygen

    pair = [Path(ns.dir) / f"{ns.name}{ext}" for ext in (".key", ".key_secret")]
    existing = [p for p in pair if p.exists()]
    if existing and not ns.force:
        print(f"ifpx keygen: {existing[0]} exists; --force replaces the key pair", file=sys.stderr)
        return EXIT_USAGE
    public, secret = keygen(ns.dir, ns.name)
    print(f"public key: {public}\nsecret key: {secret} (keep it private)")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ifpx`` console script."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    if getattr(ns, "client_endpoints", False):
        # The environment is read here, once; everything below takes the values.
        try:
            settings = resolve(ns.events, ns.control, ns.curve_server_key, ns.curve_cert)
        except ClientError as exc:
            return failed("ifpx", exc)
        ns.events, ns.control, ns.curve = settings.events, settings.control, settings.curve
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.DEBUG if ns.verbose else logging.WARNING,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
    try:
        status: int = ns.func(ns)
    except BrokenPipeError:
        # A reader that went away (`ifpx watch | head`) is not an error of ours. Point
        # stdout at /dev/null so the interpreter's final flush does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        print(file=sys.stderr)  # after the terminal's ^C
        return EXIT_INTERRUPTED
    except OSError as exc:
        # A path that cannot be written or read (a directory, /proc, a missing parent):
        # the operator's to fix, said in one line.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"ifpx {ns.command}: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    return status


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
