"""How many connections the bridge holds, and which ones it refuses (pure).

libzmq aborts the whole process when ``accept`` fails with EMFILE, so the bridge must
never let its sockets' connections reach the file-descriptor limit: each connection
ZeroMQ accepts is counted here (from the sockets' monitors), and one over
:attr:`ConnectionTable.cap` is refused (shut down) as soon as it is seen. A connection
that subscribes to more prefixes than any subscriber needs is refused too: libzmq keeps
every prefix a connection sends, so they would be memory without bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RESERVED_FDS = 256
"""Descriptors kept out of the connection cap: netlink, the journal, the state file,
ZeroMQ's own signalling, the metrics endpoint, a burst accepted before it is counted."""
CONTROL_CONNECTIONS = 256
"""Connections a control socket holds (a request is one short connection): its own cap,
so a flood of subscribers leaves the operator's commands room, and the other way round."""
CONTROL_SHARE = 64
"""Connections one peer (a process over ipc, an address over tcp) may hold on a control
socket: one client holding idle connections cannot lock the workers out."""
MAX_SUBSCRIPTIONS = 64
"""Subscription messages one connection may send (a subscriber needs one per topic,
nine at most, again after a reconnect)."""

REFUSED = -1
"""A connection's count once it is refused for subscribing too much."""
STALE_SECONDS = 2.0
"""How long after a connection's close the subscription messages naming its descriptor
count against no one. libzmq reads a connection ahead into a queue without bound and
hands over what it read after the close (a flood refused at its 65th had 3,000 more
queued), by when the descriptor is often a new connection's; the queue is read at
~100k messages a second."""
STALE_FRAMES = 65_536
"""Most messages excused so per close: a new connection flooding right away is counted
again past this many (or past :data:`STALE_SECONDS`)."""


def cap_for(wanted: int, fd_limit: int, controls: int = 1) -> int:
    """The events socket's connection cap: ``wanted``, lowered to what ``fd_limit``
    leaves room for beside ``controls`` control sockets."""
    return max(1, min(wanted, fd_limit - RESERVED_FDS - controls * CONTROL_CONNECTIONS))


@dataclass
class ConnectionTable:
    """The connections open on one bridge socket, keyed by their descriptor."""

    cap: int
    share: int = 0
    """Most connections one peer may hold (0: no share, the cap alone)."""
    max_subscriptions: int = MAX_SUBSCRIPTIONS
    subscribers: bool = False
    """The socket's connections subscribe (the events socket): see :meth:`subscribed`."""
    refused: int = 0
    """Connections shut down because the table was full."""
    refused_share: int = 0
    """Connections shut down because their peer held its :attr:`share`."""
    subscriptions_refused: int = 0
    """Connections shut down for sending more subscriptions than :attr:`max_subscriptions`."""
    _open: dict[int, int] = field(default_factory=dict)
    """Descriptor -> subscription messages it has sent (:data:`REFUSED`: refused already)."""
    _peer_of: dict[int, str] = field(default_factory=dict)
    """Descriptor -> its peer, for a table with a share."""
    _peers: dict[str, int] = field(default_factory=dict)
    """Peer -> connections it holds open."""
    _stale: dict[int, tuple[int, float]] = field(default_factory=dict)
    """Descriptors of subscribing connections closed lately -> (how many more messages
    naming them are not counted, when the connection closed)."""

    @property
    def count(self) -> int:
        """Connections open now."""
        return len(self._open)

    def accepted(self, fd: int, peer: str | None = None) -> bool:
        """A connection from ``peer`` (None: unknown) was accepted on ``fd``: False if it
        is one too many, for the socket or for its peer (refuse it)."""
        if fd in self._open:
            # Its close was not seen (a monitor lost it): the descriptor is a new connection.
            self._forget_peer(fd)
        elif len(self._open) >= self.cap:
            self.refused += 1
            return False
        if self.share and peer is not None:
            if self._peers.get(peer, 0) >= self.share:
                self._open.pop(fd, None)
                self.refused_share += 1
                return False
            self._peer_of[fd] = peer
            self._peers[peer] = self._peers.get(peer, 0) + 1
        self._open[fd] = 0
        return True

    def _forget_peer(self, fd: int) -> None:
        peer = self._peer_of.pop(fd, None)
        if peer is not None:
            left = self._peers[peer] - 1
            if left:
                self._peers[peer] = left
            else:
                del self._peers[peer]

    def closed(self, fd: int, now: float = 0.0) -> None:
        """The connection on ``fd`` is gone (at ``now``)."""
        self._open.pop(fd, None)
        self._forget_peer(fd)
        if self.subscribers:
            # What it sent may still be queued, to be read when its descriptor is
            # another connection's: not that one's to answer for.
            self._stale[fd] = (STALE_FRAMES, now)

    def subscribed(self, fd: int, now: float = 0.0) -> bool:
        """``fd`` sent a subscription (read at ``now``): False when it is one too many
        (refuse it then).

        Once: what a refused connection had sent beyond arrives after it, and refusing
        again would shut down whichever connection holds the descriptor by then.
        """
        stale = self._stale.get(fd)
        if stale is not None:
            left, since = stale
            if now - since < STALE_SECONDS:
                if left > 1:
                    self._stale[fd] = (left - 1, since)
                else:
                    del self._stale[fd]
                return True  # (most likely) a closed connection's, read late
            del self._stale[fd]
        sent = self._open.get(fd)
        if sent is None or sent == REFUSED:
            return True  # not (yet) seen accepted, or refused already: nothing to do
        if sent >= self.max_subscriptions:
            self.subscriptions_refused += 1
            self._open[fd] = REFUSED
            return False
        self._open[fd] = sent + 1
        return True
