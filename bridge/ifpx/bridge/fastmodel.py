"""Building event models without validation, for the bridge's hot path (pure).

This writes pydantic's private instance attributes directly, so it is tied to
pydantic 2 (the dependency is pinned below 3) and to the models' field order; it
is the bridge's alone, for values its own netlink decoder produced. Everything a
subscriber receives is validated by the models on its side.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

_M = TypeVar("_M", bound=BaseModel)
MISSES: dict[str, int] = {}
"""Calls that could not take the shortcut, by model (field order not as declared)."""
_Spec = tuple[tuple[tuple[str, Any, Any], ...], dict[str, Any], tuple[str, ...], set[str]]
_DEFAULTS: dict[type[BaseModel], _Spec] = {}
"""Per model: (every field with its default and factory, the ``kind`` head, the order
of the other fields, and those as the fields-set)."""


def _spec(cls: type[BaseModel]) -> _Spec:
    every = tuple(
        (name, info.default, info.default_factory) for name, info in cls.model_fields.items()
    )
    # The bridge passes every field but ``kind``, in field order: then the keyword dict
    # itself, behind ``kind``, is the model's dict (no loop per field).
    head = {"kind": every[0][1]} if every and every[0][0] == "kind" else {}
    order = tuple(name for name, _d, _f in every[len(head) :])
    return every, head, order, set(order)


def trusted(cls: type[_M], /, **fields: Any) -> _M:
    """Build ``cls`` from values that need no validation (our own decoder made them).

    What ``model_construct`` does, for the fixed shapes of the wire contract and
    several times faster: it is on the bridge's per-route path. Keys are stored
    in field order, so the result dumps byte for byte like a validated model
    (``tests/test_core.py`` holds the two paths equal). Given every field but
    ``kind`` in field order it takes the shortcut; otherwise the general path,
    counted in :data:`MISSES` (``tests/test_fastmodel.py`` holds the bridge's
    hot path to the shortcut).
    """
    spec = _DEFAULTS.get(cls)
    if spec is None:
        spec = _DEFAULTS[cls] = _spec(cls)
    every, head, order, given = spec
    if tuple(fields) == order:
        values = {**head, **fields} if head else fields
        # Frozen models never change their fields-set: every instance can share one.
        fields_set = given
    else:
        MISSES[cls.__name__] = MISSES.get(cls.__name__, 0) + 1
        fields_set = set(fields)
        values = {}
        for name, default, factory in every:
            if name in fields:
                values[name] = fields[name]
            else:
                values[name] = factory() if factory is not None else default
    model = cls.__new__(cls)
    object.__setattr__(model, "__dict__", values)
    object.__setattr__(model, "__pydantic_fields_set__", fields_set)
    object.__setattr__(model, "__pydantic_extra__", None)
    object.__setattr__(model, "__pydantic_private__", None)
    return model
