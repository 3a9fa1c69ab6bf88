"""The ``ifpx`` command line: its parser, and the dispatch to each subcommand.

Subcommands that need only the wire contract live in this package, each in a
``cli_*`` module imported when it runs: ``--help``, ``--version`` and completion load
neither the schemas nor ZeroMQ. The bridge adds its own (``bridge``, ``demo``) through
the ``ifpx.commands`` entry point, so a worker host can run ``ifpx watch`` without the
bridge's dependencies loaded.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path

from .clibase import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    endpoints,
    failed,
    kinds,
    print_json,
    route_form,
)
from .errors import ClientError

log = logging.getLogger("ifpx")


def _later(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """The subcommand ``module.name``, imported when it runs."""

    def run(ns: argparse.Namespace) -> int:
        command: Callable[[argparse.Namespace], int] = getattr(
            import_module(f".{module}", __package__), name
        )
        return command(ns)

    return run


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
    b.add_argument(
        "--exclusive",
        action="store_true",
        help="refuse if PORT is bound to another proxy that exists (instead of moving it)",
    )
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
    p.set_defaults(func=_later("cli_ctl", "ctl"))


# ---- snapshot / watch -----------------------------------------------------------


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
    w.set_defaults(func=_later("cli_watch", "watch"))
    s = sub.add_parser("snapshot", help="the bridge's current state")
    endpoints(s)
    s.add_argument("--json", action="store_true", help="JSON")
    s.set_defaults(func=_later("cli_watch", "snapshot"))


# ---- record / replay / recording ---------------------------------------------------


def _add_recording(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``record``, ``replay`` and ``recording`` to the ``ifpx`` command line."""
    r = sub.add_parser("record", help="record the event stream (snapshot first) to FILE")
    endpoints(r)
    r.add_argument("file")
    r.add_argument("--count", type=int, default=0, help="stop after N messages")
    r.add_argument("--duration", type=float, default=0.0, help="stop after S seconds")
    r.add_argument(
        "--kind", action="extend", type=kinds, help="only these kinds (or families: route, ...)"
    )
    route_form(r)
    r.set_defaults(func=_later("cli_recording", "record"))
    p = sub.add_parser("replay", help="serve a recording as a bridge would")
    endpoints(p)
    p.add_argument("file")
    speed = p.add_mutually_exclusive_group()
    speed.add_argument("--speed", type=float, default=1.0, help="time scale (2 = twice as fast)")
    speed.add_argument("--max", action="store_true", help="as fast as possible")
    p.add_argument("--loop", action="store_true", help="start again at the end (new epoch)")
    p.add_argument("--linger", type=float, default=2.0, help="seconds to keep serving at the end")
    p.set_defaults(func=_later("cli_recording", "replay"))
    s = sub.add_parser("recording", help="inspect a recording")
    s.add_argument("action", choices=["show", "verify"])
    s.add_argument("file")
    s.add_argument("--json", action="store_true", help="JSON lines (show)")
    s.set_defaults(func=_later("cli_recording", "recording"))


# ---- schema, keygen, completion -------------------------------------------------


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
    _add_recording(sub)
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
        from .settings import resolve

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
