"""Throwaway network namespaces and bridge processes, for the demo, tests and benchmarks.

Everything here cleans up after itself (context managers), and every wait has
a timeout.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import zmq

from ifpx.schemas import codec
from ifpx.schemas import commands as c

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T], timeout: float, interval: float = 0.02, what: str = "condition"
) -> T:
    """Poll ``predicate`` until it returns something truthy; TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Netns:
    """A network namespace with helpers to run iproute2 in it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def ip(self, *args: str, check: bool = True) -> str:
        """Run ``ip -n NAME ARGS``; return stdout."""
        proc = subprocess.run(
            ["ip", "-n", self.name, *args], capture_output=True, text=True, timeout=60
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"ip -n {self.name} {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def cmd(self, line: str) -> str:
        """``ip -n NAME`` followed by ``line``, split on white space."""
        return self.ip(*line.split())

    def batch(self, lines: list[str], force: bool = False) -> None:
        """Feed ``lines`` to ``ip -batch -`` (fast bulk changes); ``force`` goes on past errors."""
        subprocess.run(
            ["ip", "-n", self.name, *(["-force"] if force else []), "-batch", "-"],
            input="\n".join(lines) + "\n",
            text=True,
            check=not force,
            timeout=600,
            capture_output=True,
        )

    def add_tap(self, name: str) -> None:
        """A persistent multi_queue tap, as net_tap needs."""
        self.ip("tuntap", "add", "dev", name, "mode", "tap", "multi_queue")


@contextmanager
def netns(prefix: str = "ifpx") -> Iterator[Netns]:
    """A fresh netns (loopback up), deleted on exit."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    try:
        ns = Netns(name)
        ns.ip("link", "set", "lo", "up")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", name], timeout=30, check=False)


class BridgeProcess:
    """``ifpx bridge`` as a subprocess, with its endpoints in a private directory."""

    def __init__(
        self,
        ns: Netns,
        workdir: Path,
        extra: list[str] | None = None,
        client_keys: tuple[bytes, bytes, bytes] | None = None,
    ) -> None:
        self.ns = ns
        self.client_keys = client_keys
        """(server public, client public, client secret) when the bridge requires CURVE."""
        self.workdir = workdir
        self.extra = extra or []
        self.events = self._flag("--events", f"ipc://{workdir}/events.sock")
        self.control = self._flag("--control", f"ipc://{workdir}/control.sock")
        self.state = workdir / "state.json"
        self.log = workdir / "bridge.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _flag(self, name: str, default: str) -> str:
        if name in self.extra:
            return self.extra[self.extra.index(name) + 1]
        return default

    def argv(self) -> list[str]:
        """The command line that starts this bridge."""
        return [
            sys.executable,
            "-m",
            "ifpx.subscribers",
            "bridge",
            "--netns",
            self.ns.name,
            "--state",
            str(self.state),
            *self.extra,
            *([] if "--events" in self.extra else ["--events", self.events]),
            *([] if "--control" in self.extra else ["--control", self.control]),
        ]

    def start(self, timeout: float = 20.0) -> None:
        """Start and wait until it answers ``hello`` (its initial dump is then complete)."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._answers, timeout, interval=0.05, what="the bridge to answer")

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"bridge exited with {self.proc.returncode}: {self.log.read_text()}")
        try:
            self.request(c.Hello(client="harness"), timeout=0.5)
            return True
        except TimeoutError:
            return False

    def request(self, cmd: c.Command, timeout: float = 10.0) -> c.Reply:
        """One command, one reply (raw, so tests can check errors)."""
        return codec.decode_reply(self.raw(codec.encode_request(cmd), timeout))

    def result(self, cmd: c.Command, timeout: float = 10.0) -> c.Result:
        """A command's result; AssertionError with the error if it failed."""
        reply = self.request(cmd, timeout)
        if isinstance(reply, c.ErrorReply):
            raise AssertionError(f"{cmd.cmd} failed: {reply.error.code}: {reply.error.message}")
        return reply.result

    def raw(self, payload: bytes | list[bytes], timeout: float = 10.0) -> bytes:
        """Send raw frames on a fresh REQ socket; return the raw reply."""
        sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        if self.client_keys is not None:
            sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = self.client_keys
        try:
            sock.connect(self.control)
            if isinstance(payload, list):
                sock.send_multipart(payload)
            else:
                sock.send(payload)
            if not sock.poll(int(timeout * 1000), zmq.POLLIN):
                raise TimeoutError(f"no reply from {self.control} in {timeout}s")
            reply: bytes = sock.recv()
            return reply
        finally:
            sock.close()

    def snapshot(self) -> c.SnapshotResult:
        """The bridge's snapshot."""
        result = self.result(c.Snapshot())
        assert isinstance(result, c.SnapshotResult)
        return result

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Signal the bridge and wait for it; SIGKILL if it lingers."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        code = self.proc.returncode
        self.proc = None
        return code


@contextmanager
def bridge(
    ns: Netns,
    extra: list[str] | None = None,
    client_keys: tuple[bytes, bytes, bytes] | None = None,
) -> Iterator[BridgeProcess]:
    """A running bridge in ``ns`` (stopped, and its directory removed, on exit)."""
    workdir = Path(tempfile.mkdtemp(prefix="ifpx-"))
    proc = BridgeProcess(ns, workdir, extra, client_keys)
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def is_root() -> bool:
    """True when running as root (netns and taps need it)."""
    return os.geteuid() == 0
