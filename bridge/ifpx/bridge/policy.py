"""The kernel's policy routing rules (``ip rule``), mirrored and turned into events (pure).

A worker with several routing tables needs the rules to know which table a packet
is looked up in. Rules are few and concern every port, so all of them are
published, whatever the bindings. The kernel identifies a rule by all of its
fields, and so does the mirror.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from ifpx.schemas import events as ev
from ifpx.schemas.state import RuleState

from . import nlmsg

log = logging.getLogger(__name__)

RuleKey = tuple[Any, ...]
"""A rule without its ``deleted`` flag: its identity."""

_FIELDS = tuple(ev.RuleFields.model_fields)
"""The wire's rule fields, in the models' order (``src``/``dst`` come last)."""


def _key(rec: nlmsg.Rule) -> RuleKey:
    return tuple(rec[1:])


def _fields(rec: nlmsg.Rule) -> dict[str, Any]:
    values = rec._asdict()
    fields = {name: values[name] for name in _FIELDS}
    fields["action"] = nlmsg.RULE_ACTIONS.get(rec.action, "nop")
    return fields


def rule_event(rec: nlmsg.Rule, deleted: bool) -> ev.EventBase:
    """The ``rule(6)_add``/``_del`` event of a rule (validated: rules are few)."""
    cls: type[ev.RuleAdd | ev.RuleDel | ev.Rule6Add | ev.Rule6Del]
    if rec.family == nlmsg.AF_INET:
        cls = ev.RuleDel if deleted else ev.RuleAdd
    else:
        cls = ev.Rule6Del if deleted else ev.Rule6Add
    return cls(**_fields(rec), src=rec.src, dst=rec.dst)


class PolicyRules:
    """The rules of both families, by identity."""

    def __init__(self) -> None:
        self.rules: dict[RuleKey, nlmsg.Rule] = {}

    def __len__(self) -> int:
        return len(self.rules)

    def apply(self, rec: nlmsg.Rule) -> list[ev.EventBase]:
        """Apply a RTM_NEWRULE/RTM_DELRULE; return the event, if anything changed."""
        if rec.action not in nlmsg.RULE_ACTIONS:
            return []  # an action this kernel knows and we do not: never guessed at
        key = _key(rec)
        if rec.deleted:
            old = self.rules.pop(key, None)
            return [] if old is None else [rule_event(old, True)]
        if key in self.rules:
            return []
        try:
            added = rule_event(rec, False)
        except ValidationError as exc:  # nothing the kernel sends today; never a crash
            log.warning("rule not published: %s", exc.errors(include_url=False)[0]["msg"])
            return []
        self.rules[key] = rec
        return [added]

    def sweep(self, family: int, dumped: Iterable[nlmsg.Rule]) -> list[ev.EventBase]:
        """Remove the rules of ``family`` a complete dump lacks; return their events.

        Applying the dump's records (:meth:`apply`) then completes the reconciliation.
        """
        seen = {_key(r) for r in dumped}
        gone = sorted((k for k, r in self.rules.items() if r.family == family), key=repr)
        return [rule_event(self.rules.pop(key), True) for key in gone if key not in seen]

    def states(self) -> list[RuleState]:
        """Every rule as a snapshot carries it."""
        return [
            RuleState(
                **_fields(r), family=4 if r.family == nlmsg.AF_INET else 6, src=r.src, dst=r.dst
            )
            for r in self.rules.values()
        ]
