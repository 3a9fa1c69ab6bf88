"""ifpx subscribers: what DPDK workers and ops tools embed to follow the bridge.

>>> from ifpx.subscribers import Subscriber, Callbacks
>>> sub = Subscriber(events="ipc:///run/ifpx/events.sock",
...                  control="ipc:///run/ifpx/control.sock")  # doctest: +SKIP
>>> sub.sync(timeout=5.0)                                      # doctest: +SKIP
>>> events = sub.poll(max_events=64, timeout=0.0)              # doctest: +SKIP

Imports only ``ifpx.schemas``: a worker host needs no netlink library.
"""

from .callbacks import Callbacks
from .client import (
    BridgeError,
    BridgeUnreachable,
    ClientError,
    ConfigurationError,
    ControlClient,
    ProtocolError,
)
from .policy import Flow
from .replica import Replica, Route
from .subscriber import Subscriber, SubscriberStats, tune_gc

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
