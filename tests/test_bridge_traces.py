"""The bridge's pure heart follows its traces (tests/traces/bridge, see bridgetrace.py)."""

from __future__ import annotations

import copy
from typing import Any

import bridgetrace
import pytest

_OUT = ("events", "redumps", "again")


def replay(name: str, trace: dict[str, Any]) -> None:
    """Run ``trace``'s inputs; fail at the first step whose outputs differ from it."""
    runner = bridgetrace.Runner(trace.get("forms", {}))
    for i, step in enumerate(trace["steps"]):
        made = runner.step({k: v for k, v in step.items() if k not in _OUT})
        want: dict[str, Any] = {k: step[k] for k in _OUT if k in step}
        assert made == want, f"{name}: step {i} at {step['at']} ms"
    assert runner.final() == trace["final"], f"{name}: the final snapshot"


@pytest.mark.parametrize("name", bridgetrace.names())
def test_the_core_and_reconciler_follow_the_trace(name: str) -> None:
    replay(name, bridgetrace.load(name))


def test_every_scenario_has_its_trace_and_the_traces_cover_each_step_kind() -> None:
    assert bridgetrace.names() == sorted(bridgetrace.SCENARIOS)
    done = {
        what
        for name in bridgetrace.names()
        for step in bridgetrace.load(name)["steps"]
        for what in ("netlink", "dump", "redump", "tick", "bind", "unbind")
        if what in step
    }
    assert done == {"netlink", "dump", "redump", "tick", "bind", "unbind"}


@pytest.mark.parametrize("where", ["event", "redump", "final"])
def test_a_trace_that_says_otherwise_fails(where: str) -> None:
    name = "link-down-under-routes-both-forms"
    trace = copy.deepcopy(bridgetrace.load(name))
    step = next(s for s in trace["steps"] if s["events"] and s["redumps"])
    if where == "event":
        step["events"][-1]["nexthops"][0]["port_id"] = 7
    elif where == "redump":
        step["redumps"].pop()
    else:
        trace["final"]["routes"] = []
    with pytest.raises(AssertionError):
        replay(name, trace)
