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

from ifpx.schemas import codec
from ifpx.schemas import commands as c
from ifpx.schemas import events as ev
from ifpx.schemas.envelope import Message
from ifpx.schemas.state import SnapshotState
from ifpx.subscribers.recording import Writer

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
    assert "no bridge is listening" in proc.stderr and "ifpx bridge` running" in proc.stderr
    assert time.monotonic() - t0 < 5  # not three tries of three seconds


@pytest.mark.parametrize("command", [["ctl"], ["snapshot"], ["record"]])
def test_an_endpoint_that_never_answers_says_each_retry(command: list[str], tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on: ZeroMQ waits, silently
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [*command, "--control", f"tcp://127.0.0.1:{port}", "--timeout", "0.3"]
    args += {"ctl": ["status"], "snapshot": [], "record": [str(tmp_path / "r.ifpxrec")]}[command[0]]
    proc = _run(*args)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.splitlines()
    said = [line for line in lines if "trying again" in line]
    assert len(said) == 2 and said[0].startswith(f"ifpx {command[0]}: no reply from tcp://")
    assert "(2 of 3)" in said[0] and "(3 of 3)" in said[1]
    assert "after 3 tries" in lines[-1]


def test_a_bad_argument_is_one_line_without_links(tmp_path: Path) -> None:
    proc = _run("ctl", "--control", f"ipc://{tmp_path}/c.sock", "create-proxy", "a" * 24)
    assert proc.returncode == 2
    assert "name: 'aaaaaaaaaaaaaaaaaaaaaaaa': longer than 15 characters" in proc.stderr
    # Operators read words: no pydantic type names, regexes or documentation links.
    assert "pydantic.dev" not in proc.stderr and "constrained" not in proc.stderr
    bad = _run("ctl", "--control", f"ipc://{tmp_path}/c.sock", "bind", "0", "bad name!")
    assert bad.returncode == 2 and "proxy: 'bad name!': an interface name has no" in bad.stderr
    assert "^" not in bad.stderr and "integer" not in bad.stderr


def test_an_endpoint_given_as_a_path_gets_a_hint() -> None:
    proc = _run("ctl", "--control", "/run/ifpx/control.sock", "status")
    assert proc.returncode == 2
    assert "did you mean ipc:///run/ifpx/control.sock?" in proc.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["schema", "--out", "/proc/ifpx-schemas"], "/proc/ifpx-schemas: No such file"),
        (["record", "/nonexistent/x.ifpxrec"], "/nonexistent/x.ifpxrec: No such file"),
        (["record", "/tmp"], "/tmp: Is a directory"),
        (["recording", "show", "/nonexistent/x"], "/nonexistent/x: No such file"),
    ],
)
def test_a_path_that_cannot_be_used_is_one_line(args: list[str], says: str) -> None:
    proc = _run(*args)
    assert proc.returncode == 1, proc.stderr
    assert says in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_record_that_never_began_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    kept = tmp_path / "kept.ifpxrec"
    kept.write_bytes(b"an earlier recording")
    proc = _run("record", str(kept), "--control", f"ipc://{tmp_path}/none.sock")
    assert proc.returncode == 3 and "no bridge is listening" in proc.stderr
    assert kept.read_bytes() == b"an earlier recording"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.ifpxrec"]  # no part left


def test_recording_show_into_a_reader_that_goes_away(tmp_path: Path) -> None:
    path = tmp_path / "many.ifpxrec"
    snap = c.SnapshotResult(epoch=7, seq=0, topic_seqs={}, cfg_done=True, state=SnapshotState())
    with path.open("wb") as fh:
        w = Writer(fh, {"epoch": 7, "start": 1000.0, "topics": ["link"]})
        w.write(999.0, "snapshot", "", codec.encode_reply(c.OkReply(result=snap)))
        for i in range(1, 5000):
            msg = Message(
                epoch=7, seq=i, tseq=i, ts=1000.0, topic="link",
                events=[ev.MtuChange(port_id=0, proxy="tap0", ifindex=2, mtu=1000 + i)],
            )  # fmt: skip
            w.write(1000.0 + i, "message", "link", codec.encode_message(msg)[1])
    for form in ([], ["--json"]):
        proc = subprocess.Popen(
            [*IFPX, "recording", "show", *form, str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.readline()
        proc.stdout.close()  # as `| head -1` does
        err = proc.stderr.read().decode()
        assert proc.wait(30) == 0, err
        assert "Traceback" not in err and "Broken pipe" not in err


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


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the bridge opens netlink")
def test_a_metrics_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        proc = _run(
            "bridge", "--events", f"ipc://{tmp_path}/e.sock", "--control",
            f"ipc://{tmp_path}/c.sock", "--state", str(tmp_path / "state.json"),
            "--metrics", f"127.0.0.1:{port}",
        )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"--metrics 127.0.0.1:{port}: Address already in use" in proc.stderr


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
