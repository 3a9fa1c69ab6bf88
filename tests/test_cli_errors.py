"""The command line as an operator meets it when things are wrong: one clear line, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import controlkit
import pytest

IFPX = [sys.executable, "-m", "ifpx.subscribers"]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("IFPX_")}
    full_env.update(env or {})
    return subprocess.run(
        [*IFPX, *args], capture_output=True, text=True, timeout=60, env=full_env, check=False
    )


def test_version() -> None:
    proc = _run("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("ifpx ")


def test_no_bridge_is_said_at_once_with_a_hint(tmp_path: Path) -> None:
    t0 = time.monotonic()
    proc = _run("ctl", "--control", f"ipc://{tmp_path}/none.sock", "status")
    assert proc.returncode == 3
    assert "no bridge is listening" in proc.stderr and "ifpx bridge` running?" in proc.stderr
    assert time.monotonic() - t0 < 5  # not three tries of three seconds


def test_a_bad_argument_is_one_line_without_links(tmp_path: Path) -> None:
    proc = _run("ctl", "--control", f"ipc://{tmp_path}/c.sock", "create-proxy", "a" * 24)
    assert proc.returncode == 2
    assert "at most 15 characters" in proc.stderr and "pydantic.dev" not in proc.stderr


def test_a_reader_that_goes_away_is_no_error() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IFPX_")}
    proc = subprocess.Popen(
        [*IFPX, "schema"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(10)
    proc.stdout.close()  # as `| head -c 10` does
    err = proc.stderr.read().decode()
    assert proc.wait(30) == 0 and "Traceback" not in err and "BrokenPipe" not in err


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--config", "/nonexistent/ifpx.toml"], {}, "No such file"),
        (["--log-level", "verbose"], {}, "log level 'verbose'"),
        ([], {"IFPX_LOG_FORMAT": "yaml"}, "log format 'yaml'"),
        ([], {"IFPX_RCVBUF": "lots"}, "rcvbuf: 'lots' is not a number"),
    ],
)
def test_bridge_options_that_cannot_be_used(
    args: list[str], env: dict[str, str], says: str
) -> None:
    proc = _run("bridge", *args, env=env)
    assert proc.returncode == 2 and says in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_bridge_config_file_with_an_unknown_key_or_bad_syntax(tmp_path: Path) -> None:
    for text, says in (('colour = "red"\n', "unknown option 'colour'"), ("[bridge\n", "not TOML")):
        path = tmp_path / "ifpx.toml"
        path.write_text(text)
        proc = _run("bridge", "--config", str(path))
        assert proc.returncode == 2 and says in proc.stderr and "Traceback" not in proc.stderr


def test_a_bare_metrics_port_is_served_on_loopback_only(tmp_path: Path) -> None:
    from ifpx.bridge import metrics

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    class _Bridge:
        latest_stats = controlkit.zero_stats(epoch=3)

    metrics.serve(_Bridge(), str(port))  # type: ignore[arg-type]
    listening = []
    with open("/proc/net/tcp") as fh:
        for line in fh.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.split(":")
            if int(hexport, 16) == port and state == "0A":  # LISTEN
                listening.append(addr)
    assert listening == ["0100007F"]  # 127.0.0.1, not 0.0.0.0


def test_json_after_the_subcommand_and_failures_as_json(tmp_path: Path) -> None:
    import json

    for args in (["--json", "status"], ["status", "--json"]):
        proc = _run("ctl", "--control", f"ipc://{tmp_path}/none.sock", *args)
        assert proc.returncode == 3, proc.stderr
        doc = json.loads(proc.stderr)
        assert doc == {
            "ok": False,
            "error": {"code": "unreachable", "message": doc["error"]["message"]},
        }


def test_keygen_does_not_overwrite_a_key_pair_unless_forced(tmp_path: Path) -> None:
    assert _run("keygen", str(tmp_path), "--name", "w1").returncode == 0
    secret = (tmp_path / "w1.key_secret").read_bytes()
    again = _run("keygen", str(tmp_path), "--name", "w1")
    assert again.returncode == 2 and "--force" in again.stderr
    assert (tmp_path / "w1.key_secret").read_bytes() == secret
    assert _run("keygen", str(tmp_path), "--name", "w1", "--force").returncode == 0
    assert (tmp_path / "w1.key_secret").read_bytes() != secret


def test_kind_takes_families_as_ip_monitor_names_them() -> None:
    from ifpx.subscribers.clibase import kinds

    assert kinds("route") == kinds("ro") == ["route6_add", "route6_del", "route_add", "route_del"]
    assert kinds("address") == kinds("addr") and "neigh6_del" in kinds("neighbour")
    assert kinds("mtu_change") == ["mtu_change"]
    proc = _run("watch", "--kind", "bogus")
    assert proc.returncode == 2 and "unknown kind 'bogus'" in proc.stderr
