"""Shared fixtures: network namespaces with taps, and bridges running in them."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from ifpx.bridge.testing.harness import BridgeProcess, Netns, bridge, is_root, netns

sys.path.insert(0, str(Path(__file__).parent))
from netutil import bridge_on_veths, veth_pairs

from ifpx.subscribers import Subscriber

# In CI the property tests run a fixed sequence of examples, so a submission's result
# does not depend on the luck of the draw; locally they explore new examples every run.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

needs_root = pytest.mark.skipif(
    not is_root(), reason="needs root: creates network namespaces and taps"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "netns" in item.keywords:
            item.add_marker(needs_root)


@pytest.fixture
def ns() -> Iterator[Netns]:
    """A fresh namespace with taps tap0 and tap1 (down, no addresses)."""
    with netns("ifpx-test") as n:
        n.add_tap("tap0")
        n.add_tap("tap1")
        yield n


@pytest.fixture
def br(ns: Netns) -> Iterator[BridgeProcess]:
    """A bridge in ``ns``."""
    with bridge(ns, ["--heartbeat", "0.5"]) as b:
        yield b


@pytest.fixture
def vns() -> Iterator[Netns]:
    """Two veth pairs v0/w0 and v1/w1, up, so that the v ends have carrier."""
    with netns("ifpx-veth") as n:
        veth_pairs(n)
        yield n


@pytest.fixture
def vbr(vns: Netns) -> Iterator[BridgeProcess]:
    """A bridge with port i bound to v<i>."""
    with bridge_on_veths(vns) as b:
        yield b


@pytest.fixture
def sub(vbr: BridgeProcess) -> Iterator[Subscriber]:
    """A Python subscriber of ``vbr``, synced."""
    s = Subscriber(vbr.events, vbr.control)
    s.sync(timeout=10)
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in list(os.environ):
        if var.startswith("IFPX_"):
            monkeypatch.delenv(var)
