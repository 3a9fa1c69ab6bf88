"""Hostile input to the pure parts, no root needed: the controller, both decoders, the state file.

The fuzz tests run on a bounded budget in CI (hypothesis's derandomised profile),
and the C decoders, built with AddressSanitizer and UBSan, are fed the very
corpus the Python message decoder was: a crash or a sanitizer report fails.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path
from typing import Any

import controlkit
import msgpack
import pytest
from ctools import C_DIR, have_toolchain
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from samples import EVENTS, RESULTS

from ifpx.bridge import statefile
from ifpx.bridge.bindings import BindingTable
from ifpx.bridge.control import READ_ONLY, Controller
from ifpx.schemas import codec
from ifpx.schemas import commands as c
from ifpx.schemas.envelope import Message
from ifpx.schemas.topics import KIND_TOPIC, TOPICS
from ifpx.subscribers import sync


@pytest.fixture
def controller(tmp_path: Path) -> tuple[Controller, controlkit.Effects]:
    ctl, effects, _stream = controlkit.controller(tmp_path)
    return ctl, effects


_reply = controlkit.ask


# ---- the control socket's request decoder ----------------------------------------


@pytest.mark.parametrize("rid", [True, False, 1.0, "1", None, -1, 2**63, [1]])
def test_an_id_that_is_no_integer_gets_an_error_reply(controller: Any, rid: object) -> None:
    ctl, _ = controller
    for read_only in (False, True):
        reply = _reply(ctl, msgpack.packb({"v": 1, "id": rid, "cmd": "status"}), read_only)
        assert isinstance(reply, c.ErrorReply) and reply.id == 0
        assert reply.error.code == c.ErrorCode.BAD_REQUEST


def test_bools_pass_for_no_number_anywhere(controller: Any) -> None:
    ctl, _ = controller
    for doc in (
        {"v": True, "id": 1, "cmd": "status"},
        {"v": 1, "id": 2, "cmd": "bind", "port_id": True, "proxy": "tap0"},
        {"v": 1, "id": 3, "cmd": "bind", "port_id": 0, "proxy": True},
        {"v": 1, "id": 4, "cmd": "replay", "epoch": True, "from_seq": 0},
        {"v": 1, "id": 5, "cmd": "hello", "versions": [True]},
    ):
        reply = _reply(ctl, msgpack.packb(doc))
        assert isinstance(reply, c.ErrorReply), doc
    assert ctl.core.bindings.entries() == []


def test_a_request_over_the_limit_gets_too_large(controller: Any) -> None:
    ctl, _ = controller
    big = msgpack.packb({"v": 1, "id": 9, "cmd": "status", "pad": "x" * codec.MAX_REQUEST_BYTES})
    reply = _reply(ctl, big)
    assert isinstance(reply, c.ErrorReply) and reply.error.code == c.ErrorCode.TOO_LARGE
    assert len(big) < codec.MAX_REQUEST_FRAME  # the socket reads it, so it can be answered


def test_a_reply_that_cannot_be_built_still_goes_out(controller: Any, monkeypatch: Any) -> None:
    ctl, _ = controller

    def broken(*_args: object) -> bytes:
        raise RuntimeError("bug")

    monkeypatch.setattr(ctl.server, "_answer", broken)
    reply = _reply(ctl, codec.encode_request(c.Status(id=4)))
    assert isinstance(reply, c.ErrorReply) and reply.error.code == c.ErrorCode.INTERNAL


_keys = st.sampled_from(["v", "id", "cmd", "port_id", "proxy", "epoch", "from_seq", "topics"])
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
_docs = st.recursive(
    _scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(_keys | st.text(max_size=6), kids),
    max_leaves=12,
)
_requests = st.one_of(
    st.binary(max_size=64),
    _docs.map(msgpack.packb),
    st.fixed_dictionaries(
        {
            "v": st.sampled_from([1, True, 1.0, "1", None]),
            "id": _scalars,
            "cmd": st.sampled_from(sorted(c.COMMAND_TYPES)) | st.text(max_size=8),
        },
        optional={
            "port_id": _scalars,
            "proxy": _scalars,
            "versions": _docs,
            # the barrier's commands: a report, and what wait_applied takes
            "worker": _scalars,
            "instance": _scalars,
            "epoch": _scalars,
            "seq": _scalars,
            "synced": _scalars,
            "topics": _docs,
            "interval": _scalars,
            "counters": _docs,
            "workers": _docs,
        },
    ).map(msgpack.packb),
)


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(payload=_requests, read_only=st.booleans())
def test_fuzz_every_request_gets_exactly_one_valid_reply(
    tmp_path_factory: pytest.TempPathFactory, payload: bytes, read_only: bool
) -> None:
    ctl, _effects, _stream = controlkit.controller(tmp_path_factory.mktemp("fuzz"))
    reply = _reply(ctl, payload, read_only)  # raises if the bytes are no valid reply
    if isinstance(reply, c.OkReply) and read_only:
        assert reply.result.type in READ_ONLY


# ---- an acknowledgement means written ---------------------------------------------


def test_a_failed_write_changes_nothing_and_a_retry_is_honest(controller: Any) -> None:
    ctl, effects = controller
    reply, events = controlkit.run(ctl, c.Bind(id=1, port_id=2, proxy="tap0"))
    assert isinstance(reply, c.OkReply) and events
    effects.fail = OSError(28, "No space left on device")
    refusals = [c.Bind(id=2, port_id=3, proxy="tap0"), c.Unbind(id=3, port_id=2)]
    for cmd in refusals * 2:  # a retry must not say "already bound" or "nothing to unbind"
        reply, events = controlkit.run(ctl, cmd)
        assert isinstance(reply, c.ErrorReply)
        assert reply.error.code == c.ErrorCode.STATE_NOT_SAVED
        assert "No space left" in reply.error.message
        assert events == []  # nothing is announced for what was refused
    assert [e.port_id for e in ctl.core.bindings.entries()] == [2]
    assert [b["port_id"] for b in json.loads(effects.path.read_text())["bindings"]] == [2]
    effects.fail = None
    reply, events = controlkit.run(ctl, c.Bind(id=4, port_id=3, proxy="tap0"))
    assert isinstance(reply, c.OkReply) and reply.result.changed  # type: ignore[union-attr]
    assert [b["port_id"] for b in json.loads(effects.path.read_text())["bindings"]] == [2, 3]


def test_a_save_that_fails_leaves_no_temp_file(tmp_path: Path) -> None:
    table = BindingTable()
    table.bind(0, "tap0", 2)
    target = tmp_path / "state.json"
    target.mkdir()  # the rename over it fails, even for root
    with pytest.raises(OSError):
        statefile.save(target, table, 7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


# ---- the state file ----------------------------------------------------------------


def _state(tmp_path: Path, bindings: Any, **extra: Any) -> Path:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"format": 1, "bindings": bindings, **extra}))
    return path


@pytest.mark.parametrize(
    ("bindings", "why"),
    [
        ([{"port_id": True, "proxy": "tap0", "ifindex": 2}], "bad port_id"),
        ([{"port_id": 70000, "proxy": "tap0", "ifindex": 2}], "bad port_id"),
        ([{"port_id": 0, "proxy": "averyveryverylongname", "ifindex": 2}], "bad proxy"),
        ([{"port_id": 0, "proxy": "ta p", "ifindex": 2}], "bad proxy"),
        ([{"port_id": 0, "proxy": "", "ifindex": 2}], "bad proxy"),
        ([{"port_id": 0, "proxy": "tap0", "ifindex": False}], "bad ifindex"),
        ([{"port_id": 0, "proxy": "t0"}, {"port_id": 0, "proxy": "t1"}], "bound twice"),
        ([{"port_id": 0, "proxy": "tap0", "colour": "red"}], "bad binding"),
        ({"port_id": 0}, "not a list"),
    ],
)
def test_state_file_values_are_held_to_the_wire_rules(
    tmp_path: Path, bindings: Any, why: str
) -> None:
    with pytest.raises(ValueError, match=why):
        statefile.load(_state(tmp_path, bindings))


def test_state_file_that_is_a_directory_or_has_a_bad_epoch(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        statefile.load(tmp_path)
    with pytest.raises(ValueError, match="bad epoch"):
        statefile.load(_state(tmp_path, [], epoch=True))
    saved = statefile.load(_state(tmp_path, [{"port_id": 1, "proxy": "tap0"}], epoch=42))
    assert saved.epoch == 42 and [e.port_id for e in saved.bindings] == [1]


def test_epochs_grow_whatever_the_clock_does() -> None:
    assert statefile.next_epoch(1000, 10) == 1000
    assert statefile.next_epoch(1000, 5000) == 5001  # the clock went back
    with pytest.raises(ValueError):
        statefile.next_epoch(1000, 2**64 - 1)


# ---- the subscriber's message decoder ------------------------------------------------


def _message(topic: str, events: list[dict[str, Any]], **fields: Any) -> bytes:
    doc = {"v": 1, "epoch": 7, "seq": 3, "tseq": 2, "ts": 1.5, "topic": topic, "events": events}
    doc.update(fields)
    data: bytes = msgpack.packb(doc)
    return data


def _event(kind: str) -> dict[str, Any]:
    if kind == "heartbeat":
        return {"kind": "heartbeat", "topic_seqs": {"link": 1}}
    return EVENTS[kind].model_dump()


ENVELOPE_BREAKERS = {
    "empty heartbeat": _message("hb", [], tseq=0),
    "route_add as heartbeat": _message("hb", [_event("route_add")], tseq=0),
    "two heartbeats": _message("hb", [_event("heartbeat"), _event("heartbeat")], tseq=0),
    "route_add on link": _message("link", [_event("route_add")]),
    "heartbeat on route": _message("route", [_event("heartbeat")]),
    "no events": _message("route", []),
    "bool epoch": _message("link", [_event("mtu_change")], epoch=True),
    "negative tseq in heartbeat": _message(
        "hb", [{"kind": "heartbeat", "topic_seqs": {"link": -1}}], tseq=0
    ),
}


@pytest.mark.parametrize("name", sorted(ENVELOPE_BREAKERS))
def test_messages_that_break_the_envelope_rules_are_refused(name: str) -> None:
    payload = ENVELOPE_BREAKERS[name]
    topic = msgpack.unpackb(payload)["topic"].encode()
    with pytest.raises(codec.CodecError):
        codec.decode_message([topic, payload])


def _golden_payloads() -> list[bytes]:
    out = []
    for kind, event in EVENTS.items():
        msg = Message(epoch=7, seq=3, tseq=2, ts=1.5, topic=KIND_TOPIC[kind], events=[event])
        out.append(codec.encode_message(msg)[1])
    return out


_HOSTILE_HEADS = [b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff", b"\xdb\xff\xff\xff\xff",
                  b"\xc6\xff\xff\xff\xff", b"\xc9\x7f\xff\xff\xff\x01", b"\xdc\xff\xff",
                  b"\x91" * 40, b"\xc1"]  # fmt: skip


@st.composite
def _mutants(draw: st.DrawFn) -> bytes:
    base = bytearray(draw(st.sampled_from(_golden_payloads())))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "splice"]))
        at = draw(st.integers(0, len(base)))
        if op == "flip" and base:
            base[min(at, len(base) - 1)] = draw(st.integers(0, 255))
        elif op == "cut":
            del base[at:]
        elif op == "insert":
            base[at:at] = draw(st.sampled_from(_HOSTILE_HEADS))
        else:
            base[at:at] = draw(st.binary(max_size=8))
    return bytes(base)


_messages = st.one_of(
    _mutants(),
    st.binary(max_size=64),
    _docs.map(msgpack.packb),
    st.builds(
        lambda topic, kinds, epoch, seq, tseq: _message(
            topic, [_event(k) for k in kinds], epoch=epoch, seq=seq, tseq=tseq
        ),
        st.sampled_from(TOPICS),
        st.lists(st.sampled_from(sorted(KIND_TOPIC)), max_size=3),
        st.sampled_from([0, 7, 2**64 - 1, -1, True]),
        st.integers(0, 2**64 - 1) | st.booleans(),
        st.integers(0, 3),
    ),
)


def test_fuzz_message_decoders_python_and_c_with_sanitizers(tmp_path: Path) -> None:
    corpus: list[bytes] = [*ENVELOPE_BREAKERS.values(), *_HOSTILE_HEADS, *_golden_payloads()]

    @settings(max_examples=3000, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(_messages)
    def one(payload: bytes) -> None:
        corpus.append(payload)
        try:
            msg = codec.decode_payload(payload)
        except codec.CodecError:
            return
        assert msg.events and all(KIND_TOPIC[e.kind] == msg.topic for e in msg.events)
        assert msg.topic != "hb" or len(msg.events) == 1

    one()
    accepted = sum(1 for p in corpus if _decodes(p))
    assert 0 < accepted < len(corpus)  # the corpus holds both kinds
    if not have_toolchain("msgpack", "libzmq"):
        pytest.skip("C half: needs cc, make, pkg-config, libmsgpack-dev and libzmq3-dev (apt)")
    tool = _sanitized_dump_tool(tmp_path)
    lines = [p.hex() for p in corpus]
    lines += ["S " + p.hex() for p in _reply_corpus()]
    lines += ["R " + p.hex() for p in _reply_corpus()]
    _run_sanitized(tool, lines)


def _decodes(payload: bytes) -> bool:
    try:
        codec.decode_payload(payload)
    except codec.CodecError:
        return False
    return True


def _reply_corpus() -> list[bytes]:
    rnd = random.Random(15)
    results: list[Any] = [*RESULTS.values()]
    results.append(c.ReplayResult(epoch=7, messages=_golden_payloads()[:6]))
    bases = [codec.encode_reply(c.OkReply(id=i, result=r)) for i, r in enumerate(results)]
    bases.append(codec.encode_reply(codec.error_reply(c.ErrorCode.JOURNAL_GAP, "gone", 3)))
    out = list(bases)
    for _ in range(600):
        base = bytearray(rnd.choice(bases))
        at = rnd.randrange(len(base) + 1)
        choice = rnd.random()
        if choice < 0.4 and base:
            base[min(at, len(base) - 1)] = rnd.randrange(256)
        elif choice < 0.7:
            base[at:at] = rnd.choice(_HOSTILE_HEADS)
        else:
            del base[at:]
        out.append(bytes(base))
    return out


def _sanitized_dump_tool(tmp_path: Path) -> Path:
    out = tmp_path / "asan"
    subprocess.run(["make", "-s", "-C", str(C_DIR), f"OUT={out}", "SANITIZE=1",
                    f"{out}/ifpx_wire_dump"], check=True, timeout=300)  # fmt: skip
    return out / "ifpx_wire_dump"


def _run_sanitized(tool: Path, lines: list[str]) -> None:
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=86",
           "UBSAN_OPTIONS": "halt_on_error=1:exitcode=87"}  # fmt: skip
    proc = subprocess.run([str(tool)], input="\n".join(lines) + "\n", capture_output=True,
                          text=True, timeout=600, env=env)  # fmt: skip
    report = proc.stderr[-3000:]
    assert "Sanitizer" not in proc.stderr and "runtime error" not in proc.stderr, report
    assert proc.returncode in (0, 1), f"decoder died: {proc.returncode} {proc.stderr[-2000:]}"
    assert len(proc.stdout.splitlines()) >= len(lines)  # one verdict per line at least


def test_the_c_decoder_refuses_the_allocation_bomb_without_allocating(tmp_path: Path) -> None:
    if not have_toolchain("msgpack", "libzmq"):
        pytest.skip("needs cc, make, pkg-config, libmsgpack-dev and libzmq3-dev (apt)")
    tool = _sanitized_dump_tool(tmp_path)
    bombs = ["ddffffffff", "S ddffffffff", "R ddffffffff", "S dfffffffff", "dbffffffff"]
    _run_sanitized(tool, bombs)


def test_the_machines_bounds_are_the_same_in_python_and_c() -> None:
    c_text = "".join((C_DIR / f).read_text() for f in ("ifpx_machine.h", "ifpx_machine_int.h"))
    probe_ms = round(sync.EPOCH_PROBE_INTERVAL * 1000)
    for define in (
        f"#define IFPX_MAX_HELD {sync.MAX_HELD}\n",
        f"#define IFPX_EPOCH_PROBE_MS {probe_ms}\n",
        f"#define RETIRED_EPOCHS {sync.RETIRED_EPOCHS}\n",
        f"#define MAX_PROBING {sync.MAX_PROBING}\n",
        f"#define IFPX_SNAPSHOT_RETRY_FIRST_MS {round(sync.SNAPSHOT_RETRY_FIRST * 1000)}\n",
        f"#define IFPX_SNAPSHOT_RETRY_MAX_MS {round(sync.SNAPSHOT_RETRY_MAX * 1000)}\n",
    ):
        assert define in c_text, define


def test_ifpx_open_cleans_up_after_a_failed_step(tmp_path: Path) -> None:
    if not have_toolchain("msgpack", "libzmq"):
        pytest.skip("needs cc, make, pkg-config, libmsgpack-dev and libzmq3-dev (apt)")
    out = tmp_path / "asan"
    subprocess.run(
        ["make", "-s", "-C", str(C_DIR), f"OUT={out}", "SANITIZE=1", f"{out}/ifpx_sub"],
        check=True,
        timeout=300,
    )
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1:exitcode=86"}
    sock = f"ipc://{tmp_path}/none.sock"
    for args, why in (
        (["--events", "bogus://x", "--control", sock], "Protocol not supported"),  # connect fails
        (["--events", sock, "--topics", "nonsense"], "Invalid argument"),  # options refused
    ):
        proc = subprocess.run(
            [str(out / "ifpx_sub"), *args], capture_output=True, text=True, timeout=60, env=env
        )
        assert proc.returncode == 1 and why in proc.stderr, proc.stderr
        assert "Sanitizer" not in proc.stderr, proc.stderr


def test_default_endpoints_are_the_same_in_python_and_c() -> None:
    from ifpx.schemas.endpoints import DEFAULT_CONTROL, DEFAULT_EVENTS

    header = (C_DIR / "ifpx.h").read_text()
    assert f'#define IFPX_DEFAULT_EVENTS "{DEFAULT_EVENTS}"\n' in header
    assert f'#define IFPX_DEFAULT_CONTROL "{DEFAULT_CONTROL}"\n' in header
