"""ifpx wire contract: event and command models, the codec, topics and versioning.

This package imports nothing else of ifpx; both the bridge and the subscribers
depend on it.
"""

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
