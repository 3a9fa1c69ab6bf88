"""Acting in a named network namespace while the sockets for subscribers stay at home.

The netlink sockets and tap creation must be in the bridge's netns; the ZeroMQ
endpoints must not, or a ``tcp://`` endpoint would only be reachable from inside
it. Linux keeps the network namespace per thread, so the main thread steps in
for the moment it opens a netlink socket or makes a tap; a socket stays in the
namespace it was made in.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    # setns(2) directly (os.setns arrives in Python 3.12; pyroute2 costs 90 ms to import
    # at every start). CLONE_NEWNET: the fd must be a network namespace.
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


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

    def close(self) -> None:
        """Release the namespace handles."""
        for fd in (self._target, self._home):
            if fd is not None:
                os.close(fd)
        self._target = self._home = None
