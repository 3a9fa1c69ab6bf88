"""The bindings' state file: atomic, durable writes (thin I/O)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .bindings import BindingTable, Entry

FORMAT = 1


def save(path: Path, table: BindingTable) -> None:
    """Write the bindings so that a crash leaves either the old or the new file, never a torn one.

    temp file, fsync, rename over the old one, fsync the directory.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"format": FORMAT, "bindings": table.to_json()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (json.dumps(doc, indent=1) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    _crash_hook()
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


_saves = 0


def _crash_hook() -> None:
    # Test hook for the fault tests: IFPX_TEST_CRASH=statefile-before-rename[:N] makes
    # the Nth save (every save without N) die between the durable write and the rename.
    global _saves
    spec = os.environ.get("IFPX_TEST_CRASH", "")
    if not spec.startswith("statefile-before-rename"):
        return
    _saves += 1
    _, _, nth = spec.partition(":")
    if not nth or int(nth) == _saves:
        os._exit(99)


def load(path: Path) -> list[Entry]:
    """The saved bindings ([] if there is no file); ValueError if the file is invalid."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    try:
        doc = json.loads(text)
        if doc.get("format") != FORMAT:
            raise ValueError(f"unknown state file format {doc.get('format')!r}")
        return BindingTable.parse(doc["bindings"])
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: invalid state file: {exc}") from None
