"""The recording file format: a versioned header, then checksummed records, append-only.

Layout (all integers little-endian)::

    magic    8 bytes   b"IFPXREC1"
    length   u32       size of the header map
    crc      u32       CRC-32 of the header map
    header   msgpack   {"format": 1, "epoch", "start", "events", "control", "kinds", "topics"}
    record*            length u32, crc u32 (CRC-32 of the body), body

    body     msgpack   [recv_time: float, type: "snapshot" | "message", topic: str, payload: bin]

The first record is the snapshot the recording started from (``payload`` is the
encoded reply), so a file is self-contained; each further record is one
published message exactly as received (``payload`` is its second frame). A
crash while writing loses at most the record being written, and
:func:`verify` names the first bad record by index and byte offset.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import msgpack

from ifpx.schemas import codec
from ifpx.schemas.commands import Reply
from ifpx.schemas.envelope import Message

MAGIC = b"IFPXREC1"
FORMAT = 1
_U32x2 = struct.Struct("<II")
MAX_RECORD = 1 << 30


class RecordingError(Exception):
    """A recording that is not valid; ``index`` and ``offset`` say where (index -1: header)."""

    def __init__(self, message: str, index: int = -1, offset: int = 0) -> None:
        super().__init__(message)
        self.index = index
        self.offset = offset


@dataclass(frozen=True, slots=True)
class Record:
    """One record: when it was received, what it is, and its bytes."""

    index: int
    offset: int
    time: float
    type: str
    topic: str
    payload: bytes


def _pack(obj: Any) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


class Writer:
    """Appends records to an open binary file, flushing each so a crash loses at most one."""

    def __init__(self, fh: IO[bytes], header: dict[str, Any]) -> None:
        self._fh = fh
        body = _pack({"format": FORMAT, **header})
        fh.write(MAGIC + _U32x2.pack(len(body), zlib.crc32(body)) + body)
        fh.flush()
        self.count = 0

    def write(self, when: float, rtype: str, topic: str, payload: bytes) -> None:
        """Append one record."""
        body = _pack([when, rtype, topic, payload])
        self._fh.write(_U32x2.pack(len(body), zlib.crc32(body)) + body)
        self._fh.flush()
        self.count += 1


def read_header(fh: IO[bytes]) -> dict[str, Any]:
    """The header; RecordingError if the file is not a recording this build reads."""
    head = fh.read(len(MAGIC) + _U32x2.size)
    if len(head) < len(MAGIC) + _U32x2.size or not head.startswith(MAGIC):
        raise RecordingError("not an ifpx recording (bad magic)")
    length, crc = _U32x2.unpack_from(head, len(MAGIC))
    body = fh.read(length)
    if len(body) != length or zlib.crc32(body) != crc:
        raise RecordingError("header is truncated or corrupt")
    try:
        header = msgpack.unpackb(body, raw=False)
    except Exception as exc:
        raise RecordingError(f"header does not decode: {exc}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise RecordingError(f"unsupported recording format {header!r:.80}")
    return header


def records(fh: IO[bytes]) -> Iterator[Record]:
    """Every record after the header, checked; RecordingError at the first bad one."""
    index = 0
    while True:
        offset = fh.tell()
        head = fh.read(_U32x2.size)
        if not head:
            return
        if len(head) < _U32x2.size:
            raise RecordingError(
                f"record {index} at offset {offset}: truncated length", index, offset
            )
        length, crc = _U32x2.unpack(head)
        if length > MAX_RECORD:
            raise RecordingError(f"record {index} at offset {offset}: absurd length", index, offset)
        body = fh.read(length)
        if len(body) != length:
            raise RecordingError(
                f"record {index} at offset {offset}: truncated body", index, offset
            )
        if zlib.crc32(body) != crc:
            raise RecordingError(
                f"record {index} at offset {offset}: checksum mismatch", index, offset
            )
        try:
            when, rtype, topic, payload = msgpack.unpackb(body, raw=False)
            if not isinstance(payload, bytes) or rtype not in ("snapshot", "message"):
                raise ValueError("unexpected field types")
        except Exception as exc:
            raise RecordingError(
                f"record {index} at offset {offset}: undecodable ({exc})", index, offset
            ) from None
        yield Record(index, offset, float(when), rtype, str(topic), payload)
        index += 1


def decode_payload(rec: Record) -> Reply | Message:
    """``rec``'s payload: the reply of a ``snapshot`` record, else a published message.

    RecordingError names the record if the payload is not valid (its checksum held:
    it was written so, not damaged since).
    """
    try:
        if rec.type == "snapshot":
            return codec.decode_reply(rec.payload)
        return codec.decode_message([rec.topic.encode(), rec.payload])
    except codec.CodecError as exc:
        raise RecordingError(
            f"record {rec.index} at offset {rec.offset}: not a valid {rec.type}: {exc}",
            rec.index,
            rec.offset,
        ) from None


def verify(fh: IO[bytes]) -> int:
    """Check every record (checksums, then payloads against the wire contract); return the count.

    RecordingError names the first bad record by index and byte offset.
    """
    read_header(fh)
    count = 0
    for rec in records(fh):
        decode_payload(rec)
        count += 1
    return count
