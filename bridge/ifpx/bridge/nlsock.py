"""Raw rtnetlink sockets: the multicast listener and the dump requester (thin I/O)."""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Iterator

from . import nlmsg, nlrequest

log = logging.getLogger(__name__)

SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NETLINK_GET_STRICT_CHK = 12
SO_RCVBUFFORCE = 33
RECV_SIZE = 1 << 20
"""Room for any datagram: the kernel never truncates what we read."""


def recv_buffer() -> memoryview:
    """A reusable buffer for :func:`recv`.

    ``sock.recv(RECV_SIZE)`` would allocate (and fault in) a fresh megabyte for every
    datagram, then shrink it: 16 us per datagram here, where a route change is one
    datagram. Reading into one buffer and copying out the bytes costs 0.3 us.
    """
    return memoryview(bytearray(RECV_SIZE))


class Overrun(Exception):
    """The kernel dropped messages for this socket (ENOBUFS): the mirror must resync."""


class DumpInterrupted(Exception):
    """The kernel flagged a dump as inconsistent (NLM_F_DUMP_INTR); dump again."""


def _set_rcvbuf(sock: socket.socket, size: int) -> int:
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except PermissionError:
        # Without CAP_NET_ADMIN the kernel caps us at net.core.rmem_max.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    got: int = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    return got


def open_listener(rcvbuf: int) -> socket.socket:
    """A socket bound to the link, address, route, neighbour and next-hop multicast groups."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
    got = _set_rcvbuf(sock, rcvbuf)
    sock.bind((0, nlmsg.ALL_GROUPS))
    try:
        sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, nlmsg.RTNLGRP_NEXTHOP)
    except OSError as exc:  # a kernel before 5.3: no next-hop objects to follow
        log.info("no next-hop object notifications: %s", exc)
    log.debug("netlink listener bound, rcvbuf=%d (asked %d)", got, rcvbuf)
    return sock


def recv(sock: socket.socket, buf: memoryview) -> bytes:
    """One datagram, read through ``buf`` (see :func:`recv_buffer`); :class:`Overrun` on ENOBUFS."""
    try:
        size = sock.recv_into(buf)
    except OSError as exc:
        if exc.errno == errno.ENOBUFS:
            raise Overrun() from None
        raise
    return bytes(buf[:size])


class Dumper:
    """Sends dump requests on its own socket and yields the decoded records."""

    def __init__(self, rcvbuf: int = 32 << 20) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        _set_rcvbuf(self._sock, rcvbuf)
        self._sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
        self._sock.bind((0, 0))
        self._seq = 0
        self._buf = recv_buffer()

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()

    def _run(self, build: bytes, gone_is_empty: bool = False) -> Iterator[nlmsg.Record]:
        self._sock.send(build)
        while True:
            size = self._sock.recv_into(self._buf)
            data = bytes(self._buf[:size])
            for rec in nlmsg.decode(data):
                cls = rec.__class__
                if cls is not nlmsg.Done and cls is not nlmsg.Error:
                    yield rec  # first: a dump is a million records and one Done
                    continue
                if isinstance(rec, nlmsg.Done):
                    if rec.interrupted:
                        raise DumpInterrupted()
                    if rec.error == errno.ENODEV and gone_is_empty:
                        return  # filtered on an interface that no longer exists: nothing
                    if rec.error:
                        raise OSError(rec.error, f"netlink dump failed: {os.strerror(rec.error)}")
                    return
                if isinstance(rec, nlmsg.Error):
                    if rec.errno:
                        raise OSError(rec.errno, f"netlink dump failed: {rec.errno}")
                    return

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def links(self) -> Iterator[nlmsg.Record]:
        """Every link."""
        return self._run(nlrequest.dump_links(self._next_seq()))

    def addrs(self) -> Iterator[nlmsg.Record]:
        """Every IPv4 and IPv6 address."""
        return self._run(nlrequest.dump_addrs(self._next_seq()))

    def routes(self, family: int, oif: int = 0) -> Iterator[nlmsg.Record]:
        """Every route of ``family`` (only those using ``oif`` when given)."""
        return self._run(
            nlrequest.dump_routes(self._next_seq(), family, oif), gone_is_empty=bool(oif)
        )

    def nexthops(self) -> Iterator[nlmsg.Record]:
        """Every next-hop object (nothing on a kernel without them)."""
        try:
            yield from self._run(nlrequest.dump_nexthops(self._next_seq()))
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.EAFNOSUPPORT):
                raise

    def rules(self, family: int) -> Iterator[nlmsg.Record]:
        """Every policy rule of ``family``."""
        return self._run(nlrequest.dump_rules(self._next_seq(), family))

    def neighs(self) -> Iterator[nlmsg.Record]:
        """Every neighbour entry."""
        return self._run(nlrequest.dump_neighs(self._next_seq()))
