"""How the bridge runs Python's cyclic collector, in one place.

A full table is millions of long-lived, acyclic objects (tuples and strings): with
the default thresholds the collector rescans them over and over and halves the
per-route throughput, and collecting while a dump or a snapshot reply builds them
only slows that down. So: high thresholds, no collection while a mirror fills or
a reply is built, and the loaded mirror frozen out of the collector's sight.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


def tune() -> None:
    """Thresholds for a process that holds a full table (call once, at start)."""
    gc.set_threshold(100_000, 50, 100)


@contextmanager
def paused() -> Iterator[None]:
    """No collection inside; the collector is left as it was found."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def freeze() -> None:
    """Move everything alive now out of the collector's sight (a loaded mirror)."""
    gc.freeze()
