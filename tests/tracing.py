"""Trace fixtures (tests/traces/*.json): the subscriber's protocol, frames and time in, effects out.

A trace is a list of steps, each at a time in milliseconds: ``start`` (ask for
the first snapshot), ``message`` (a published message, as a document),
``reply`` (a control reply, as a document) or ``tick`` (time passes); a trace
with an ``identity`` (name, instance, interval_ms) makes reports too, and one
with ``topics`` follows those (every topic otherwise). After
each step, and after delivering every event it made ready, a machine must have
sent exactly the requests in ``send`` and delivered the kinds in ``events``;
at the end its epoch, sequence, counters and replica must be ``final``.

The same traces drive the Python :class:`~ifpx.subscribers.sync.SyncMachine` in
process and the C machine through ``ifpx_trace`` (subscribers/c/tools), which
reads the steps as lines of hex-encoded msgpack.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

TRACES = Path(__file__).parent / "traces"


def load(name: str) -> dict[str, Any]:
    """A trace by its file's stem."""
    doc: dict[str, Any] = json.loads((TRACES / f"{name}.json").read_text())
    return doc


def names() -> list[str]:
    """Every trace."""
    return sorted(p.stem for p in TRACES.glob("*.json"))


def message_bytes(doc: dict[str, Any]) -> bytes:
    """A message document as its payload frame (``v`` and ``ts`` filled in)."""
    data: bytes = msgpack.packb({"v": 1, "ts": time.time(), **doc}, use_bin_type=True)
    return data


def reply_bytes(doc: dict[str, Any]) -> bytes:
    """A reply document as its frame (a replay's messages packed as payloads)."""
    doc = {"v": 1, **doc}
    result = doc.get("result")
    if isinstance(result, dict) and result.get("type") == "replay":
        doc["result"] = {**result, "messages": [message_bytes(m) for m in result["messages"]]}
    data: bytes = msgpack.packb(doc, use_bin_type=True)
    return data


@dataclass
class Outcome:
    """What a machine did at one step: requests sent and event kinds delivered."""

    send: list[dict[str, Any]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)


def expected(step: dict[str, Any]) -> Outcome:
    """What the trace says should happen at ``step``."""
    return Outcome(send=step.get("send", []), events=step.get("events", []))


def lines(trace: dict[str, Any]) -> str:
    """The trace as ``ifpx_trace`` reads it: one line a step."""
    out = []
    if "topics" in trace:
        out.append(f"topics 0 {','.join(trace['topics'])}")
    ident = trace.get("identity")
    if ident is not None:
        out.append(f"identity 0 {ident['name']} {ident['instance']} {ident['interval_ms']}")
    for step in trace["steps"]:
        at = step["at"]
        if step.get("start"):
            out.append(f"start {at}")
        elif "message" in step:
            doc = step["message"]
            out.append(f"msg {at} {doc['topic']} {message_bytes(doc).hex()}")
        elif "reply" in step:
            out.append(f"reply {at} {reply_bytes(step['reply']).hex()}")
        else:
            out.append(f"tick {at}")
    return "\n".join(out) + "\n"
