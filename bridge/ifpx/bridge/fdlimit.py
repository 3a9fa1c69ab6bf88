"""The bridge's file-descriptor limit, raised at start (thin I/O)."""

from __future__ import annotations

import resource
from pathlib import Path

WANTED = 1 << 20
"""The limit asked for: what systemd's units give (LimitNOFILE), or the kernel's cap."""


def _kernel_cap() -> int:
    try:
        return int(Path("/proc/sys/fs/nr_open").read_text())
    except (OSError, ValueError):
        return WANTED


def raise_limit() -> tuple[int, int]:
    """Raise ``RLIMIT_NOFILE`` as far as allowed; return (before, after) soft limits.

    Every connection a ZeroMQ socket accepts is a descriptor, and libzmq aborts the
    process when it runs out: the default 1024 is a few hundred subscribers. The hard
    limit goes up too where the process may (root), else the soft one up to it.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(WANTED, _kernel_cap())
    if hard != resource.RLIM_INFINITY and hard < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, target))
            return soft, target
        except (OSError, ValueError):
            pass
    up = target if hard == resource.RLIM_INFINITY else max(soft, min(hard, target))
    if up != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (up, hard))
        except (OSError, ValueError):
            return soft, soft
    return soft, up
