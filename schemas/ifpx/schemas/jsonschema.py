"""JSON Schema of every event, command, result and envelope, for non-Python consumers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .commands import COMMAND_TYPES, REPLY_ADAPTER, ErrorReply, OkReply
from .envelope import Message
from .events import EVENT_ADAPTER, EVENT_TYPES
from .state import SnapshotState, State


def schemas() -> dict[str, dict[str, Any]]:
    """Every schema, keyed by a file stem such as ``event.mtu_change``."""
    out: dict[str, dict[str, Any]] = {}
    for kind, cls in EVENT_TYPES.items():
        out[f"event.{kind}"] = cls.model_json_schema()
    for name, cmd in COMMAND_TYPES.items():
        out[f"command.{name}"] = cmd.model_json_schema()
    result_union = OkReply.model_fields["result"].annotation
    for model in _members(result_union):
        tag = model.model_fields["type"].default
        out[f"result.{tag}"] = model.model_json_schema()
    out["envelope.message"] = Message.model_json_schema()
    out["envelope.event"] = EVENT_ADAPTER.json_schema()
    out["envelope.reply"] = REPLY_ADAPTER.json_schema()
    out["envelope.error_reply"] = ErrorReply.model_json_schema()
    out["state"] = State.model_json_schema()
    out["snapshot_state"] = SnapshotState.model_json_schema()
    return out


def _members(annotation: Any) -> list[type[BaseModel]]:
    args = getattr(annotation, "__metadata__", None) and annotation.__origin__
    union = args if args is not None else annotation
    return [m for m in getattr(union, "__args__", ()) if isinstance(m, type)]


def write(directory: Path) -> list[Path]:
    """Write one ``<name>.schema.json`` per schema into ``directory``; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, schema in sorted(schemas().items()):
        path = directory / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        paths.append(path)
    return paths
