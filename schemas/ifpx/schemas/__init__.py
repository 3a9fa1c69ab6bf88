"""ifpx wire contract: event and command models, the codec, topics and versioning.

This package imports nothing else of ifpx; both the bridge and the subscribers
depend on it. Its names load on first use (PEP 562): building the models takes a
fifth of a second, which ``ifpx --help`` and a module that needs only the default
endpoints should not pay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import lazy

if TYPE_CHECKING:
    from .codec import (
        CodecError,
        decode_message,
        decode_reply,
        decode_request,
        encode_message,
        encode_reply,
        encode_request,
        error_reply,
    )
    from .commands import COMMAND_TYPES, Command, ErrorCode, Reply
    from .envelope import Message
    from .events import DPDK_KINDS, EVENT_TYPES, Event
    from .state import State
    from .topics import KIND_TOPIC, TOPICS, Topic
    from .version import PROTOCOL_VERSION

_HOME = {
    **dict.fromkeys(
        [
            "CodecError",
            "decode_message",
            "decode_reply",
            "decode_request",
            "encode_message",
            "encode_reply",
            "encode_request",
            "error_reply",
        ],
        "codec",
    ),
    **dict.fromkeys(["COMMAND_TYPES", "Command", "ErrorCode", "Reply"], "commands"),
    "Message": "envelope",
    **dict.fromkeys(["DPDK_KINDS", "EVENT_TYPES", "Event"], "events"),
    "State": "state",
    **dict.fromkeys(["KIND_TOPIC", "TOPICS", "Topic"], "topics"),
    "PROTOCOL_VERSION": "version",
}

__all__ = [
    "COMMAND_TYPES",
    "DPDK_KINDS",
    "EVENT_TYPES",
    "KIND_TOPIC",
    "PROTOCOL_VERSION",
    "TOPICS",
    "CodecError",
    "Command",
    "ErrorCode",
    "Event",
    "Message",
    "Reply",
    "State",
    "Topic",
    "decode_message",
    "decode_reply",
    "decode_request",
    "encode_message",
    "encode_reply",
    "encode_request",
    "error_reply",
]


__getattr__, __dir__ = lazy.exports(__name__, _HOME, globals())
