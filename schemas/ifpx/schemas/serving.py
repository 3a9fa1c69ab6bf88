"""Serving commands: exactly one typed reply for every request, whatever arrived (pure).

Both servers of this protocol, the bridge's controller and ``ifpx replay``, answer
through :class:`Server`: it decodes and checks the request, refuses on a
read-only endpoint what would change something, hands the command to its
handler, maps every failure to a typed error reply and counts the outcomes. It
never raises: a ZeroMQ REP socket that does not answer is wedged, and an
exception would end the server.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import codec
from . import commands as c
from .version import PROTOCOL_MINOR, negotiate

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Packed:
    """A result a handler packed ahead (:func:`~ifpx.schemas.codec.pack_snapshot`): served
    as it is, so that the same snapshot asked for by several workers is packed once."""

    data: bytes


Handler = Callable[[Any], c.Result | Packed]
"""A command's handler: takes the command (of its own type), returns the result."""

_LAST_RESORT = codec.encode_reply(
    codec.error_reply(c.ErrorCode.INTERNAL, "the server could not answer this request")
)


class CommandError(Exception):
    """A command that cannot be carried out, with its wire error code."""

    def __init__(self, code: c.ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def hello(cmd: c.Hello, server: str, epoch: int, capabilities: list[str]) -> c.HelloResult:
    """The answer to ``hello`` of either server: the highest version both sides speak
    (``unsupported_version`` when they share none), this build's minor, and what the
    server offers."""
    version = negotiate(cmd.versions)
    if version is None:
        raise CommandError(c.ErrorCode.UNSUPPORTED_VERSION, f"no common version in {cmd.versions}")
    return c.HelloResult(
        version=version,
        epoch=epoch,
        server=server,
        capabilities=capabilities,
        minor=PROTOCOL_MINOR,
    )


@dataclass
class CommandStats:
    """Commands answered, by outcome, and by (command, result code)."""

    ok: int = 0
    errors: int = 0
    by_result: dict[tuple[str, str], int] = field(default_factory=dict)

    def count(self, cmd: str, result: str) -> None:
        """One more answer to ``cmd`` with ``result`` ("ok" or an error code)."""
        if result == "ok":
            self.ok += 1
        else:
            self.errors += 1
        key = (cmd, result)
        self.by_result[key] = self.by_result.get(key, 0) + 1


class Server:
    """Answers requests with ``handlers``; commands without one are refused ``not_supported``."""

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        read_only: frozenset[str] = frozenset(),
        unsupported: str = "not served here",
    ) -> None:
        unknown = set(handlers) - set(c.COMMAND_TYPES)
        if unknown:
            raise ValueError(f"handlers for commands that do not exist: {sorted(unknown)}")
        self.handlers = dict(handlers)
        self.read_only = read_only
        """Commands a read-only endpoint answers."""
        self.unsupported = unsupported
        self.stats = CommandStats()

    def answer(self, frames: list[bytes], read_only: bool = False) -> bytes:
        """The reply to one request as it came off the socket (a request is one frame)."""
        try:
            if len(frames) != 1:
                self.stats.count("invalid", c.ErrorCode.BAD_REQUEST.value)
                message = f"a request is one frame, got {len(frames)}"
                return codec.encode_reply(codec.error_reply(c.ErrorCode.BAD_REQUEST, message))
            return self._answer(frames[0], read_only)
        except Exception:
            log.exception("no reply could be built for a request")
            self.stats.count("invalid", c.ErrorCode.INTERNAL.value)
            return _LAST_RESORT

    def _answer(self, data: bytes, read_only: bool) -> bytes:
        rid = 0
        name = "invalid"
        reply: c.OkReply | c.ErrorReply
        try:
            cmd = codec.decode_request(data)
            rid, name = cmd.id, cmd.cmd
            if read_only and name not in self.read_only:
                raise CommandError(
                    c.ErrorCode.PERMISSION_DENIED, f"{name} is not allowed on this endpoint"
                )
            handler = self.handlers.get(name)
            if handler is None:
                raise CommandError(c.ErrorCode.NOT_SUPPORTED, f"{name}: {self.unsupported}")
            result = handler(cmd)
            self.stats.count(name, "ok")
            if isinstance(result, Packed):
                return codec.encode_packed_reply(rid, result.data)
            reply = c.OkReply(id=rid, result=result)
        except codec.CodecError as exc:
            reply = codec.error_reply(exc.code, str(exc), exc.request_id)
        except CommandError as exc:
            reply = codec.error_reply(exc.code, str(exc), rid)
        except Exception as exc:  # a bug must cost one request, not the server
            log.exception("command failed")
            reply = codec.error_reply(c.ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}", rid)
        if isinstance(reply, c.ErrorReply):
            self.stats.count(name, reply.error.code.value)
            log.warning(
                "refused cmd=%s code=%s reason=%s",
                name,
                reply.error.code.value,
                reply.error.message,
            )
        return codec.encode_reply(reply)
