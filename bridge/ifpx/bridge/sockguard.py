"""Counting the connections of the bridge's sockets, refusing the excess (thin I/O).

Each socket's monitor reports what it accepts and loses; :class:`ConnectionTable`
decides, and a refused connection is shut down under libzmq, which then closes it as
if the peer had gone (its descriptor stays libzmq's to close).
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import time

import zmq

from .connections import ConnectionTable

log = logging.getLogger("ifpx.bridge")

_EVENTS = zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED


def inode(fd: int) -> int | None:
    """The identity of the socket on ``fd`` now (None: nothing there)."""
    try:
        return os.fstat(fd).st_ino
    except OSError:
        return None


def shut_down(fd: int, ino: int | None = None) -> None:
    """End the stream connection on ``fd`` if it is still the socket ``ino`` (when
    given); anything else on it is left alone."""
    if ino is not None and inode(fd) != ino:
        return  # closed and the descriptor reused since: another connection's now
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return  # closed meanwhile
    try:
        # The descriptor may have been closed and reused since the event (rare): only
        # a stream socket, which can only be another connection of ours, is touched.
        if sock.type == socket.SOCK_STREAM and sock.family in (
            socket.AF_UNIX,
            socket.AF_INET,
            socket.AF_INET6,
        ):
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.detach()


class SocketGuard:
    """The monitors of the bridge's sockets, each feeding its socket's :class:`ConnectionTable`."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
        self.ctx = ctx
        self.tables: dict[zmq.Socket[bytes], ConnectionTable] = {}
        """Per monitor."""
        self.monitors: list[zmq.Socket[bytes]] = []
        self._xpub: ConnectionTable | None = None
        self._inodes: dict[int, int | None] = {}
        """The events socket's connections: descriptor -> its socket when accepted. A
        subscription read later may name a descriptor closed and reused since."""

    def watch(self, sock: zmq.Socket[bytes], cap: int) -> zmq.Socket[bytes]:
        """Monitor ``sock`` (before it binds), holding at most ``cap`` connections."""
        address = f"inproc://ifpx-monitor-{len(self.monitors)}"
        sock.monitor(address, _EVENTS)
        mon = self.ctx.socket(zmq.PAIR)
        # Unbounded: a lost close would count a connection for ever (events are small,
        # and read every loop).
        mon.setsockopt(zmq.RCVHWM, 0)
        mon.setsockopt(zmq.LINGER, 0)
        mon.connect(address)
        self.monitors.append(mon)
        table = self.tables[mon] = ConnectionTable(cap, subscribers=sock.type == zmq.XPUB)
        if sock.type == zmq.XPUB:
            self._xpub = table
        return mon

    @property
    def count(self) -> int:
        """Connections open on every socket."""
        return sum(t.count for t in self.tables.values())

    @property
    def refused(self) -> int:
        """Connections refused on every socket, for any reason."""
        return sum(t.refused + t.subscriptions_refused for t in self.tables.values())

    def drain(self, mon: zmq.Socket[bytes]) -> None:
        """Take every event ``mon`` has; shut down the connections refused."""
        table = self.tables[mon]
        while True:
            try:
                head, _endpoint = mon.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            event, fd = struct.unpack("=Hi", head[:6])
            if event == zmq.EVENT_ACCEPTED:
                if table.subscribers:
                    self._inodes[fd] = inode(fd)
                if not table.accepted(fd):
                    shut_down(fd)
                    if not table.refused & (
                        table.refused - 1
                    ):  # 1, 2, 4...: a flood is a few lines
                        log.warning(
                            "connections refused: %d so far; %d open, the cap (--max-connections)",
                            table.refused,
                            table.count,
                        )
            elif event == zmq.EVENT_DISCONNECTED:
                table.closed(fd, time.monotonic())
                if table.subscribers:
                    self._inodes.pop(fd, None)

    def subscription(self, frame: zmq.Frame) -> None:
        """A subscription frame from the XPUB: its connection is refused past the cap."""
        try:
            fd = frame.get(zmq.SRCFD)
        except zmq.ZMQError:
            return  # a libzmq without it: nobody is known
        table = self._xpub
        if (
            table is None
            or not isinstance(fd, int)
            or fd < 0
            or table.subscribed(fd, time.monotonic())
        ):
            return
        log.warning("connection refused: more than %d subscriptions", table.max_subscriptions)
        shut_down(fd, self._inodes.get(fd))

    def close(self) -> None:
        """Close the monitors (before the context ends)."""
        for mon in self.monitors:
            mon.close(linger=0)
