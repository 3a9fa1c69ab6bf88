"""The control client's errors, one family mapped at the edge (no root, real sockets)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import zmq

from ifpx.schemas import commands as c
from ifpx.subscribers import (
    BridgeUnreachable,
    ClientError,
    ConfigurationError,
    ControlClient,
    ProtocolError,
)
from ifpx.subscribers.settings import resolve


def _answer_once(endpoint: str, reply: bytes) -> threading.Thread:
    rep: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.REP)
    rep.setsockopt(zmq.LINGER, 0)
    rep.bind(endpoint)

    def serve() -> None:
        try:
            if rep.poll(5000, zmq.POLLIN):
                rep.recv()
                rep.send(reply)
        finally:
            rep.close()

    thread = threading.Thread(target=serve)
    thread.start()
    return thread


def test_each_failure_is_a_client_error_with_its_exit_status(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as bad:
        ControlClient("nonsense://x", timeout=0.2, retries=0).request(c.Status())
    assert bad.value.exit_status == 2
    with pytest.raises(BridgeUnreachable, match="no such socket file") as gone:
        ControlClient(f"ipc://{tmp_path}/nobody.sock", timeout=5, retries=3).request(c.Status())
    assert gone.value.exit_status == 3
    silent = f"ipc://{tmp_path}/silent.sock"
    mute: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.REP)
    mute.setsockopt(zmq.LINGER, 0)
    mute.bind(silent)  # there, but never answers
    try:
        with pytest.raises(BridgeUnreachable, match="after 2 tries"):
            ControlClient(silent, timeout=0.2, retries=1).request(c.Status())
    finally:
        mute.close()
    endpoint = f"ipc://{tmp_path}/garbage.sock"
    thread = _answer_once(endpoint, b"\xc1 not msgpack")
    with pytest.raises(ProtocolError) as garbled:
        ControlClient(endpoint, timeout=2, retries=0).request(c.Status())
    thread.join(5)
    assert isinstance(garbled.value, ClientError) and garbled.value.exit_status == 1


def test_settings_come_from_flags_then_the_environment_then_the_defaults() -> None:
    env = {"IFPX_EVENTS": "ipc:///tmp/e.sock", "IFPX_CONTROL": "ipc:///tmp/c.sock"}
    assert resolve(environ={}).events == "ipc:///run/ifpx/events.sock"
    assert resolve(environ=env).control == "ipc:///tmp/c.sock"
    assert resolve("tcp://127.0.0.1:1", environ=env).events == "tcp://127.0.0.1:1"
    with pytest.raises(ConfigurationError):
        resolve(environ={"IFPX_CURVE_SERVER_KEY": "/nonexistent", "IFPX_CURVE_CERT": "/none"})
