"""The one place a client program reads its environment: endpoints and CURVE keys.

Libraries take their settings as arguments (:class:`~ifpx.subscribers.Subscriber`,
:class:`~ifpx.subscribers.ControlClient` read nothing from the environment); the
command lines (``ifpx``, ``python -m ifpx.subscribers.workers``) call
:func:`resolve` once and pass what it returns down. Flags win over ``IFPX_*``
variables, which win over the defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ifpx.schemas.endpoints import DEFAULT_CONTROL, DEFAULT_EVENTS

from .errors import ConfigurationError
from .security import CurveClient


@dataclass(frozen=True)
class ClientSettings:
    """What a client needs to reach a bridge."""

    events: str = DEFAULT_EVENTS
    control: str = DEFAULT_CONTROL
    curve: CurveClient | None = None


def resolve(
    events: str | None = None,
    control: str | None = None,
    curve_server_key: str | None = None,
    curve_cert: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ClientSettings:
    """Settings from flags (given here), then ``IFPX_*`` variables, then the defaults."""
    env = os.environ if environ is None else environ
    server = curve_server_key or env.get("IFPX_CURVE_SERVER_KEY")
    cert = curve_cert or env.get("IFPX_CURVE_CERT")
    curve = None
    if server and cert:
        try:
            curve = CurveClient.load(server, cert)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"CURVE keys: {exc}") from None
    return ClientSettings(
        events=_endpoint("events", events or env.get("IFPX_EVENTS") or DEFAULT_EVENTS),
        control=_endpoint("control", control or env.get("IFPX_CONTROL") or DEFAULT_CONTROL),
        curve=curve,
    )


def _endpoint(name: str, value: str) -> str:
    """``value`` if it is a ZeroMQ endpoint; a socket path gets a hint instead."""
    if "://" not in value:
        hint = f"; did you mean ipc://{value}?" if value.startswith("/") else ""
        raise ConfigurationError(
            f"--{name} {value!r} is not an endpoint (ipc://PATH or tcp://HOST:PORT){hint}"
        )
    return value
