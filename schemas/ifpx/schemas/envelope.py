"""The published message: an envelope around a batch of events of one topic."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .events import Event, WireModel
from .topics import Topic
from .types import U64
from .version import PROTOCOL_VERSION

MAX_BATCH = 4096
"""Most events one message may carry."""


class Message(WireModel):
    """One PUB message. Frames on the socket: ``[topic, msgpack(Message)]``.

    ``seq`` counts every non-heartbeat message of the bridge epoch; ``tseq``
    counts the messages of ``topic`` alone, so gaps are visible under any topic
    filter. A heartbeat repeats the latest ``seq`` and has ``tseq`` 0.
    """

    v: int = PROTOCOL_VERSION
    epoch: U64
    seq: U64
    tseq: U64
    ts: float = Field(description="bridge wall clock (seconds since the epoch) at publish")
    topic: Topic
    events: Annotated[list[Event], Field(max_length=MAX_BATCH)]
