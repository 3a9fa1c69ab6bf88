"""Bridge options: defaults, then a TOML file, then ``IFPX_*`` variables, then flags."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ifpx.schemas.endpoints import DEFAULT_CONTROL, DEFAULT_EVENTS

__all__ = [
    "DEFAULT_CONTROL",
    "DEFAULT_EVENTS",
    "DEFAULT_STATE",
    "Options",
    "add_arguments",
    "resolve",
    "setup_logging",
]

DEFAULT_STATE = "/var/lib/ifpx/state.json"


@dataclass
class Options:
    """Everything ``ifpx bridge`` can be told."""

    netns: str | None = None
    events: str = DEFAULT_EVENTS
    control: str = DEFAULT_CONTROL
    control_ro: str | None = None
    ipc_group: str | None = None
    state: str = DEFAULT_STATE
    rcvbuf: int = 64 << 20
    all_routes: bool = False
    metrics: str | None = None
    log_level: str = "info"
    log_format: str = "kv"
    curve_secret: str | None = None
    curve_clients: str | None = None
    insecure: bool = False
    hwm: int = 100_000
    journal: int = 65_536
    heartbeat: float = 1.0
    max_connections: int = 16_384
    """Connections over every socket; lowered to what the descriptor limit leaves room for."""
    test_crash: str | None = None
    """Fault tests only (``IFPX_TEST_CRASH``): see ``statefile.crash_before_rename``."""


def _coerce(name: str, raw: Any) -> Any:
    kind = {f.name: f.type for f in fields(Options)}[name]
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        return str(raw).lower() in ("1", "true", "yes", "on")
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{name.replace('_', '-')}: {raw!r} is not a number") from None
    return None if raw in (None, "") and kind.endswith("None") else str(raw)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``ifpx bridge`` flags; unset flags do not override the file or environment."""
    d = argparse.SUPPRESS
    parser.add_argument("--config", help="TOML file with the options below (keys as the flags)")
    parser.add_argument("--netns", default=d, help="listen and act in this network namespace")
    parser.add_argument("--events", default=d, help=f"PUB endpoint (default {DEFAULT_EVENTS})")
    parser.add_argument("--control", default=d, help=f"REP endpoint (default {DEFAULT_CONTROL})")
    parser.add_argument(
        "--control-ro", default=d, help="a second control endpoint that refuses changes"
    )
    parser.add_argument(
        "--ipc-group", default=d, help="group allowed to connect to ipc endpoints (0660)"
    )
    parser.add_argument("--state", default=d, help=f"bindings file (default {DEFAULT_STATE})")
    parser.add_argument("--rcvbuf", type=int, default=d, help="netlink receive buffer bytes")
    parser.add_argument(
        "--all-routes", action="store_true", default=d, help="also publish routes via unbound links"
    )
    parser.add_argument("--metrics", default=d, help="serve Prometheus metrics on ADDR:PORT")
    parser.add_argument("--log-level", default=d, help="debug, info, warning, error")
    parser.add_argument("--log-format", default=d, choices=["kv", "json"], help="log line format")
    parser.add_argument(
        "--curve-secret", default=d, help="the bridge's secret key file (ifpx keygen): CURVE on"
    )
    parser.add_argument(
        "--curve-clients", default=d, help="directory of the public keys allowed to connect"
    )
    parser.add_argument(
        "--insecure", action="store_true", default=d, help="allow tcp endpoints without CURVE"
    )
    parser.add_argument("--hwm", type=int, default=d, help="PUB high-water mark (messages)")
    parser.add_argument("--journal", type=int, default=d, help="messages kept for replay")
    parser.add_argument("--heartbeat", type=float, default=d, help="seconds between heartbeats")
    parser.add_argument(
        "--max-connections",
        type=int,
        default=d,
        help="connections held over all sockets, the excess refused (default 16384)",
    )


def resolve(ns: argparse.Namespace, environ: dict[str, str] | None = None) -> Options:
    """Merge defaults, the ``--config`` file, ``IFPX_*`` variables and flags, in that order."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config = getattr(ns, "config", None) or env.get("IFPX_CONFIG")
    names = {f.name for f in fields(Options)}
    if config:
        try:
            with Path(config).open("rb") as fh:
                doc = tomllib.load(fh)
        except OSError as exc:
            raise ValueError(f"{config}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{config}: not TOML: {exc}") from None
        section = doc.get("bridge", doc)
        for key, raw in section.items():
            name = key.replace("-", "_")
            if name not in names:
                raise ValueError(f"{config}: unknown option {key!r}")
            values[name] = _coerce(name, raw)
    for name in names:
        raw_env = env.get(f"IFPX_{name.upper()}")
        if raw_env is not None:
            values[name] = _coerce(name, raw_env)
    for name in names:
        if hasattr(ns, name):
            values[name] = getattr(ns, name)
    opts = Options(**values)
    if opts.log_format not in ("kv", "json"):
        raise ValueError(f"log format {opts.log_format!r}: kv or json")
    if opts.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError(f"log level {opts.log_level!r}: debug, info, warning or error")
    return opts


class _KVFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage().replace('"', "'")
        line = (
            f"ts={self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} level={record.levelname.lower()} "
            f'logger={record.name} msg="{msg}"'
        )
        if record.exc_info:
            line += " exc=" + repr(self.formatException(record.exc_info))
        return line


_FIELDS = re.compile(r"(?<!\S)([a-z_]+)=(\S+(?: \S+)*?)(?= [a-z_]+=|$)")


class _JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        import json

        msg = record.getMessage()
        doc: dict[str, object] = {
            "ts": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": msg,
        }
        # Our messages name their values key=value ("bind port=0 proxy=tap0"): as fields
        # here, so a log pipeline can select on them. The last value runs to the end.
        for key, value in _FIELDS.findall(msg):
            doc.setdefault(key, int(value) if value.isdigit() else value)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def setup_logging(level: str, fmt: str = "kv") -> None:
    """Structured logs on stderr: key=value lines, or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JSONFormatter() if fmt == "json" else _KVFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
