"""The subscriber's protocol machine, Python and C, held to the same trace fixtures (no root)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import tracing
from ctools import build, have_toolchain

from ifpx.schemas import codec
from ifpx.schemas import commands as c
from ifpx.schemas.topics import TOPICS
from ifpx.subscribers.sync import Action, Identity, ResetControl, SendReport, SyncMachine


def _actions(actions: list[Action]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for a in actions:
        if isinstance(a, ResetControl):
            out.append({"reset": True})
        elif isinstance(a, SendReport):
            r = a.command
            out.append({"cmd": "report", "id": r.id, "epoch": r.epoch, "seq": r.seq})
        elif isinstance(a.command, c.Replay):
            cmd = a.command
            out.append(
                {"cmd": "replay", "id": cmd.id, "epoch": cmd.epoch, "from_seq": cmd.from_seq}
            )
        else:
            out.append({"cmd": "snapshot", "id": a.command.id})
    return out


def _run_python(trace: dict[str, Any]) -> tuple[list[tracing.Outcome], dict[str, Any]]:
    ident = trace.get("identity")
    identity = None
    if ident is not None:
        identity = Identity(ident["name"], ident["instance"], interval=ident["interval_ms"] / 1000)
    machine = SyncMachine(set(trace.get("topics", TOPICS)), identity=identity)
    outcomes = []
    for step in trace["steps"]:
        now = step["at"] / 1000
        if step.get("start"):
            actions = machine.start(now)
        elif "message" in step:
            payload = tracing.message_bytes(step["message"])
            try:
                msg = codec.decode_payload(payload)
            except codec.CodecError:
                machine.on_bad_message()
                actions = []
            else:
                actions = machine.on_message(msg, now)
        elif "reply" in step:
            actions = machine.on_reply(codec.decode_reply(tracing.reply_bytes(step["reply"])), now)
        else:
            actions = machine.tick(now)
        kinds = [e.kind for e in machine.take(1_000_000)]
        machine.applied_all_taken()  # as the C machine, once every event is delivered
        outcomes.append(tracing.Outcome(send=_actions(actions), events=kinds))
    state = machine.state
    final = {
        "epoch": machine.epoch,
        "seq": machine.seq,
        "synced": machine.synced,
        "routes": sorted(
            f"{dst}/{plen}" for _f, _t, dst, plen, _m in [*state.routes, *state.groutes]
        ),
        "ports": {str(p): port.mtu for p, port in state.ports.items()},
        "stats": vars(machine.stats),
    }
    return outcomes, final


def _check(trace: dict[str, Any], outcomes: list[tracing.Outcome], final: dict[str, Any]) -> None:
    for i, (step, got) in enumerate(zip(trace["steps"], outcomes, strict=True)):
        assert got == tracing.expected(step), f"step {i} (at {step['at']} ms)"
    want = trace["final"]
    for key in ("epoch", "seq", "synced", "routes", "ports"):
        assert final[key] == want[key], key
    for name, value in want["stats"].items():
        assert final["stats"][name] == value, name


@pytest.mark.parametrize("name", tracing.names())
def test_python_machine_follows_the_trace(name: str) -> None:
    trace = tracing.load(name)
    _check(trace, *_run_python(trace))


@pytest.fixture(scope="module")
def trace_tool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not have_toolchain("msgpack", "libzmq"):
        pytest.skip("needs cc, make, pkg-config, libmsgpack-dev and libzmq3-dev (apt)")
    return build(tmp_path_factory.mktemp("cbuild")) / "ifpx_trace"


def _run_c(tool: Path, trace: dict[str, Any]) -> tuple[list[tracing.Outcome], dict[str, Any]]:
    proc = subprocess.run(
        [str(tool)], input=tracing.lines(trace), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    outcomes: list[tracing.Outcome] = []
    current = tracing.Outcome()
    final: dict[str, Any] = {}
    for line in proc.stdout.splitlines():
        doc = json.loads(line)
        if "send" in doc:
            current.send.append(doc["send"])
        elif "event" in doc:
            current.events.append(doc["event"])
        elif "step" in doc:
            outcomes.append(current)
            current = tracing.Outcome()
        else:
            report = doc["final"]
            state = report["state"]
            final = {
                "epoch": report["epoch"],
                "seq": report["seq"],
                "synced": bool(report["synced"]),
                "routes": sorted(r["dst"] for r in state["routes"]),
                "ports": {str(p["port_id"]): p["mtu"] for p in state["ports"]},
                "stats": report["stats"],
            }
    return outcomes, final


@pytest.mark.parametrize("name", tracing.names())
def test_c_machine_follows_the_trace(trace_tool: Path, name: str) -> None:
    trace = tracing.load(name)
    _check(trace, *_run_c(trace_tool, trace))


def test_under_a_kinds_filter_the_initial_state_brings_only_those_kinds() -> None:
    trace = tracing.load("initial-sync-drops-what-the-snapshot-covers")
    machine = SyncMachine({"route", "port", "sync", "hb"}, kinds={"route_add"})
    machine.start(0.0)
    reply = codec.decode_reply(tracing.reply_bytes(trace["steps"][-1]["reply"]))
    machine.on_reply(reply, 0.01)
    kinds = [e.kind for e in machine.take(100)]
    # The port's MTU and link state were not subscribed to: no made-up "mtu 0" events.
    assert kinds == ["port_bound", "cfg_done"]
