"""The published message: an envelope around a batch of events of one topic."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from .events import Event, WireModel
from .topics import KIND_TOPIC, Topic
from .types import U64
from .version import PROTOCOL_VERSION

MAX_BATCH = 4096
"""Most events one message may carry."""


class Message(WireModel):
    """One PUB message. Frames on the socket: ``[topic, msgpack(Message)]``.

    ``seq`` counts every non-heartbeat message of the bridge epoch; ``tseq``
    counts the messages of ``topic`` alone, so gaps are visible under any topic
    filter. A heartbeat repeats the latest ``seq`` and has ``tseq`` 0.

    Every event belongs to the message's topic (``KIND_TOPIC``), and a heartbeat
    message carries exactly one heartbeat: a message that breaks either rule is
    invalid as a whole, so no subscriber applies a route that came in on ``link``
    or trips over an empty heartbeat.
    """

    v: int = PROTOCOL_VERSION
    epoch: U64
    seq: U64
    tseq: U64
    ts: float = Field(description="bridge wall clock (seconds since the epoch) at publish")
    topic: Topic
    events: Annotated[list[Event], Field(min_length=1, max_length=MAX_BATCH)]

    @model_validator(mode="after")
    def _events_of_topic(self) -> Message:
        topic = self.topic
        events = self.events
        if topic == "hb" and len(events) != 1:
            raise ValueError(f"a heartbeat message carries one event, not {len(events)}")
        for e in events:
            if KIND_TOPIC[e.kind] != topic:
                raise ValueError(f"a {e.kind} event cannot travel on topic {topic!r}")
        return self
