"""Acting in a named network namespace while the sockets for subscribers stay at home.

The netlink sockets and tap creation must be in the bridge's netns; the ZeroMQ
endpoints must not, or a ``tcp://`` endpoint would only be reachable from inside
it. Linux keeps the network namespace per thread, so the main thread steps in
for the moment it opens a netlink socket or makes a tap, and the netlink reader
thread lives there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from pyroute2 import netns as _pyroute2_netns


def _setns(fd: int) -> None:
    # flags=0: never create a namespace by accident (pyroute2's default is O_CREAT).
    _pyroute2_netns.setns(fd, flags=0)


class Namespace:
    """A named netns (``ip netns add NAME``), or the current one when ``name`` is None."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        self._target: int | None = None
        self._home: int | None = None
        if name is not None:
            try:
                self._target = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise OSError(exc.errno, f"no network namespace {name!r}: {exc.strerror}") from None
            self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    @contextmanager
    def inside(self) -> Iterator[None]:
        """Run the block (in this thread) inside the namespace."""
        if self._target is None or self._home is None:
            yield
            return
        _setns(self._target)
        try:
            yield
        finally:
            _setns(self._home)

    def enter_this_thread(self) -> None:
        """Move the calling thread into the namespace for good (for threads that live there)."""
        if self._target is not None:
            _setns(self._target)

    def close(self) -> None:
        """Release the namespace handles."""
        for fd in (self._target, self._home):
            if fd is not None:
                os.close(fd)
        self._target = self._home = None
