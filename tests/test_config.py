"""Bridge options: defaults < TOML file < IFPX_* variables < flags."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ifpx.bridge.config import DEFAULT_EVENTS, add_arguments, resolve


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(argv)


def test_precedence(tmp_path: Path) -> None:
    cfg = tmp_path / "bridge.toml"
    cfg.write_text(
        '[bridge]\nnetns = "blue"\ncontrol = "ipc:///tmp/c.sock"\nrcvbuf = 1048576\n'
        "all-routes = true\n"
    )
    opts = resolve(_parse(["--config", str(cfg)]), environ={})
    assert (opts.netns, opts.control, opts.rcvbuf, opts.all_routes) == (
        "blue", "ipc:///tmp/c.sock", 1048576, True,
    )  # fmt: skip
    assert opts.events == DEFAULT_EVENTS
    env = {"IFPX_CONTROL": "tcp://127.0.0.1:5555", "IFPX_RCVBUF": "2048", "IFPX_ALL_ROUTES": "0"}
    opts = resolve(_parse(["--config", str(cfg)]), environ=env)
    assert (opts.control, opts.rcvbuf, opts.all_routes) == ("tcp://127.0.0.1:5555", 2048, False)
    opts = resolve(_parse(["--config", str(cfg), "--rcvbuf", "4096"]), environ=env)
    assert opts.rcvbuf == 4096 and opts.netns == "blue"


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("netnz = 'x'\n")
    with pytest.raises(ValueError, match="netnz"):
        resolve(_parse(["--config", str(cfg)]), environ={})


def test_json_logs_carry_the_messages_values_as_fields() -> None:
    import json
    import logging

    from ifpx.bridge.config import _JSONFormatter

    record = logging.LogRecord(
        "ifpx.bridge.control", logging.INFO, __file__, 1, "bind port=%d proxy=%s", (3, "tap0"), None
    )
    doc = json.loads(_JSONFormatter().format(record))
    assert doc["msg"] == "bind port=3 proxy=tap0"
    assert doc["port"] == 3 and doc["proxy"] == "tap0" and doc["level"] == "info"
    record = logging.LogRecord(
        "x", logging.WARNING, __file__, 1, "resync reason=%s", ("a b",), None
    )
    assert json.loads(_JSONFormatter().format(record))["reason"] == "a b"
