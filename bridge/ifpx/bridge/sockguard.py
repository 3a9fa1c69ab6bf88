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


def peer_of(fd: int) -> str | None:
    """Who is at the other end of the connection on ``fd``: its process (ipc, the
    kernel's SO_PEERCRED) or its address (tcp); None when that cannot be told."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return None
    try:
        if sock.family == socket.AF_UNIX:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
            return f"pid {struct.unpack('3i', creds)[0]}"
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            return f"address {sock.getpeername()[0]}"
        return None
    except OSError:
        return None
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
        self.names: dict[zmq.Socket[bytes], str] = {}
        """Per monitor: what its socket is, for the log."""
        self._inodes: dict[int, int | None] = {}
        """The events socket's connections: descriptor -> its socket when accepted. A
        subscription read later may name a descriptor closed and reused since."""

    def watch(
        self, sock: zmq.Socket[bytes], cap: int, share: int = 0, name: str = "events"
    ) -> zmq.Socket[bytes]:
        """Monitor ``sock`` (before it binds), holding at most ``cap`` connections, and at
        most ``share`` of one peer (0: no share); ``name`` says which socket in the log
        (the cap's option or constant)."""
        address = f"inproc://ifpx-monitor-{len(self.monitors)}"
        sock.monitor(address, _EVENTS)
        mon = self.ctx.socket(zmq.PAIR)
        # Unbounded: a lost close would count a connection for ever (events are small,
        # and read every loop).
        mon.setsockopt(zmq.RCVHWM, 0)
        mon.setsockopt(zmq.LINGER, 0)
        mon.connect(address)
        self.monitors.append(mon)
        table = self.tables[mon] = ConnectionTable(
            cap, share=share, subscribers=sock.type == zmq.XPUB
        )
        self.names[mon] = name
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
        return sum(
            t.refused + t.refused_share + t.subscriptions_refused for t in self.tables.values()
        )

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
                peer = peer_of(fd) if table.share else None
                shares = table.refused_share
                if not table.accepted(fd, peer):
                    shut_down(fd)
                    self._said(mon, table, peer if table.refused_share != shares else None)
            elif event == zmq.EVENT_DISCONNECTED:
                table.closed(fd, time.monotonic())
                if table.subscribers:
                    self._inodes.pop(fd, None)

    def _said(self, mon: zmq.Socket[bytes], table: ConnectionTable, peer: str | None) -> None:
        """Log a refusal (``peer``'s for its share, else for the cap): the 1st, 2nd,
        4th... of its kind (a flood is a few lines)."""
        n = table.refused_share if peer is not None else table.refused
        if n & (n - 1):
            return
        if peer is not None:
            log.warning(
                "connections refused on the %s socket: %d so far; %s holds its share (%d)",
                self.names[mon], n, peer, table.share,
            )  # fmt: skip
        else:
            log.warning(
                "connections refused on the %s socket: %d so far; %d open, its cap",
                self.names[mon], n, table.count,
            )  # fmt: skip

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
