"""Both servers of the protocol, the bridge and ``ifpx replay``, answer ``hello`` alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import controlkit
import pytest
from test_replay_timing import _synthetic

from ifpx.bridge.control import CAPABILITIES
from ifpx.bridge.testing.harness import wait_for
from ifpx.schemas import commands as c
from ifpx.schemas.version import PROTOCOL_MINOR, SUPPORTED_VERSIONS
from ifpx.subscribers.client import BridgeError, ControlClient


def _bridge_hello(tmp_path: Path, versions: list[int]) -> c.Reply:
    ctl, _effects, _stream = controlkit.controller(tmp_path)
    return controlkit.run(ctl, c.Hello(client="test", versions=versions))[0]


def test_the_bridge_takes_the_highest_common_version_and_says_its_minor(tmp_path: Path) -> None:
    reply = _bridge_hello(tmp_path, [*SUPPORTED_VERSIONS, 99])
    assert isinstance(reply, c.OkReply) and isinstance(reply.result, c.HelloResult)
    assert reply.result.version == max(SUPPORTED_VERSIONS)
    assert reply.result.minor == PROTOCOL_MINOR and reply.result.capabilities == CAPABILITIES
    refused = _bridge_hello(tmp_path, [99])
    assert isinstance(refused, c.ErrorReply)
    assert refused.error.code == c.ErrorCode.UNSUPPORTED_VERSION


def test_a_replay_answers_hello_as_the_bridge_does(tmp_path: Path) -> None:
    path = tmp_path / "r.ifpxrec"
    _synthetic(path)
    control = f"ipc://{tmp_path}/ctl.sock"
    player = subprocess.Popen(
        [sys.executable, "-m", "ifpx.subscribers", "replay", str(path), "--max", "--linger",
         "30", "--events", f"ipc://{tmp_path}/ev.sock", "--control", control],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: (tmp_path / "ctl.sock").exists(), 20, what="the replay control socket")
        with ControlClient(control, timeout=5.0) as client:
            got = client.request(c.Hello(client="test", versions=[*SUPPORTED_VERSIONS, 99]))
            assert isinstance(got, c.HelloResult)
            assert (got.version, got.minor) == (max(SUPPORTED_VERSIONS), PROTOCOL_MINOR)
            assert got.server.startswith("ifpx-replay") and got.epoch == 7
            assert set(got.capabilities) == {"journal", "snapshot"}  # what a recording holds
            with pytest.raises(BridgeError) as refused:
                client.request(c.Hello(client="test", versions=[99]))
            assert refused.value.code == c.ErrorCode.UNSUPPORTED_VERSION
    finally:
        player.kill()
        player.wait(10)
