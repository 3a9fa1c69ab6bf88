"""A blocking control client with bounded retries (the ZeroMQ Guide's Lazy Pirate)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import zmq

from ifpx.schemas import codec
from ifpx.schemas import commands as c
from ifpx.schemas.endpoints import DEFAULT_CONTROL
from ifpx.schemas.events import WireModel

from .errors import (
    BridgeError,
    BridgeUnreachable,
    ClientError,
    ConfigurationError,
    ProtocolError,
)
from .security import CurveClient

__all__ = [
    "BridgeError",
    "BridgeUnreachable",
    "ClientError",
    "ConfigurationError",
    "ControlClient",
    "ProtocolError",
    "missing_socket",
]


_ids = itertools.count(1)
_R = TypeVar("_R", bound=WireModel)

MAX_PINNED = 256
"""Most workers ``wait_applied`` can name; past it the default set is asked for each time."""


def missing_socket(endpoint: str) -> str | None:
    """Why nobody can be listening at an ipc ``endpoint`` (its socket file is missing),
    or None."""
    if endpoint.startswith("ipc://") and not Path(endpoint[6:]).exists():
        return (
            f"no bridge is listening at {endpoint} (no such socket file); "
            "is `ifpx bridge` running, and is this its endpoint?"
        )
    return None


class ControlClient:
    """Sends commands and waits for replies; never waits longer than asked.

    ``on_retry`` is told, in a sentence, each time a try went unanswered and another
    begins: a command line says it rather than wait ``retries`` x ``timeout`` in silence.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_CONTROL,
        timeout: float = 3.0,
        retries: int = 2,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        curve: CurveClient | None = None,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.on_retry = on_retry
        self.curve = curve
        self.timeout = timeout
        self.retries = retries
        self._ctx = context or zmq.Context.instance()
        self._sock: zmq.Socket[bytes] | None = None

    def _socket(self) -> zmq.Socket[bytes]:
        if self._sock is None:
            sock = self._ctx.socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            try:
                if self.curve is not None:
                    self.curve.apply(sock)
                sock.connect(self.endpoint)
            except zmq.ZMQError as exc:
                sock.close()
                raise ConfigurationError(f"cannot connect to {self.endpoint!r}: {exc}") from None
            self._sock = sock
        return self._sock

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def raw(self, payload: bytes, timeout: float | None = None) -> bytes:
        """Send raw bytes and return the raw reply (for tools and tests)."""
        per_try = self.timeout if timeout is None else timeout
        missing = missing_socket(self.endpoint)
        if missing:
            # Nothing to wait for: say so now rather than after every retry's timeout.
            raise BridgeUnreachable(missing)
        for attempt in range(self.retries + 1):
            sock = self._socket()
            sock.send(payload)
            if sock.poll(int(per_try * 1000), zmq.POLLIN):
                return sock.recv()
            # REQ is stuck waiting for a reply that will never come: start afresh.
            self.close()
            if self.on_retry is not None and attempt < self.retries:
                self.on_retry(
                    f"no reply from {self.endpoint} in {per_try:.1f}s; "
                    f"trying again ({attempt + 2} of {self.retries + 1})"
                )
        raise BridgeUnreachable(
            f"no reply from {self.endpoint} after {self.retries + 1} tries of {per_try:.1f}s"
        )

    def request(self, cmd: c.Command, timeout: float | None = None) -> c.Result:
        """Send ``cmd``; return its result, or raise a :class:`ClientError` saying why."""
        cmd = cmd.model_copy(update={"id": next(_ids)})
        try:
            reply = codec.decode_reply(self.raw(codec.encode_request(cmd), timeout))
        except codec.CodecError as exc:
            raise ProtocolError(f"{self.endpoint} answered something else: {exc}") from None
        except zmq.ZMQError as exc:
            raise BridgeUnreachable(f"{self.endpoint}: {exc}") from None
        if isinstance(reply, c.ErrorReply):
            raise BridgeError(reply.error.code, reply.error.message)
        return reply.result

    def _expect(self, cmd: c.Command, kind: type[_R]) -> _R:
        result = self.request(cmd)
        if not isinstance(result, kind):
            raise ProtocolError(f"{self.endpoint} answered {cmd.cmd} with {result.type}")
        return result

    def bind(self, port_id: int, proxy: str | int) -> c.BindResult:
        """Bind ``port_id`` to ``proxy`` (a name or an ifindex); idempotent. Acknowledged
        once the bridge has it on disk (``ifpx ctl bind``; C: ``ifpx_bind``)."""
        return self._expect(c.Bind(port_id=port_id, proxy=proxy), c.BindResult)

    def unbind(self, port_id: int, proxy: str | int | None = None) -> c.UnbindResult:
        """Unbind ``port_id`` (only from ``proxy``, if given); nothing to unbind is no error."""
        return self._expect(c.Unbind(port_id=port_id, proxy=proxy), c.UnbindResult)

    def create_proxy(
        self, name: str, mac: str | None = None, mtu: int | None = None
    ) -> c.CreateProxyResult:
        """Create a multi_queue tap ``name`` for net_tap to attach to (existing: kept)."""
        return self._expect(c.CreateProxy(name=name, mac=mac, mtu=mtu), c.CreateProxyResult)

    def destroy_proxy(self, name: str, force: bool = False) -> c.DestroyProxyResult:
        """Remove a tap the bridge made (``force``: any), and its bindings."""
        return self._expect(c.DestroyProxy(name=name, force=force), c.DestroyProxyResult)

    def workers(self) -> c.ListWorkersResult:
        """Every worker that reports to the bridge (``ifpx ctl workers``)."""
        return self._expect(c.ListWorkers(), c.ListWorkersResult)

    def wait_applied(
        self,
        seq: int | None = None,
        workers: list[str] | None = None,
        timeout: float = 30.0,
        interval: float = 0.02,
    ) -> c.WaitAppliedResult:
        """Poll ``wait_applied`` until the workers have applied ``seq`` or ``timeout`` passes.

        ``seq`` None waits for the bridge's sequence number at the first poll;
        ``workers`` None for every worker not gone at the first poll (one that goes
        away while waited for stays waited for). Returns the last answer: its
        ``done`` says which it was, its ``waiting`` who is short.
        """
        deadline = time.monotonic() + timeout
        epoch: int | None = None
        while True:
            result = self.request(c.WaitApplied(seq=seq, epoch=epoch, workers=workers))
            if not isinstance(result, c.WaitAppliedResult):
                raise ProtocolError(f"{self.endpoint} answered wait_applied with {result.type}")
            seq, epoch = result.seq, result.epoch
            # Pinned: who was there at the first poll. Nobody yet: whoever comes.
            if workers is None and 0 < len(result.workers) <= MAX_PINNED:
                workers = result.workers
            left = deadline - time.monotonic()
            if result.done or left <= 0:
                return result
            time.sleep(min(interval, left))
