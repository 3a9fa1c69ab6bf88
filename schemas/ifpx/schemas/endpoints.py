"""Where a bridge and its clients find each other unless told otherwise.

The C library's ``IFPX_DEFAULT_EVENTS`` and ``IFPX_DEFAULT_CONTROL`` (ifpx.h) are
the same strings (a test holds them equal).
"""

from __future__ import annotations

DEFAULT_EVENTS = "ipc:///run/ifpx/events.sock"
"""The bridge's PUB socket."""

DEFAULT_CONTROL = "ipc:///run/ifpx/control.sock"
"""The bridge's control (REP) socket."""
