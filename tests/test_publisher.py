"""The publisher's frames over a real ZeroMQ PUB/SUB pair (inproc)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import zmq
from samples import EVENTS

from ifpx.bridge.publisher import Publisher
from ifpx.schemas import codec
from ifpx.schemas import events as ev
from ifpx.schemas.envelope import Message
from ifpx.schemas.journal import Journal
from ifpx.schemas.topics import KIND_TOPIC


@pytest.fixture
def pair() -> Iterator[tuple[zmq.Socket[bytes], zmq.Socket[bytes]]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub, sub = ctx.socket(zmq.PUB), ctx.socket(zmq.SUB)
    try:
        pub.bind("inproc://publisher-test")
        sub.connect("inproc://publisher-test")
        sub.subscribe(b"")
        yield pub, sub
    finally:
        ctx.destroy(linger=0)


def _recv(sub: zmq.Socket[bytes]) -> list[bytes]:
    assert sub.poll(2000), "nothing published"
    return sub.recv_multipart()


def _group_form_first(events: list[ev.EventBase]) -> list[ev.EventBase]:
    """``events`` with each run of route events (either form) as its group form, then
    its flat form: the order the publisher promises (no subscriber takes both)."""
    out: list[ev.EventBase] = []
    run: list[ev.EventBase] = []
    for e in [*events, None]:
        if e is not None and KIND_TOPIC[e.kind] in ("route", "fib"):
            run.append(e)
            continue
        out += [r for r in run if KIND_TOPIC[r.kind] == "fib"]
        out += [r for r in run if KIND_TOPIC[r.kind] == "route"]
        run = []
        if e is not None:
            out.append(e)
    return out


def test_the_two_route_forms_interleaved_go_out_as_one_message_each(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]],
) -> None:
    pub, sub = pair
    p = Publisher(pub, epoch=1, journal=Journal())
    flat, grouped = EVENTS["route_add"], EVENTS["groute_add"]
    p.publish([EVENTS["link_change"], *[flat, grouped] * 100, EVENTS["mtu_change"]])
    topics = [codec.decode_message(_recv(sub)) for _ in range(p.seq)]
    assert [(m.topic, len(m.events)) for m in topics] == [
        ("link", 1),
        ("fib", 100),
        ("route", 100),
        ("link", 1),
    ]


def test_frames_are_the_messages_dump(pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]]) -> None:
    pub, sub = pair
    journal = Journal()
    p = Publisher(pub, epoch=42, journal=journal)
    events = [e for e in EVENTS.values() if not isinstance(e, ev.Heartbeat)]
    p.publish(events)
    seen: list[ev.EventBase] = []
    tseqs: dict[str, int] = {}
    payloads: list[bytes] = []
    for seq in range(1, p.seq + 1):
        topic, payload = _recv(sub)
        msg = codec.decode_message([topic, payload])
        tseqs[msg.topic] = tseqs.get(msg.topic, 0) + 1
        assert (msg.epoch, msg.seq, msg.tseq) == (42, seq, tseqs[msg.topic])
        assert all(KIND_TOPIC[e.kind] == msg.topic for e in msg.events)
        # Packed from the models' fields, byte for byte what the validated model dumps.
        assert payload == codec.dump(Message.model_validate(msg.model_dump()))
        payloads.append(payload)
        seen.extend(msg.events)
    assert seen == _group_form_first(events)
    assert journal.since(0, p.seq, None) == payloads
    assert p.messages == p.seq and sum(p.by_kind.values()) == len(events)

    p.heartbeat(0.5)
    topic, payload = _recv(sub)
    beat = codec.decode_message([topic, payload])
    assert beat.topic == "hb" and beat.tseq == 0 and beat.seq == p.seq
    hb = beat.events[0]
    assert isinstance(hb, ev.Heartbeat)
    assert hb.interval == 0.5 and hb.topic_seqs == p.topic_seqs()
