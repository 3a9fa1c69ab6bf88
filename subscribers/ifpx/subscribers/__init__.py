"""ifpx subscribers: what DPDK workers and ops tools embed to follow the bridge.

>>> from ifpx.subscribers import Subscriber, Callbacks
>>> sub = Subscriber(events="ipc:///run/ifpx/events.sock",
...                  control="ipc:///run/ifpx/control.sock")  # doctest: +SKIP
>>> sub.sync(timeout=5.0)                                      # doctest: +SKIP
>>> events = sub.poll(max_events=64, timeout=0.0)              # doctest: +SKIP

Imports only ``ifpx.schemas``: a worker host needs no netlink library. Names load
on first use (PEP 562), so the ``ifpx`` command line starts without the schemas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ifpx.schemas import lazy

if TYPE_CHECKING:
    from .callbacks import Callbacks
    from .client import ControlClient
    from .errors import (
        BridgeError,
        BridgeUnreachable,
        ClientError,
        ConfigurationError,
        ProtocolError,
    )
    from .policy import Flow
    from .replica import Replica, Route
    from .subscriber import Subscriber, SubscriberStats, tune_gc

_HOME = {
    "Callbacks": "callbacks",
    **dict.fromkeys(
        ["BridgeError", "BridgeUnreachable", "ClientError", "ConfigurationError", "ProtocolError"],
        "errors",
    ),
    "ControlClient": "client",
    "Flow": "policy",
    **dict.fromkeys(["Replica", "Route"], "replica"),
    **dict.fromkeys(["Subscriber", "SubscriberStats", "tune_gc"], "subscriber"),
}

__all__ = [
    "BridgeError",
    "BridgeUnreachable",
    "Callbacks",
    "ClientError",
    "ConfigurationError",
    "ControlClient",
    "Flow",
    "ProtocolError",
    "Replica",
    "Route",
    "Subscriber",
    "SubscriberStats",
    "tune_gc",
]


__getattr__, __dir__ = lazy.exports(__name__, _HOME, globals())
