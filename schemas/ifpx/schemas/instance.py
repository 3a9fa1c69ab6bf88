"""One server per endpoint and per state file: locks held for the process's life (thin I/O).

A ZeroMQ ``bind`` on an ipc endpoint silently replaces a socket file another
process is serving, and two bridges writing one state file lose each other's
bindings. So before it binds anything, a server of this protocol (``ifpx
bridge``, ``ifpx replay``) takes an exclusive ``flock`` on ``<path>.lock`` beside
each ipc socket (and the bridge beside its state file), and keeps it until it
exits (the kernel drops it then, also after ``kill -9``). A stopped (``kill
-STOP``) or busy server still holds its locks: nobody takes over from it. tcp
endpoints need no lock: the kernel refuses a second bind of the same address.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class InstanceLocked(Exception):
    """Another live process holds a lock this bridge needs."""


def lock_path(path: Path) -> Path:
    """The lock file that guards ``path``."""
    return path.with_name(path.name + ".lock")


class InstanceLock:
    """Exclusive locks on a set of paths, released together."""

    def __init__(self) -> None:
        self._fds: list[int] = []

    def take(self, path: Path, what: str) -> None:
        """Lock ``path`` for this process.

        InstanceLocked if another process holds it; OSError if the lock file is unusable.
        """
        lock = lock_path(path)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise InstanceLocked(
                f"{what} {path} belongs to a running bridge or replay (pid {holder}); stop it first"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        # Only for the message above: the lock itself is the flock, not the pid.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fds.append(fd)

    def release(self) -> None:
        """Drop every lock (the files stay: removing one would race a process taking it)."""
        while self._fds:
            os.close(self._fds.pop())
