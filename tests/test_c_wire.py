"""The C decoder (subscribers/c) against the Python models: same bytes, same fields."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest
from ctools import build, have_toolchain
from samples import EVENTS

from ifpx.schemas import codec
from ifpx.schemas.envelope import Message
from ifpx.schemas.topics import KIND_TOPIC

GOLDEN = Path(__file__).parent / "golden"

pytestmark = pytest.mark.skipif(
    not have_toolchain("msgpack", "libzmq"),
    reason="needs cc, make, pkg-config, libmsgpack-dev and libzmq3-dev (apt)",
)


@pytest.fixture(scope="module")
def dump_tool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("cbuild")) / "ifpx_wire_dump"


def _run(tool: Path, payloads: list[bytes]) -> tuple[int, list[dict[str, object]]]:
    proc = subprocess.run(
        [str(tool)],
        input="".join(p.hex() + "\n" for p in payloads),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in (0, 1), f"decoder died: {proc.returncode} {proc.stderr}"
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()]


def test_every_golden_event_decodes_to_the_same_fields(dump_tool: Path) -> None:
    payloads = []
    for kind, event in EVENTS.items():
        msg = Message(epoch=7, seq=3, tseq=2, ts=1.5, topic=KIND_TOPIC[kind], events=[event])
        payloads.append(codec.encode_message(msg)[1])
    code, lines = _run(dump_tool, payloads)
    assert code == 0
    events = [line for line in lines if "kind" in line]
    assert len(events) == len(EVENTS)
    for got, (kind, want) in zip(events, EVENTS.items(), strict=True):
        assert got == want.model_dump(mode="json"), kind
    headers = [line["header"] for line in lines if "header" in line]
    assert headers[0] == {"epoch": 7, "seq": 3, "tseq": 2, "topic": "link", "events": 1}


def test_golden_message_bytes(dump_tool: Path) -> None:
    golden = json.loads((GOLDEN / "envelope.message.json").read_text())
    code, lines = _run(dump_tool, [bytes.fromhex(golden["msgpack_hex"])])
    assert code == 0
    assert [line for line in lines if "kind" in line] == golden["json"]["events"]
    header = lines[-1]["header"]
    assert header["seq"] == golden["json"]["seq"] and header["topic"] == "route"


def test_malformed_input_is_rejected_without_crashing(dump_tool: Path) -> None:
    rng = random.Random(4242)
    valid = [
        codec.encode_message(
            Message(epoch=1, seq=1, tseq=1, ts=0.0, topic=KIND_TOPIC[k], events=[e])
        )[1]
        for k, e in EVENTS.items()
    ]
    cases: list[bytes] = [b"", b"\xc1", b"\x91" * 100_000, b"\xdd\xff\xff\xff\xff"]
    for _ in range(3000):
        base = bytearray(rng.choice(valid))
        for _ in range(rng.randint(1, 4)):
            base[rng.randrange(len(base))] = rng.randrange(256)
        cases.append(bytes(base[: rng.randint(0, len(base))]))
        cases.append(bytes(rng.randrange(256) for _ in range(rng.randint(0, 64))))
    code, lines = _run(dump_tool, cases)
    errors = [line["error"] for line in lines if "error" in line]
    decoded = [line for line in lines if "header" in line]
    assert code == 1 and len(errors) + len(decoded) == len(cases)
    assert all(e in (-1, -2, -3, -4) for e in errors)


def _run_snapshot(tool: Path, replies: list[bytes]) -> list[dict[str, object]]:
    proc = subprocess.run(
        [str(tool)],
        input="".join("S " + r.hex() + "\n" for r in replies),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_snapshot_becomes_the_same_initial_events_as_in_python(dump_tool: Path) -> None:
    from ifpx.schemas import commands as c
    from ifpx.subscribers.replica import Replica
    from ifpx.subscribers.replicadiff import initial_events

    golden = json.loads((GOLDEN / "result.snapshot.json").read_text())
    result = c.SnapshotResult.model_validate(golden["json"] | {"state": golden["json"]["state"]})
    reply = codec.encode_reply(c.OkReply(result=result))
    lines = _run_snapshot(dump_tool, [reply])
    got = [line for line in lines if "kind" in line]
    replica = Replica()
    replica.load(result.state)
    want = [e.model_dump(mode="json") for e in initial_events(replica)]
    want.append({"kind": "cfg_done"})

    # The same events; C emits each port's addresses in snapshot order, Python sorted.
    def canon(events: list[dict[str, object]]) -> list[str]:
        return sorted(json.dumps(e, sort_keys=True) for e in events)

    assert canon(got) == canon(want)
    assert got[-1] == {"kind": "cfg_done"}
    assert lines[-1] == {"snapshot": {"epoch": 1, "seq": 42, "cfg_done": True}}
    # An error reply and garbage are refused.
    refused = _run_snapshot(
        dump_tool,
        [
            codec.encode_reply(codec.error_reply(c.ErrorCode.INTERNAL, "x")),
            b"\x93\x01\x02",
            reply[:-3],
        ],
    )
    assert all("error" in line for line in refused) and len(refused) == 3


def test_malformed_snapshots_are_rejected_without_crashing(dump_tool: Path) -> None:
    from ifpx.schemas import commands as c

    golden = json.loads((GOLDEN / "result.snapshot.json").read_text())
    reply = codec.encode_reply(c.OkReply(result=c.SnapshotResult.model_validate(golden["json"])))
    rng = random.Random(77)
    cases = []
    for _ in range(2000):
        mutated = bytearray(reply)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        cases.append(bytes(mutated[: rng.randint(0, len(mutated))]))
    lines = _run_snapshot(dump_tool, cases)
    outcomes = [line for line in lines if "error" in line or "snapshot" in line]
    assert len(outcomes) == len(cases)
    assert all(line.get("error", 0) in (0, -1, -2, -3, -4) for line in outcomes)


def test_a_group_form_snapshot_that_does_not_add_up_is_refused(dump_tool: Path) -> None:
    from ifpx.schemas import commands as c
    from ifpx.schemas import events as ev
    from ifpx.schemas.state import RouteTable, SnapshotState

    def hop(ifindex: int) -> ev.NextHop:
        return ev.NextHop(gateway="192.0.2.2", ifindex=ifindex, port_id=0, weight=1)

    def reply(sets: list[list[ev.NextHop]], groups: list[int]) -> bytes:
        table = RouteTable.model_construct(
            nexthop_sets=sets,
            rows=[(4, f"10.{i}.0.0", 16, 254, 4, 0, i) for i in range(len(sets))],
            forwarding=[("unicast", None) if s else ("blackhole", None) for s in sets],
            groups=groups,
        )
        state = SnapshotState.model_construct(
            bindings=[], ports=[], routes=table, neighs=[], rules=[]
        )
        result = c.SnapshotResult.model_construct(
            epoch=1, seq=1, topic_seqs={}, cfg_done=True, state=state
        )
        return "G " + codec.encode_reply(c.OkReply(result=result)).hex() + "\n"  # type: ignore[return-value]

    cases = [
        reply([[hop(2)], [hop(2)], []], [5, 5, 0]),  # one group, twice with its hops; a drop
        reply([[hop(2)], [hop(3)]], [5, 5]),  # one group, two sets of hops
        reply([[hop(2)], [hop(3)]], [5, 0]),  # group 0 with hops
    ]
    proc = subprocess.run(
        [str(dump_tool)], input="".join(cases), capture_output=True, text=True, timeout=60
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    outcomes = [line for line in lines if "error" in line or "snapshot" in line]
    assert [o.get("error", 0) for o in outcomes] == [0, -2, -2]
    assert [line["kind"] for line in lines[: lines.index(outcomes[0])]].count("nhgroup_set") == 1
