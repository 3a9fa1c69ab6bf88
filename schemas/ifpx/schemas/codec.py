"""The one module that touches msgpack.

Decoding untrusted bytes raises :class:`CodecError` and nothing else, and is
bounded: total size, nesting depth, collection and string lengths are checked
before anything is built from the bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack
from pydantic import BaseModel, ValidationError

from .commands import (
    COMMAND_ADAPTER,
    COMMAND_TYPES,
    REPLY_ADAPTER,
    Command,
    ErrorCode,
    ErrorInfo,
    ErrorReply,
    OkReply,
    Reply,
    SnapshotResult,
)
from .envelope import Message
from .version import PROTOCOL_VERSION, SUPPORTED_VERSIONS

MAX_REQUEST_BYTES = 64 * 1024
"""Largest command a bridge accepts; a larger one gets a ``too_large`` error reply."""

MAX_REQUEST_FRAME = 16 * 1024 * 1024
"""Largest frame a bridge's control socket reads at all (ZMQ_MAXMSGSIZE).

Between :data:`MAX_REQUEST_BYTES` and this, a request is read and answered with a
typed ``too_large`` error, so its sender does not wait for a timeout; a peer that
sends more is disconnected by ZeroMQ before anything is allocated for it.
"""

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Largest published message a subscriber accepts."""

MAX_REPLY_BYTES = 1024 * 1024 * 1024
"""Largest reply a client accepts (a snapshot of a full Internet table fits)."""

MAX_DEPTH = 12
"""Deepest nesting of maps and arrays in any valid document (a snapshot needs 7)."""

MAX_STR = 1 << 16
"""Longest string in any document (names, addresses, messages)."""
MAX_COLLECTION = 1 << 24


class CodecError(Exception):
    """Bytes that are not a valid document; ``code`` says how a reply should classify it."""

    def __init__(
        self, message: str, code: ErrorCode = ErrorCode.BAD_REQUEST, request_id: int = 0
    ) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id


def _pack(obj: Any) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def _unpack(data: bytes, limit: int, check_depth: bool = True) -> Any:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    if len(data) > limit:
        raise CodecError(f"document of {len(data)} bytes exceeds {limit}", ErrorCode.TOO_LARGE)
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_str_len=MAX_STR,
            # Binary fields are published messages a ``replay`` carries, each as large
            # as a message may be (256 ECMP routes are 80 KB): bounded by the document.
            max_bin_len=min(limit, MAX_MESSAGE_BYTES),
            max_array_len=MAX_COLLECTION,
            max_map_len=MAX_COLLECTION,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises a zoo of types; all mean "not ours"
        raise CodecError(f"not a msgpack document: {type(exc).__name__}: {exc}") from None
    if check_depth:
        _check_depth(obj)
    return obj


def _check_depth(obj: Any) -> None:
    # Iterative, so a hostile document cannot exhaust the Python stack.
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > MAX_DEPTH:
                raise CodecError(f"nesting deeper than {MAX_DEPTH}")
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            if depth > MAX_DEPTH:
                raise CodecError(f"nesting deeper than {MAX_DEPTH}")
            stack.extend((v, depth + 1) for v in item if isinstance(v, dict | list))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    parts = []
    for err in errors[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{loc}: {err['msg']}")
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more


def dump(model: BaseModel) -> bytes:
    """Encode any wire model as msgpack."""
    return _pack(model.model_dump())


# ---- published messages --------------------------------------------------------


def _fields(obj: Any) -> dict[str, Any]:
    if isinstance(obj, BaseModel):
        fields: dict[str, Any] = obj.__dict__
        return fields
    raise TypeError(f"cannot encode {type(obj).__name__}")


def encode_message(msg: Message) -> list[bytes]:
    """The frames of a published message: ``[topic, payload]``."""
    return [msg.topic.encode(), pack_payload(msg.__dict__)]


def pack_payload(fields: dict[str, Any]) -> bytes:
    """Pack a message's fields (models inside included) as :func:`dump` would.

    The event models have no custom serialisers and keep their fields in declaration
    order, so a model's ``__dict__`` *is* its dump: packing it directly gives the same
    bytes about five times faster than ``model_dump`` (the publisher's hot path;
    ``tests/test_wire.py`` and ``tests/test_publisher.py`` hold the two equal).
    """
    data: bytes = msgpack.packb(fields, default=_fields, use_bin_type=True)
    return data


def decode_message(frames: Sequence[bytes]) -> Message:
    """Validate a published message's frames; raise :class:`CodecError` if invalid."""
    if len(frames) != 2:
        raise CodecError(f"expected 2 frames, got {len(frames)}")
    topic, payload = frames
    msg = decode_payload(payload)
    if bytes(topic) != msg.topic.encode():
        raise CodecError(f"topic frame {bytes(topic)!r} does not match payload topic {msg.topic}")
    return msg


def decode_payload(payload: bytes) -> Message:
    """Validate a message's payload frame alone (as a ``replay`` result carries them)."""
    # No separate depth walk on this hot path: msgpack's unpacker stops at a fixed
    # depth, and the models, having no free-form fields, refuse a container wherever
    # a scalar belongs without descending into it.
    obj = _unpack(payload, MAX_MESSAGE_BYTES, check_depth=False)
    try:
        return Message.model_validate(obj)
    except ValidationError as exc:
        raise CodecError(f"invalid message: {_describe(exc)}") from None


# ---- commands and replies -------------------------------------------------------


_LATER_FIELDS: dict[str, dict[str, object]] = {
    "snapshot": {"topics": None},
    "bind": {"exclusive": False},
    "report": {"leaving": False},
}
"""Command fields a later protocol minor added, and their defaults: left out while they
hold them, so that a bridge of an older minor, which refuses fields it does not know,
still takes the command."""


def encode_request(cmd: BaseModel) -> bytes:
    """Encode a command."""
    doc = cmd.model_dump()
    for name, default in _LATER_FIELDS.get(doc.get("cmd", ""), {}).items():
        if name in doc and doc[name] is default:
            del doc[name]
    return _pack(doc)


def decode_request(data: bytes) -> Command:
    """Validate a command; the :class:`CodecError` carries the code for the error reply."""
    obj = _unpack(data, MAX_REQUEST_BYTES)
    if not isinstance(obj, dict):
        raise CodecError("a request is a map")
    rid = obj.get("id", 0)
    # ``type(...) is int``: msgpack's true and false are Python bools, which are ints
    # to ``isinstance``, and no bool may pass for a number anywhere on the wire.
    rid = rid if type(rid) is int and 0 <= rid < 2**63 else 0
    version = obj.get("v")
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        raise CodecError(
            f"protocol version {_short(version)} not supported"
            f" (supported: {list(SUPPORTED_VERSIONS)})",
            ErrorCode.UNSUPPORTED_VERSION,
            rid,
        )
    name = obj.get("cmd")
    if not isinstance(name, str) or name not in COMMAND_TYPES:
        raise CodecError(f"unknown command {_short(name)}", ErrorCode.UNKNOWN_COMMAND, rid)
    try:
        return COMMAND_ADAPTER.validate_python(obj)
    except ValidationError as exc:
        raise CodecError(f"invalid {name}: {_describe(exc)}", ErrorCode.BAD_REQUEST, rid) from None


def encode_reply(reply: BaseModel) -> bytes:
    """Encode a reply."""
    if isinstance(reply, OkReply) and isinstance(reply.result, SnapshotResult):
        return encode_packed_reply(reply.id, pack_snapshot(reply.result), reply.v)
    return dump(reply)


def pack_snapshot(result: SnapshotResult) -> bytes:
    """A snapshot result packed as a reply carries it (see :func:`encode_packed_reply`)."""
    # A full table is a million route rows, already plain tuples of ints and strings:
    # packing them as they are gives the same bytes as serialising each through the
    # model, in a fraction of the time.
    doc = result.model_dump(exclude={"state": {"routes": {"rows"}}})
    routes = doc["state"]["routes"]
    routes["rows"] = result.state.routes.rows
    # In the model's field order, as dump() would write them.
    doc["state"]["routes"] = {k: routes[k] for k in type(result.state.routes).model_fields}
    return _pack(doc)


def encode_packed_reply(
    request_id: int, packed_result: bytes, version: int = PROTOCOL_VERSION
) -> bytes:
    """An ok reply around a result packed ahead: the bytes :func:`encode_reply` gives for
    the same reply, without packing the result again (a snapshot served twice)."""
    head = _pack({"v": version, "id": request_id, "ok": True, "result": None})
    return head[:-1] + packed_result  # the packed None (one byte, last) makes way


def error_reply(code: ErrorCode, message: str, request_id: int = 0) -> ErrorReply:
    """Build an error reply."""
    return ErrorReply(id=request_id, error=ErrorInfo(code=code, message=message[:4096]))


def decode_reply(data: bytes) -> Reply:
    """Validate a reply; raise :class:`CodecError` if invalid."""
    obj = _unpack(data, MAX_REPLY_BYTES, check_depth=False)  # as decode_payload
    try:
        return REPLY_ADAPTER.validate_python(obj)
    except ValidationError as exc:
        raise CodecError(f"invalid reply: {_describe(exc)}") from None
