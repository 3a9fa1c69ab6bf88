"""The wire contract: golden bytes, round trips, hostile bytes, JSON Schema."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from samples import COMMANDS, EVENTS, RESULTS, all_samples

from ifpx.schemas import codec, jsonschema
from ifpx.schemas import commands as c
from ifpx.schemas import events as ev
from ifpx.schemas.envelope import MAX_BATCH, Message
from ifpx.schemas.events import WireModel
from ifpx.schemas.state import State
from ifpx.schemas.topics import KIND_TOPIC, TOPICS, Topic

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("IFPX_UPDATE_GOLDENS") == "1"


def _decode(name: str, data: bytes) -> WireModel:
    if name.startswith("command."):
        return codec.decode_request(data)
    if name.startswith(("result.", "reply.")):
        if name.startswith("result."):
            return c.OkReply.model_validate({"result": msgpack.unpackb(data)}).result
        return codec.decode_reply(data)
    if name.startswith("event."):
        return ev.EVENT_ADAPTER.validate_python(msgpack.unpackb(data))
    if name == "envelope.message":
        return codec.decode_message([b"route", data])
    return State.model_validate(msgpack.unpackb(data))


@pytest.mark.parametrize("name", sorted(all_samples()))
def test_golden(name: str) -> None:
    model = all_samples()[name]
    # A command as clients send it (fields of a later minor left out while unset).
    data = codec.encode_request(model) if name.startswith("command.") else codec.dump(model)
    doc = {"json": model.model_dump(mode="json"), "msgpack_hex": data.hex()}
    path = GOLDEN / f"{name}.json"
    if UPDATE:
        path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    golden = json.loads(path.read_text())
    assert golden["msgpack_hex"] == data.hex(), "the wire changed: review, then regenerate goldens"
    assert golden["json"] == doc["json"]
    assert _decode(name, bytes.fromhex(golden["msgpack_hex"])) == model


def test_every_kind_command_and_result_has_a_sample() -> None:
    assert set(EVENTS) == set(ev.EVENT_TYPES)
    assert set(COMMANDS) == set(c.COMMAND_TYPES)
    assert set(RESULTS) == set(c.COMMAND_TYPES)
    on_disk = {p.name.removesuffix(".json") for p in GOLDEN.glob("*.json")}
    assert on_disk == set(all_samples())


def test_schema_cli_writes_every_kind(tmp_path: Path) -> None:
    from ifpx.subscribers.cli import main

    assert main(["schema", "--out", str(tmp_path)]) == 0
    names = {p.name.removesuffix(".schema.json") for p in tmp_path.iterdir()}
    for kind in ev.EVENT_TYPES:
        assert f"event.{kind}" in names
    for cmd in c.COMMAND_TYPES:
        assert f"command.{cmd}" in names and f"result.{cmd}" in names
    mtu = json.loads((tmp_path / "event.mtu_change.schema.json").read_text())
    assert mtu["properties"]["port_id"]["maximum"] == 65535
    assert set(jsonschema.schemas()) == names


# ---- round trips ----------------------------------------------------------------

ports = st.integers(0, 65535)
ifnames = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=15)
ifindexes = st.integers(0, 2**31 - 1)
v4 = st.ip_addresses(v=4).map(str)
v6 = st.ip_addresses(v=6).map(str)
macs = st.binary(min_size=6, max_size=6).map(lambda b: b.hex(":"))
hops4 = st.builds(
    ev.NextHop,
    gateway=st.none() | v4,
    ifindex=ifindexes,
    port_id=st.none() | ports,
    weight=st.integers(1, 256),
    flags=st.sampled_from([(), ("dead", "linkdown"), ("linkdown",), ("onlink",)]),
)
hops6 = st.builds(
    ev.NextHop,
    gateway=st.none() | v6,
    ifindex=ifindexes,
    port_id=st.none() | ports,
    weight=st.integers(1, 256),
    flags=st.sampled_from([(), ("dead", "linkdown"), ("linkdown",), ("onlink",)]),
)
u32 = st.integers(0, 2**32 - 1)


def _port_fields() -> dict[str, Any]:
    return {"port_id": ports, "proxy": ifnames, "ifindex": ifindexes}


def _event_strategy(cls: type[ev.EventBase]) -> st.SearchStrategy[ev.EventBase]:
    kind = cls.model_fields["kind"].default
    six = "6" in kind
    fields: dict[str, Any] = _port_fields() if issubclass(cls, ev.PortScoped) else {}
    names = set(cls.model_fields)
    if "mac" in names:
        fields["mac"] = macs if kind == "mac_change" else st.none() | macs
    if "mtu" in names:
        fields["mtu"] = u32
    if "up" in names:
        fields["up"] = st.booleans()
        fields["carrier"] = st.booleans()
    if "ip" in names:
        fields["ip"] = v6 if six else v4
    if "prefixlen" in names:
        fields["prefixlen"] = st.integers(0, 128 if six else 32)
    if cls is ev.NhGroupSet:
        fields["group"] = st.integers(1, 2**32 - 1)
        fields["nexthops"] = st.lists(hops6 if six else hops4, min_size=1, max_size=4)
        return st.builds(cls, **fields)
    if "group" in names and "dst" in names:  # a route in the group form
        fields["dst"] = v6 if six else v4
        fields["table"] = u32
        fields["proto"] = st.integers(0, 255)
        fields["metric"] = u32
        fields["group"] = u32
        fields["type"] = st.sampled_from(["unicast", "blackhole", "throw"])
        fields["prefsrc"] = st.none() | (v6 if six else v4)
    if "nexthops" in names:
        fields["dst"] = v6 if six else v4
        fields["table"] = u32
        fields["proto"] = st.integers(0, 255)
        fields["metric"] = u32
        fields["nexthops"] = st.lists(hops6 if six else hops4, max_size=4)
        fields["type"] = st.sampled_from(["unicast", "blackhole", "throw"])
        fields["prefsrc"] = st.none() | (v6 if six else v4)
    if issubclass(cls, ev.RuleFields):
        fields["src"] = st.none() | (v6 if six else v4)
        fields["dst"] = st.none() | (v6 if six else v4)
        fields["src_len"] = st.integers(0, 128 if six else 32)
        fields["priority"] = u32
        fields["action"] = st.sampled_from(["lookup", "goto", "prohibit"])
        fields["table"] = u32
        fields["iif"] = st.none() | ifnames
        fields["sport"] = st.none() | st.tuples(st.integers(0, 65535), st.integers(0, 65535))
        fields["uid"] = st.none() | st.tuples(u32, u32)
        fields["invert"] = st.booleans()
    if "state" in names:
        fields["state"] = st.sampled_from(["reachable", "stale", "permanent", "none"])
    if "old_name" in names:
        fields["old_name"] = ifnames
    if "old_ifindex" in names:
        fields["old_ifindex"] = ifindexes
    if "reason" in names:
        fields["reason"] = st.text(max_size=50)
    if "changes" in names:
        fields["changes"] = st.integers(0, 10**6)
    if "topic_seqs" in names:
        fields["topic_seqs"] = st.dictionaries(st.sampled_from(["link", "route"]), u32)
    return st.builds(cls, **fields)


any_event = st.one_of([_event_strategy(cls) for cls in ev.EVENT_TYPES.values()])


def _batch(topic: str) -> st.SearchStrategy[tuple[str, list[ev.EventBase]]]:
    kinds = [cls for kind, cls in ev.EVENT_TYPES.items() if KIND_TOPIC[kind] == topic]
    one_event = st.one_of([_event_strategy(cls) for cls in kinds])
    size = 1 if topic == "hb" else 8
    return st.lists(one_event, min_size=1, max_size=size).map(lambda evs: (topic, evs))


@settings(max_examples=300)
@given(st.sampled_from(TOPICS).flatmap(_batch), st.integers(0, 2**64 - 1), u32, u32)
def test_messages_round_trip(
    batch: tuple[Topic, list[ev.EventBase]], epoch: int, seq: int, tseq: int
) -> None:
    topic, events = batch
    msg = Message(epoch=epoch, seq=seq, tseq=tseq, ts=1.5, topic=topic, events=events)
    frames = codec.encode_message(msg)
    # The publisher packs the models' fields directly: the same bytes as the dump.
    assert frames[1] == codec.dump(msg)
    assert codec.decode_message(frames) == msg


@settings(max_examples=200)
@given(
    st.one_of(
        st.builds(c.Bind, id=st.integers(0, 2**63 - 1), port_id=ports, proxy=ifnames | ifindexes),
        st.builds(c.Unbind, port_id=ports, proxy=st.none() | ifnames),
        st.builds(c.CreateProxy, name=ifnames, mac=st.none() | macs, mtu=st.integers(68, 65535)),
        st.builds(c.Replay, epoch=u32, from_seq=u32, topics=st.none() | st.just(["route"])),
        st.builds(
            c.Hello, client=st.text(max_size=64), versions=st.lists(u32, min_size=1, max_size=4)
        ),
    )
)
def test_commands_round_trip(cmd: c.Command) -> None:
    assert codec.decode_request(codec.encode_request(cmd)) == cmd


@settings(max_examples=2000)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_decode_or_raise_codec_error(data: bytes) -> None:
    for decode in (
        codec.decode_request,
        codec.decode_reply,
        lambda d: codec.decode_message([b"link", d]),
    ):
        with contextlib.suppress(codec.CodecError):
            decode(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=1000)
@given(st.dictionaries(st.sampled_from(["v", "id", "cmd", "port_id", "proxy", "x"]), json_values))
def test_arbitrary_maps_decode_or_raise_codec_error(doc: dict[str, Any]) -> None:
    data = msgpack.packb(doc)
    try:
        codec.decode_request(data)
    except codec.CodecError as exc:
        assert exc.code in set(c.ErrorCode)


def test_bounds() -> None:
    deep: Any = 1
    for _ in range(200):
        deep = [deep]
    with pytest.raises(codec.CodecError, match="nesting"):
        codec.decode_request(msgpack.packb(deep))
    big = msgpack.packb({"v": 1, "cmd": "hello", "client": "x" * (codec.MAX_REQUEST_BYTES + 1)})
    with pytest.raises(codec.CodecError) as info:
        codec.decode_request(big)
    assert info.value.code == c.ErrorCode.TOO_LARGE


@pytest.mark.parametrize(
    ("doc", "code"),
    [
        ({"v": 1, "cmd": "launch_missiles"}, c.ErrorCode.UNKNOWN_COMMAND),
        ({"v": 99, "cmd": "status"}, c.ErrorCode.UNSUPPORTED_VERSION),
        ({"v": 1, "cmd": "bind", "port_id": 70000, "proxy": "tap0"}, c.ErrorCode.BAD_REQUEST),
        ({"v": 1, "cmd": "bind", "port_id": "0", "proxy": "tap0"}, c.ErrorCode.BAD_REQUEST),
        ({"v": 1, "cmd": "status", "extra": 1}, c.ErrorCode.BAD_REQUEST),
        ([1, 2, 3], c.ErrorCode.BAD_REQUEST),
    ],
)
def test_typed_errors(doc: Any, code: c.ErrorCode) -> None:
    with pytest.raises(codec.CodecError) as info:
        codec.decode_request(msgpack.packb(doc))
    assert info.value.code == code


def test_addresses_are_canonicalised_and_validated() -> None:
    e = ev.Addr6Add(port_id=0, proxy="p", ifindex=1, ip="2001:DB8:0::1", prefixlen=64)
    assert e.ip == "2001:db8::1"
    with pytest.raises(ValueError):
        ev.AddrAdd(port_id=0, proxy="p", ifindex=1, ip="2001:db8::1", prefixlen=24)
    with pytest.raises(ValueError):
        ev.MacChange(port_id=0, proxy="p", ifindex=1, mac="zz:00:00:00:00:00")
    with pytest.raises(ValueError):
        ev.MacChange(port_id=0, proxy="p", ifindex=1, mac="02:00:00:00:00:AA")  # lower case only
    with pytest.raises(ValueError):
        ev.AddrAdd(port_id=0, proxy="p", ifindex=1, ip="010.0.0.1", prefixlen=24)


def test_reference_doc_is_current() -> None:
    from ifpx.schemas import reference

    doc = Path(__file__).parent.parent / "docs" / "reference.md"
    assert doc.read_text() == reference.render(), (
        "run: python -m ifpx.schemas.reference > docs/reference.md"
    )


def test_snapshot_replies_take_a_shortcut_to_the_same_bytes() -> None:
    from test_replica import _core

    snapshot = RESULTS["snapshot"]
    assert isinstance(snapshot, c.SnapshotResult)
    states = [snapshot.state]
    ops_ = [("bind", 0, 2), ("link", 2, 1400, True)]
    ops_ += [("route", i % 4 + 1, 2, 3, False) for i in range(8)]
    states.append(_core(ops_).snapshot_wire())
    for state in states:
        reply = c.OkReply(id=9, result=snapshot.model_copy(update={"state": state}))
        assert state.routes.rows
        assert codec.encode_reply(reply) == codec.dump(reply)


def test_a_replay_carries_messages_as_large_as_a_message_may_be() -> None:
    # 256 ECMP routes make an 80 KB message; a replay reply carries it as binary.
    hops = [
        ev.NextHop(gateway=f"10.0.{k}.2", ifindex=2 + k, port_id=k, flags=("onlink",))
        for k in range(2)
    ]
    events = [
        ev.RouteAdd(dst=f"10.{i // 256}.{i % 256}.0", prefixlen=24, nexthops=hops, proto=186)
        for i in range(MAX_BATCH)
    ]
    msg = Message(epoch=3, seq=1, tseq=1, ts=1.0, topic="route", events=events)
    payload = codec.encode_message(msg)[1]
    assert len(payload) > codec.MAX_STR
    reply = codec.encode_reply(c.OkReply(id=4, result=c.ReplayResult(epoch=3, messages=[payload])))
    decoded = codec.decode_reply(reply)
    assert isinstance(decoded, c.OkReply) and isinstance(decoded.result, c.ReplayResult)
    assert decoded.result.messages == [payload]
    assert codec.decode_payload(decoded.result.messages[0]) == msg
