"""The bridge's subcommands, registered into ``ifpx`` through the ``ifpx.commands`` entry point."""

from __future__ import annotations

import argparse
import sys

from .config import add_arguments, resolve, setup_logging


def _bridge(ns: argparse.Namespace) -> int:
    from .daemon import run

    try:
        opts = resolve(ns)
        setup_logging(opts.log_level, opts.log_format)
    except (OSError, ValueError) as exc:  # a TOML syntax error is a ValueError too
        print(f"ifpx bridge: {exc}", file=sys.stderr)
        return 2
    return run(opts)


def _demo(ns: argparse.Namespace) -> int:
    from .testing.demo import main

    return main(keep=ns.keep, workers=ns.workers)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bridge`` and ``demo`` to the ``ifpx`` command line."""
    p = sub.add_parser("bridge", help="run the bridge (netlink -> events, commands)")
    add_arguments(p)
    p.set_defaults(func=_bridge)
    d = sub.add_parser("demo", help="a self-contained tour in a throwaway netns (root)")
    d.add_argument("--workers", type=int, default=2, help="worker subscriber processes")
    d.add_argument("--keep", action="store_true", help="leave the netns for inspection")
    d.set_defaults(func=_demo)
