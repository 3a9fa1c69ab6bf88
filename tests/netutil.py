"""Helpers for the netns tests: a raw SUB socket that collects events, and state comparisons."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import zmq

from ifpx.bridge.testing.harness import BridgeProcess, Netns, bridge, wait_for
from ifpx.bridge.testing.kernelview import kernel_state
from ifpx.schemas import codec
from ifpx.schemas import commands as c
from ifpx.schemas import events as ev
from ifpx.schemas.envelope import Message
from ifpx.schemas.state import State
from ifpx.subscribers import Subscriber


class EventTap:
    """A plain SUB socket on the bridge's events, decoding everything it receives."""

    def __init__(self, endpoint: str, topics: tuple[str, ...] = ("",)) -> None:
        self.sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        for t in topics:
            self.sock.setsockopt(zmq.SUBSCRIBE, t.encode())
        self.messages: list[Message] = []
        self.events: list[ev.EventBase] = []

    def close(self) -> None:
        self.sock.close()

    def _drain(self, timeout: float) -> None:
        if self.sock.poll(int(timeout * 1000), zmq.POLLIN):
            while True:
                try:
                    frames = self.sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    return
                msg = codec.decode_message(frames)
                self.messages.append(msg)
                if msg.topic != "hb":
                    self.events.extend(msg.events)

    def ready(self, timeout: float = 5.0) -> None:
        """Wait for a heartbeat: the subscription has reached the bridge."""
        self.wait(lambda: any(m.topic == "hb" for m in self.messages), timeout, "a heartbeat")

    def wait(self, pred: Callable[[], object], timeout: float = 5.0, what: str = "events") -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            left = deadline - time.monotonic()
            if left <= 0:
                got = [e.kind for e in self.events]
                raise TimeoutError(f"no {what} within {timeout}s; got {got}")
            self._drain(min(left, 0.1))

    def expect(self, kind: str, timeout: float = 5.0, **fields: object) -> list[ev.EventBase]:
        """Wait until events of ``kind`` with ``fields`` arrived; return and consume them."""

        def matching() -> list[ev.EventBase]:
            return [
                e
                for e in self.events
                if e.kind == kind and all(getattr(e, k) == v for k, v in fields.items())
            ]

        self.wait(matching, timeout, f"{kind} {fields}")
        found = matching()
        self.events = [e for e in self.events if e not in found]
        return found

    def clear(self) -> None:
        self._drain(0.05)
        self.events.clear()


def veth_pairs(ns: Netns, count: int = 2) -> None:
    """Veth pairs v0/w0, v1/w1... up, so that the v ends have carrier; v<i> holds
    10.<i+1>.0.1/24 and 2001:db8:<i+1>::1/64."""
    for i in range(count):
        ns.cmd(f"link add v{i} type veth peer name w{i}")
        ns.cmd(f"link set w{i} up")
        ns.cmd(f"link set v{i} up")
        ns.cmd(f"addr add 10.{i + 1}.0.1/24 dev v{i}")
        ns.cmd(f"addr add 2001:db8:{i + 1}::1/64 dev v{i} nodad")


@contextmanager
def bridge_on_veths(ns: Netns, count: int = 2) -> Iterator[BridgeProcess]:
    """A bridge (heartbeat 0.5 s) with port i bound to v<i> of :func:`veth_pairs`."""
    with bridge(ns, ["--heartbeat", "0.5"]) as b:
        for port in range(count):
            assert isinstance(b.result(c.Bind(port_id=port, proxy=f"v{port}")), c.BindResult)
        yield b


def counters(br: BridgeProcess) -> dict[str, int]:
    """The bridge's ``status`` counters (a status builds no snapshot)."""
    status = br.result(c.Status())
    assert isinstance(status, c.StatusResult)
    return status.counters


def bridge_equals_kernel(br: BridgeProcess) -> tuple[bool, State, State]:
    """(equal?, bridge's canonical state, kernel's canonical state)."""
    snap = br.snapshot()
    want = snap.state.canonical()
    kernel = kernel_state(br.ns.name, snap.state.bindings).canonical()
    return want == kernel, want, kernel


def wait_bridge_equals_kernel(br: BridgeProcess, timeout: float = 15.0) -> State:
    """Wait until the bridge's snapshot equals the kernel's view; return it."""
    deadline = time.monotonic() + timeout
    while True:
        same, want, kernel = bridge_equals_kernel(br)
        if same:
            return want
        if time.monotonic() > deadline:
            raise AssertionError(f"bridge != kernel: {describe_difference(want, kernel)}")
        time.sleep(0.1)


def describe_difference(a: State, b: State, limit: int = 5) -> str:
    """A short account of how two states differ (first few items of each list)."""
    parts = []
    for name in ("bindings", "ports", "routes", "neighs"):
        left = [x.model_dump_json() for x in getattr(a, name)]
        right = [x.model_dump_json() for x in getattr(b, name)]
        only_a = sorted(set(left) - set(right))
        only_b = sorted(set(right) - set(left))
        if only_a or only_b:
            parts.append(
                f"{name}: {len(left)} vs {len(right)}; only left {only_a[:limit]}; "
                f"only right {only_b[:limit]}"
            )
    return "; ".join(parts) or "equal"


def mtu_reaches(sub: Subscriber, ns: Netns, port: int, dev: str, mtu: int, what: str) -> None:
    """Set ``dev``'s MTU with ip and wait until ``sub``'s replica shows it on ``port``."""
    sub.sync(timeout=5)
    ns.ip("link", "set", dev, "mtu", str(mtu))
    wait_for(
        lambda: sub.poll(100, 0.05) is not None and sub.state.ports[port].mtu == mtu,
        10,
        what=what,
    )


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def scrape(port: int) -> str:
    """The bridge's Prometheus text from ``--metrics 127.0.0.1:port``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text: str = r.read().decode()
    return text


def ifpx(
    br: BridgeProcess | None, *args: str, timeout: float = 30, control: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The ``ifpx`` command line against ``br`` (or the endpoints of ``control``)."""
    env = dict(os.environ)
    if br is not None:
        env.update(IFPX_EVENTS=br.events, IFPX_CONTROL=br.control)
    if control is not None:
        env.update(IFPX_CONTROL=control, IFPX_EVENTS=control + ".events")
    return subprocess.run(
        [sys.executable, "-m", "ifpx.subscribers", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
