"""No client can kill or bloat the bridge: connection floods, subscription floods, pipelined
snapshots (real bridge in a real netns, raw sockets as the attacker)."""

from __future__ import annotations

import resource
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
import zmq
from figures import record
from netutil import counters, mtu_reaches

from ifpx.bridge.connections import CONTROL_CONNECTIONS, CONTROL_SHARE, RESERVED_FDS
from ifpx.bridge.testing.harness import BridgeProcess, Netns, bridge, wait_for
from ifpx.schemas import codec
from ifpx.schemas import commands as c
from ifpx.subscribers import Subscriber

pytestmark = [pytest.mark.netns, pytest.mark.reliability]


class _Limited(BridgeProcess):
    """A bridge started under ``prlimit --nofile=SOFT:HARD``."""

    def __init__(self, ns: Netns, workdir: Path, extra: list[str], nofile: str) -> None:
        super().__init__(ns, workdir, ["--heartbeat", "0.5", *extra])
        self.nofile = nofile

    def argv(self) -> list[str]:
        return ["prlimit", f"--nofile={self.nofile}", "--", *super().argv()]


@contextmanager
def _started(ns: Netns, tmp_path: Path, extra: list[str], nofile: str) -> Iterator[BridgeProcess]:
    br = _Limited(ns, tmp_path, extra, nofile)
    try:
        br.start()
        yield br
    finally:
        br.stop()


def _path(endpoint: str) -> str:
    assert endpoint.startswith("ipc://")
    return endpoint[len("ipc://") :]


def _fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def _limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no descriptor limit in /proc")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_the_descriptor_limit_is_raised_to_the_hard_one(ns: Netns, tmp_path: Path) -> None:
    with _started(ns, tmp_path, [], nofile="1024:4096") as br:
        assert br.proc is not None
        assert _limit(br.proc.pid) == 4096
    assert "descriptors limit=4096 (was 1024) max_connections=3584" in br.log.read_text()


def test_a_connection_flood_is_refused_and_the_bridge_serves_on(ns: Netns, tmp_path: Path) -> None:
    flood = 1_100
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < flood + 200:
        pytest.skip(f"the test needs {flood + 200} descriptors, its hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ns.ip("link", "set", "tap0", "up")
    # 1024 and no more: the limit at which 1,100 connections aborted it.
    cap = 1024 - RESERVED_FDS - CONTROL_CONNECTIONS
    with _started(ns, tmp_path, [], nofile="1024:1024") as br:
        assert br.proc is not None
        pid = br.proc.pid
        br.result(c.Bind(port_id=0, proxy="tap0"))
        with Subscriber(br.events, br.control, heartbeat_timeout=3) as sub:
            sub.sync(timeout=10)
            socks = []
            t0 = time.monotonic()
            try:
                for _ in range(flood):
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.connect(_path(br.events))
                    socks.append(s)
                wait_for(
                    lambda: counters(br)["connections_refused"] >= flood - cap,
                    20,
                    what="the flood past the cap to be refused",
                )
                seconds = time.monotonic() - t0
                assert br.proc.poll() is None
                assert counters(br)["connections"] <= cap + CONTROL_CONNECTIONS
                assert _fds(pid) < 1024 - 64
                # What was subscribed before the flood goes on being served.
                mtu_reaches(sub, ns, 0, "tap0", 1400, "an event during the flood")
            finally:
                for s in socks:
                    s.close()
            wait_for(
                lambda: counters(br)["connections"] < 10, 20, what="the flood's connections to go"
            )
            mtu_reaches(sub, ns, 0, "tap0", 1300, "an event after the flood")
        with Subscriber(br.events, br.control) as late:
            late.sync(timeout=10)  # room again for a newcomer
        refused = counters(br)["connections_refused"]
    record(f"1,100 connections at 1024 fds (cap {cap}): refused / bridge exits", f"{refused} / 0")
    record("1,100 connections at 1024 fds: refused within (s)", f"{seconds:.2f}")


def _zmtp_sub(path: str) -> socket.socket:
    """A SUB peer spoken by hand (ZMTP 3.0, NULL): what any client can send, unfiltered."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    sock.sendall(b"\xff" + b"\0" * 8 + b"\x7f\x03\x00" + b"NULL".ljust(20, b"\0") + b"\0" * 32)
    ready = b"\x05READY\x0bSocket-Type" + struct.pack(">I", 3) + b"SUB"
    sock.sendall(b"\x04" + bytes([len(ready)]) + ready)
    return sock


def _frame(body: bytes) -> bytes:
    if len(body) < 256:
        return b"\x00" + bytes([len(body)]) + body
    return b"\x02" + struct.pack(">Q", len(body)) + body


def test_a_subscription_flood_and_a_huge_subscription_are_refused(
    br: BridgeProcess, ns: Netns
) -> None:
    assert br.proc is not None
    pid = br.proc.pid
    path = _path(br.events)
    rss0 = _rss_kib(pid)
    flood = _zmtp_sub(path)
    try:
        with suppress(OSError):  # refused while sending: what is asked for
            flood.sendall(b"".join(_frame(b"\x01flood-%d" % i) for i in range(50_000)))
        wait_for(
            lambda: counters(br)["connections_refused"] >= 1,
            20,
            what="the subscribing connection to be refused",
        )
    finally:
        flood.close()
    big = _zmtp_sub(path)
    try:
        with suppress(OSError):  # dropped by the socket, unread
            big.sendall(_frame(b"\x01" + b"x" * (20 << 20)))
        ns.ip("link", "set", "tap0", "up")
        br.result(c.Bind(port_id=0, proxy="tap0"))
        with Subscriber(br.events, br.control) as sub:
            mtu_reaches(sub, ns, 0, "tap0", 1400, "an event after the floods")
    finally:
        big.close()
    grown = (_rss_kib(pid) - rss0) // 1024
    assert br.proc.poll() is None
    assert grown < 64, f"the bridge grew {grown} MiB"
    # Refused once: what the flood had sent beyond the cap, read after its refusal (and
    # its descriptor perhaps another connection's by then), refuses nothing more.
    assert counters(br)["connections_refused"] == 1, br.log.read_text()[-3000:]
    record("50k subscriptions + one of 20 MB: bridge growth (MiB)", str(grown))


def test_pipelined_snapshots_unread_hold_a_few_replies(br: BridgeProcess, ns: Netns) -> None:
    ns.ip("link", "set", "tap0", "up")
    ns.ip("addr", "add", "192.0.2.1/24", "dev", "tap0")
    ns.batch([f"route add 10.{i >> 8}.{i & 255}.0/24 via 192.0.2.2" for i in range(5000)])
    br.result(c.Bind(port_id=0, proxy="tap0"))
    one = len(br.raw(codec.encode_request(c.Snapshot())))
    assert br.proc is not None
    pid = br.proc.pid
    rss0 = _rss_kib(pid)
    dealer: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.RCVHWM, 1)
    dealer.setsockopt(zmq.RCVBUF, 4096)
    asked = 300
    try:
        dealer.connect(br.control)
        for i in range(asked):
            dealer.send_multipart([b"", codec.encode_request(c.Snapshot(id=i + 1))])
        # Answered (or dropped) all: another client's request comes after them.
        wait_for(lambda: counters(br)["commands_ok"] >= asked, 60, what="the pipelined requests")
        grown = _rss_kib(pid) - rss0
        assert grown * 1024 < 20 * one + (16 << 20), (grown, one)
        got = 0
        while dealer.poll(500, zmq.POLLIN):
            dealer.recv_multipart()
            got += 1
        assert got < asked // 2
    finally:
        dealer.close()
    assert isinstance(br.result(c.Status()), c.StatusResult)
    record(
        f"{asked} pipelined snapshots of {one >> 10} KiB unread: bridge growth (MiB)",
        str(grown >> 10),
    )


def test_one_client_holding_the_read_only_endpoint_locks_no_worker_out(
    ns: Netns, tmp_path: Path
) -> None:
    ro = f"ipc://{tmp_path}/control-ro.sock"
    with bridge(ns, ["--heartbeat", "0.5", "--control-ro", ro]) as br:
        held = []
        try:
            for _ in range(300):  # more than the socket's 256: all from this process
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(_path(ro))
                held.append(s)
            wait_for(
                lambda: counters(br)["connections_refused"] >= 300 - CONTROL_SHARE,
                20,
                what="this process's connections past its share to be refused",
            )
            # A worker, another process, takes its snapshot from the same endpoint.
            code = (
                "import sys\n"
                "from ifpx.subscribers import Subscriber\n"
                "with Subscriber(sys.argv[1], sys.argv[2]) as s:\n"
                "    s.sync(timeout=10)\n"
                "print('synced')\n"
            )
            worker = subprocess.run(
                [sys.executable, "-c", code, br.events, ro],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert worker.stdout.strip() == "synced", worker.stderr[-2000:]
            said = br.log.read_text()
            assert f"holds its share ({CONTROL_SHARE})" in said and "its cap" not in said
        finally:
            for s in held:
                s.close()
