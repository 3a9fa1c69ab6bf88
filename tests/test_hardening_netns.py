"""The bridge against bad luck and bad actors: a full disk, a second bridge, a hostile request.

Real processes in a real netns, a real tmpfs for the full disk; each test prints
the figure `make reliability` collects.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import zmq
from figures import record
from netutil import mtu_reaches

from ifpx.bridge.testing.harness import BridgeProcess, Netns, bridge, wait_for
from ifpx.schemas import codec
from ifpx.schemas import commands as c
from ifpx.subscribers import Subscriber

pytestmark = [pytest.mark.netns, pytest.mark.reliability]


def _bound(br: BridgeProcess) -> list[int]:
    listing = br.result(c.ListBindings())
    assert isinstance(listing, c.ListBindingsResult)
    return [b.port_id for b in listing.bindings]


def _agrees(sub: Subscriber, br: BridgeProcess, timeout: float = 15) -> None:
    def same() -> bool:
        sub.poll(max_events=100_000, timeout=0.05)
        if sub.repairing or not sub.synced:
            return False
        snap = br.snapshot()
        return sub.epoch == snap.epoch and sub.state.to_state() == snap.state.canonical()

    wait_for(same, timeout, interval=0.01, what="the subscriber to agree with the bridge")


def _refused(code: c.ErrorCode, reply: c.Reply) -> str:
    assert isinstance(reply, c.ErrorReply), reply
    assert reply.error.code == code, reply.error
    return reply.error.message


def _ask(endpoint: str, payload: bytes) -> c.Reply:
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send(payload)
        assert sock.poll(5000, zmq.POLLIN), f"no reply on {endpoint}"
        return codec.decode_reply(sock.recv())
    finally:
        sock.close()


def test_a_bool_request_id_on_the_read_only_endpoint(ns: Netns, tmp_path: Path) -> None:
    ro = f"ipc://{tmp_path}/ro.sock"
    with bridge(ns, ["--control-ro", ro]) as br:
        payload = msgpack.packb({"v": 1, "id": True, "cmd": "status"})
        answered = 0
        for endpoint in (ro, br.control) * 5:
            _refused(c.ErrorCode.BAD_REQUEST, _ask(endpoint, payload))
            answered += 1
        assert br.proc is not None and br.proc.poll() is None
        assert isinstance(br.result(c.Status()), c.StatusResult)
    record("request id true: typed errors / bridge exits", f"{answered}/10 / 0")


def test_a_request_over_64_kib_gets_a_typed_error_at_once(br: BridgeProcess) -> None:
    big = msgpack.packb({"v": 1, "id": 5, "cmd": "status", "pad": b"x" * (100 << 10)})
    t0 = time.monotonic()
    reply = codec.decode_reply(br.raw(big, timeout=5))
    seconds = time.monotonic() - t0
    _refused(c.ErrorCode.TOO_LARGE, reply)
    assert reply.id == 0  # not read: an oversized request is not decoded at all
    record("100 KiB request: answered too_large in (s)", f"{seconds:.3f}")


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "ifpx-test", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(disk: Path) -> Path:
    fill = disk / "fill"
    fd = os.open(fill, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return fill


def test_a_full_disk_refuses_changes_and_loses_nothing(
    ns: Netns, tmp_path: Path, tiny_disk: Path
) -> None:
    work = tmp_path / "run"
    work.mkdir()
    br = BridgeProcess(ns, work, ["--heartbeat", "0.5"])
    br.state = tiny_disk / "state.json"
    try:
        br.start()
        br.result(c.Bind(port_id=0, proxy="tap0"))
        ns.ip("link", "set", "tap0", "up")
        with Subscriber(br.events, br.control, heartbeat_timeout=2, request_timeout=1) as sub:
            sub.sync(timeout=5)
            fill = _fill(tiny_disk)
            refused = 0
            for _ in range(2):  # the retry must be refused just the same, not "already bound"
                why = _refused(
                    c.ErrorCode.STATE_NOT_SAVED, br.request(c.Bind(port_id=2, proxy="tap0"))
                )
                assert "No space left on device" in why
                _refused(c.ErrorCode.STATE_NOT_SAVED, br.request(c.Unbind(port_id=0)))
                refused += 2
            assert _bound(br) == [0]
            assert sorted(p.name for p in tiny_disk.iterdir()) == [
                "fill",
                "state.json",
                "state.json.lock",
            ]  # no temp file left behind
            _agrees(sub, br)
            assert sorted(sub.state.ports) == [0]

            # Killed while the disk is full: it cannot write its new epoch, so it says so.
            assert br.proc is not None
            br.proc.send_signal(signal.SIGKILL)
            br.proc.wait(10)
            br.proc = None
            stuck = subprocess.run(br.argv(), capture_output=True, text=True, timeout=60)
            assert stuck.returncode == 2 and "No space left on device" in stuck.stderr
            assert "Traceback" not in stuck.stderr

            fill.unlink()
            br.start()
            assert _bound(br) == [0]
            _agrees(sub, br)
            assert sorted(sub.state.ports) == [0]
            br.result(c.Bind(port_id=2, proxy="tap0"))
            _agrees(sub, br)
            assert sorted(sub.state.ports) == [0, 2]
    finally:
        br.stop()
    record("full disk: changes refused state_not_saved / acknowledged lost", f"{refused} / 0")


def _second(ns: Netns, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "ifpx.subscribers", "bridge", "--netns", ns.name, *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_a_second_bridge_cannot_take_over_a_live_or_stopped_one(
    ns: Netns, br: BridgeProcess, tmp_path: Path
) -> None:
    other_ctl, other_ev = f"ipc://{tmp_path}/c2.sock", f"ipc://{tmp_path}/e2.sock"
    other_state = str(tmp_path / "s2.json")
    state = str(br.state)
    attempts = {
        "same events and state": ("--events", br.events, "--control", other_ctl, "--state", state),
        "same state only": ("--events", other_ev, "--control", other_ctl, "--state", state),
        "same events only": ("--events", br.events, "--control", other_ctl, "--state", other_state),
        "same control only": (
            "--events",
            other_ev,
            "--control",
            br.control,
            "--state",
            other_state,
        ),
    }
    refused = 0
    for what, args in attempts.items():
        proc = _second(ns, *args)
        assert proc.returncode == 2, (what, proc.stderr)
        assert "belongs to a running bridge" in proc.stderr, (what, proc.stderr)
        refused += 1
    assert br.proc is not None
    br.proc.send_signal(signal.SIGSTOP)  # stopped: it answers nothing, yet it is alive
    try:
        proc = _second(ns, "--events", br.events, "--control", br.control, "--state", state)
        assert proc.returncode == 2 and "belongs to a running bridge" in proc.stderr
        refused += 1
    finally:
        br.proc.send_signal(signal.SIGCONT)
    # The first bridge still owns everything: a subscriber of its events sees a change.
    br.result(c.Bind(port_id=0, proxy="tap0"))
    with Subscriber(br.events, br.control) as sub:
        mtu_reaches(sub, ns, 0, "tap0", 1300, "the first bridge's event")
    assert json.loads(br.state.read_text())["bindings"][0]["port_id"] == 0
    record("second bridge (live or SIGSTOPped first): refused / took over", f"{refused} / 0")


def test_epochs_grow_even_when_the_clock_goes_back(ns: Netns, br: BridgeProcess) -> None:
    first = br.snapshot().epoch
    with Subscriber(br.events, br.control, heartbeat_timeout=2, request_timeout=1) as sub:
        sub.sync(timeout=5)
        br.stop()
        doc = json.loads(br.state.read_text())
        assert doc["epoch"] == first
        # As if the bridge that wrote it had a clock eleven days ahead of this one.
        doc["epoch"] = first + 10**15
        br.state.write_text(json.dumps(doc))
        br.start()
        second = br.snapshot().epoch
        assert second == first + 10**15 + 1
        br.result(c.Bind(port_id=1, proxy="tap1"))
        _agrees(sub, br)
        assert sub.epoch == second and sorted(sub.state.ports) == [1]
    record("clock stepped back: next epoch is saved epoch + 1", "yes")


def test_bad_state_files_are_refused_with_a_clear_error(ns: Netns, tmp_path: Path) -> None:
    cases = {
        "bool port": json.dumps({"format": 1, "bindings": [{"port_id": True, "proxy": "tap0"}]}),
        "long name": json.dumps(
            {"format": 1, "bindings": [{"port_id": 0, "proxy": "averyveryverylongname123"}]}
        ),
        "duplicate": json.dumps(
            {
                "format": 1,
                "bindings": [{"port_id": 0, "proxy": "t0"}, {"port_id": 0, "proxy": "t1"}],
            }
        ),
        "directory": None,
        "read-only": None,
    }
    readonly = tmp_path / "ro"
    readonly.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,ro", "ifpx-test", str(readonly)])
    try:
        for what, text in cases.items():
            state = readonly / "state.json" if what == "read-only" else tmp_path / what
            if what == "directory":
                state.mkdir()
            elif text is not None:
                state.write_text(text)
            _refuses_to_start(ns, tmp_path, state, what)
    finally:
        subprocess.run(["umount", "-l", str(readonly)], check=False)
    record("bad state files: clear refusals", f"{len(cases)}/{len(cases)}")


def _refuses_to_start(ns: Netns, tmp_path: Path, state: Path, what: str) -> None:
    proc = _second(
        ns,
        *("--events", f"ipc://{tmp_path}/e.sock", "--control", f"ipc://{tmp_path}/c.sock"),
        *("--state", str(state)),
    )
    assert proc.returncode == 2, (what, proc.stderr)
    assert "Traceback" not in proc.stderr and str(state) in proc.stderr, (what, proc.stderr)
