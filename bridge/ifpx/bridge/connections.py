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
MAX_SUBSCRIPTIONS = 64
"""Subscription messages one connection may send (a subscriber needs one per topic,
nine at most, again after a reconnect)."""


def cap_for(wanted: int, fd_limit: int, controls: int = 1) -> int:
    """The events socket's connection cap: ``wanted``, lowered to what ``fd_limit``
    leaves room for beside ``controls`` control sockets."""
    return max(1, min(wanted, fd_limit - RESERVED_FDS - controls * CONTROL_CONNECTIONS))


@dataclass
class ConnectionTable:
    """The connections open on one bridge socket, keyed by their descriptor."""

    cap: int
    max_subscriptions: int = MAX_SUBSCRIPTIONS
    refused: int = 0
    """Connections shut down because the table was full."""
    subscriptions_refused: int = 0
    """Connections shut down for sending more subscriptions than :attr:`max_subscriptions`."""
    _open: dict[int, int] = field(default_factory=dict)
    """Descriptor -> subscription messages it has sent."""

    @property
    def count(self) -> int:
        """Connections open now."""
        return len(self._open)

    def accepted(self, fd: int) -> bool:
        """A connection was accepted on ``fd``: False if it is one too many (refuse it)."""
        if fd in self._open:
            # Its close was not seen (a monitor lost it): the descriptor is a new connection.
            self._open[fd] = 0
            return True
        if len(self._open) >= self.cap:
            self.refused += 1
            return False
        self._open[fd] = 0
        return True

    def closed(self, fd: int) -> None:
        """The connection on ``fd`` is gone."""
        self._open.pop(fd, None)

    def subscribed(self, fd: int) -> bool:
        """``fd`` sent a subscription: False once it has sent too many (refuse it)."""
        sent = self._open.get(fd)
        if sent is None:
            return True  # not (yet) seen accepted: its monitor event is on its way
        if sent >= self.max_subscriptions:
            self.subscriptions_refused += 1
            return False
        self._open[fd] = sent + 1
        return True
