"""Replay keeps the recorded spacing at --speed 1: the spacing error, measured at a subscriber."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

from ifpx.schemas import codec
from ifpx.schemas import commands as c
from ifpx.schemas import events as ev
from ifpx.schemas.envelope import Message
from ifpx.schemas.state import SnapshotState
from ifpx.subscribers.recording import Writer

SPACING = [0.002, 0.010, 0.005, 0.020]  # seconds between consecutive messages, cycled
COUNT = 200


def _synthetic(path: Path) -> list[float]:
    times = [0.0]
    for i in range(1, COUNT):
        times.append(times[-1] + SPACING[i % len(SPACING)])
    snap = c.SnapshotResult(epoch=7, seq=0, topic_seqs={}, cfg_done=True, state=SnapshotState())
    with path.open("wb") as fh:
        w = Writer(fh, {"epoch": 7, "start": 1000.0, "topics": ["link"]})
        w.write(999.0, "snapshot", "", codec.encode_reply(c.OkReply(result=snap)))
        for i, t in enumerate(times, start=1):
            msg = Message(
                epoch=7, seq=i, tseq=i, ts=1000.0 + t, topic="link",
                events=[ev.MtuChange(port_id=0, proxy="tap0", ifindex=2, mtu=1000 + i)],
            )  # fmt: skip
            w.write(1000.0 + t, "message", "link", codec.encode_message(msg)[1])
    return times


def test_spacing_error_at_speed_1(tmp_path: Path) -> None:
    path = tmp_path / "paced.ifpxrec"
    times = _synthetic(path)
    events = f"ipc://{tmp_path}/ev.sock"
    sub: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"link")
    sub.connect(events)
    player = subprocess.Popen(
        [sys.executable, "-m", "ifpx.subscribers", "replay", str(path), "--speed", "1",
         "--linger", "0", "--events", events, "--control", f"ipc://{tmp_path}/ctl.sock"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    got: dict[int, float] = {}
    try:
        deadline = time.monotonic() + 30
        while len(got) < COUNT and time.monotonic() < deadline:
            if sub.poll(500, zmq.POLLIN):
                msg = codec.decode_message(sub.recv_multipart())
                got[msg.seq] = time.monotonic()
            elif player.poll() is not None:
                break
        player.wait(30)
    finally:
        player.kill()
        sub.close()
    assert player.returncode == 0, player.stderr.read() if player.stderr else ""
    errors = [
        abs((got[s] - got[s - 1]) - (times[s - 1] - times[s - 2]))
        for s in sorted(got)
        if s - 1 in got
    ]
    assert len(errors) > COUNT // 2  # most of the stream arrived (the first ones may predate SUB)
    errors.sort()
    p50 = statistics.median(errors) * 1e3
    p99 = errors[int(len(errors) * 0.99) - 1] * 1e3
    print(f"replay spacing error over {len(errors)} gaps: p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    # Generous: a shared 2-core machine. A replay that ignored the spacing would be off by
    # the spacing itself (2-20 ms) on every message.
    assert p50 < 1.5


def test_loop_starts_a_new_epoch_each_time(tmp_path: Path) -> None:
    from ifpx.bridge.testing.harness import wait_for
    from ifpx.subscribers import Subscriber

    path = tmp_path / "loop.ifpxrec"
    _synthetic(path)
    events, control = f"ipc://{tmp_path}/ev.sock", f"ipc://{tmp_path}/ctl.sock"
    player = subprocess.Popen(
        [sys.executable, "-m", "ifpx.subscribers", "replay", str(path), "--loop", "--speed", "20",
         "--events", events, "--control", control],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with Subscriber(events, control) as sub:
            sub.sync(timeout=10)
            first = sub.epoch
            wait_for(
                lambda: sub.poll(10_000, 0.05) is not None and sub.epoch != first,
                20,
                what="a second loop",
            )
            assert sub.stats.epochs >= 1 and sub.state.ports[0].mtu > 1000
        player.terminate()
        _, err = player.communicate(timeout=10)
    finally:
        player.kill()
    assert player.returncode == 0, err


def _one_message(path: Path, pause: float) -> None:
    """A recording of a snapshot and, ``pause`` seconds later, one message."""
    snap = c.SnapshotResult(epoch=9, seq=0, topic_seqs={}, cfg_done=True, state=SnapshotState())
    msg = Message(
        epoch=9, seq=1, tseq=1, ts=1000.0 + pause, topic="link",
        events=[ev.MtuChange(port_id=0, proxy="tap0", ifindex=2, mtu=1400)],
    )  # fmt: skip
    with path.open("wb") as fh:
        w = Writer(fh, {"epoch": 9, "start": 1000.0, "topics": ["link"]})
        w.write(1000.0, "snapshot", "", codec.encode_reply(c.OkReply(result=snap)))
        w.write(1000.0 + pause, "message", "link", codec.encode_message(msg)[1])


def test_the_pause_before_the_first_message_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "pause.ifpxrec"
    _one_message(path, pause=1.0)
    events = f"ipc://{tmp_path}/ev.sock"
    sub: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"link")
    sub.connect(events)
    started = time.monotonic()
    player = subprocess.Popen(
        [sys.executable, "-m", "ifpx.subscribers", "replay", str(path), "--linger", "0",
         "--events", events, "--control", f"ipc://{tmp_path}/ctl.sock"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # A subscriber that attaches while the replay starts still gets the message.
        assert sub.poll(10_000, zmq.POLLIN), "the recorded message never came"
        arrived = time.monotonic() - started
        assert codec.decode_message(sub.recv_multipart()).seq == 1
        player.wait(30)
    finally:
        player.kill()
        sub.close()
    assert player.returncode == 0
    assert arrived >= 0.9, f"sent {arrived:.2f}s after start: the recorded 1s pause was dropped"


def test_loop_over_an_instant_does_not_spin(tmp_path: Path) -> None:
    from ifpx.bridge.testing.harness import wait_for
    from ifpx.subscribers import ControlClient

    path = tmp_path / "instant.ifpxrec"
    _one_message(path, pause=0.0)
    control = f"ipc://{tmp_path}/ctl.sock"
    player = subprocess.Popen(
        [sys.executable, "-m", "ifpx.subscribers", "replay", str(path), "--loop", "--speed",
         "0.5", "--events", f"ipc://{tmp_path}/ev.sock", "--control", control],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: (tmp_path / "ctl.sock").exists(), 10, what="the replay's control socket")
        with ControlClient(control) as ctl:
            first = ctl.request(c.Status())
            time.sleep(2.5)  # the span whose loop count is measured, not a synchronisation
            last = ctl.request(c.Status())
        assert isinstance(first, c.StatusResult) and isinstance(last, c.StatusResult)
        # One heartbeat (1 s) between plays, at speed 0.5: two seconds a loop.
        assert last.counters["loops"] - first.counters["loops"] <= 2
    finally:
        player.terminate()
        player.wait(10)


def test_a_bad_payload_under_a_good_checksum_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.ifpxrec"
    _synthetic(path)
    with path.open("ab") as fh:
        w = Writer.__new__(Writer)  # appending to the recording made above
        w._fh, w.count = fh, 0
        w.write(2000.0, "message", "link", b"\x93\x01\x02")  # msgpack, but no message
    done = subprocess.run(
        [sys.executable, "-m", "ifpx.subscribers", "replay", str(path), "--max",
         "--linger", "0", "--events", f"ipc://{tmp_path}/ev.sock",
         "--control", f"ipc://{tmp_path}/ctl.sock"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"record {COUNT + 1} at offset" in done.stderr and "not a valid message" in done.stderr


def test_a_loop_keeps_bounded_lateness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ifpx.subscribers import replayer

    monkeypatch.setattr(replayer, "LATENESS_KEPT", 50)
    stats = replayer.ReplayStats()
    for i in range(1000):
        stats.lateness.append(float(i))
    assert list(stats.lateness) == [float(i) for i in range(950, 1000)]  # the latest
