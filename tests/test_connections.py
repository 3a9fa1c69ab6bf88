"""Which connections the bridge refuses: over the cap, or subscribing without end (pure);
and that refusing one touches no other (real sockets)."""

from __future__ import annotations

import os
import socket

from ifpx.bridge.connections import (
    CONTROL_CONNECTIONS,
    RESERVED_FDS,
    STALE_FRAMES,
    STALE_SECONDS,
    ConnectionTable,
    cap_for,
)
from ifpx.bridge.sockguard import inode, shut_down


def test_the_cap_leaves_room_under_the_descriptor_limit() -> None:
    assert cap_for(16_384, 1024) == 1024 - RESERVED_FDS - CONTROL_CONNECTIONS
    assert cap_for(16_384, 2048, controls=2) == 2048 - RESERVED_FDS - 2 * CONTROL_CONNECTIONS
    assert cap_for(100, 1 << 20) == 100
    assert cap_for(100, 10) == 1  # a limit below the reserve still serves someone


def test_connections_over_the_cap_are_refused_and_room_comes_back() -> None:
    table = ConnectionTable(cap=3)
    assert [table.accepted(fd) for fd in (10, 11, 12, 13, 14)] == [True] * 3 + [False] * 2
    assert table.count == 3 and table.refused == 2
    table.closed(13)  # a refused one going: nothing held for it
    assert table.count == 3
    table.closed(11)
    assert table.accepted(15) and not table.accepted(16)
    # A descriptor seen accepted twice (its close lost) is one connection, not two.
    assert table.accepted(10) and table.count == 3


def test_one_peer_holds_at_most_its_share_and_the_others_get_in() -> None:
    table = ConnectionTable(cap=10, share=3)
    assert [table.accepted(fd, "pid 7") for fd in range(10, 15)] == [True] * 3 + [False] * 2
    assert table.refused_share == 2 and table.refused == 0 and table.count == 3
    # Another process, and one whose peer is not known, get in.
    assert table.accepted(20, "pid 8") and table.accepted(21, None)
    # One of its own closed: room for it again.
    table.closed(11)
    assert table.accepted(30, "pid 7") and not table.accepted(31, "pid 7")
    # A descriptor seen accepted twice (its close lost) moves to its new peer.
    assert table.accepted(10, "pid 8")
    assert table.accepted(32, "pid 7") and table.count == 6


def test_a_connection_subscribing_without_end_is_refused() -> None:
    table = ConnectionTable(cap=10, max_subscriptions=4)
    table.accepted(7)
    assert all(table.subscribed(7) for _ in range(4))
    assert not table.subscribed(7) and table.subscriptions_refused == 1
    # What it had sent beyond comes after: refused once, not again for each.
    assert all(table.subscribed(7) for _ in range(100)) and table.subscriptions_refused == 1
    assert table.count == 1  # open until its close is seen
    assert table.subscribed(99)  # not seen accepted yet: given the benefit of the doubt
    table.closed(7)
    table.accepted(7)  # the descriptor reused by a new connection starts afresh
    assert table.subscribed(7)


def test_what_a_closed_connection_sent_counts_against_no_one_for_a_while() -> None:
    table = ConnectionTable(cap=10, max_subscriptions=4, subscribers=True)
    table.accepted(7)
    assert all(table.subscribed(7, 99.0) for _ in range(4)) and not table.subscribed(7, 99.0)
    table.closed(7, now=100.0)
    table.accepted(7)  # a new subscriber, given the flood's descriptor
    # The flood's messages read late name descriptor 7: not the new connection's.
    at = 100.0 + STALE_SECONDS / 2
    assert all(table.subscribed(7, at) for _ in range(1000))
    assert table.subscriptions_refused == 1
    at = 100.0 + STALE_SECONDS  # what comes now is the new connection's
    assert all(table.subscribed(7, at) for _ in range(4))
    assert not table.subscribed(7, at) and table.subscriptions_refused == 2


def test_a_closed_connections_late_messages_are_excused_only_so_far() -> None:
    table = ConnectionTable(cap=10, max_subscriptions=4, subscribers=True)
    table.accepted(7)
    table.closed(7, now=100.0)
    table.accepted(7)
    # A flood on the new connection at once: its own messages count past the most a
    # closed connection is excused.
    assert all(table.subscribed(7, 100.0) for _ in range(STALE_FRAMES + 4))
    assert not table.subscribed(7, 100.0)
    # Only the events socket's closed connections are excused anything.
    other = ConnectionTable(cap=10, max_subscriptions=4)
    other.accepted(7)
    other.closed(7, now=100.0)
    other.accepted(7)
    assert all(other.subscribed(7, 100.0) for _ in range(4)) and not other.subscribed(7, 100.0)


def test_a_shutdown_spares_the_socket_that_took_the_descriptor_since() -> None:
    refused, peer = socket.socketpair()
    ino = inode(refused.fileno())
    fd = refused.detach()
    taker, other = socket.socketpair()
    try:
        os.dup2(taker.fileno(), fd)  # the refused one closed, its descriptor another's
        shut_down(fd, ino)  # not the refused connection any more: left alone
        other.sendall(b"x")
        assert taker.recv(1) == b"x"
        shut_down(fd, inode(fd))  # the socket there now: shut down
        assert taker.recv(1) == b""
    finally:
        os.close(fd)
        for s in (peer, taker, other):
            s.close()
