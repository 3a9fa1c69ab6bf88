"""Why a command got no result: the errors :class:`~ifpx.subscribers.client.ControlClient`
raises, apart from the client so the command line can name them without loading ZeroMQ
or the schemas."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ifpx.schemas.commands import ErrorCode


class ClientError(Exception):
    """Why a command got no result: the one type a caller of :class:`ControlClient` catches.

    ``exit_status`` is what the ``ifpx`` command line exits with for it, ``kind`` how
    its JSON output names it (a refusal by the bridge: the bridge's error code).
    """

    exit_status = 1
    kind = "client_error"


class BridgeError(ClientError):
    """The bridge refused the command; ``code`` says why (clients branch on it)."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.kind = code.value


class BridgeUnreachable(ClientError):
    """No reply within the time allowed."""

    exit_status = 3
    kind = "unreachable"


class ProtocolError(ClientError):
    """Something answered, but not with a reply of this protocol."""

    kind = "protocol_error"


class ConfigurationError(ClientError):
    """The endpoint or the CURVE settings cannot be used."""

    exit_status = 2
    kind = "configuration_error"
