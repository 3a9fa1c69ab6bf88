"""The bridge's state file: bindings and the last epoch, written atomically and durably (thin I/O).

The file is what makes an acknowledgement mean something: a binding change is
written here first, and made in memory and acknowledged only once the write
succeeded. The epoch is kept here too, so that the next bridge's epoch is
larger whatever the wall clock did in between.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .bindings import BindingTable, Entry

FORMAT = 1
MAX_EPOCH = 2**64 - 1


@dataclass
class Saved:
    """What a state file held: the bindings and the epoch of the bridge that wrote it."""

    bindings: list[Entry] = field(default_factory=list)
    epoch: int = 0


def next_epoch(now_ns: int, saved: int) -> int:
    """An epoch larger than ``saved``: the wall clock in nanoseconds, unless it went back.

    ValueError once the epochs are used up (a file written by a clock 580 years ahead).
    """
    epoch = max(now_ns, saved + 1)
    if epoch > MAX_EPOCH:
        raise ValueError(f"the saved epoch {saved} leaves no larger one")
    return epoch


def save(
    path: Path,
    table: BindingTable,
    epoch: int,
    before_rename: Callable[[], None] | None = None,
) -> None:
    """Write the bindings so that a crash leaves either the old or the new file, never a torn one.

    temp file, fsync, rename over the old one, fsync the directory. OSError if any
    step fails; the old file is then untouched and no temp file is left behind.
    """
    doc: dict[str, Any] = {"format": FORMAT, "epoch": epoch, "bindings": table.to_json()}
    data = (json.dumps(doc, indent=1) + "\n").encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        try:
            written = os.write(fd, data)
            if written != len(data):  # a full disk can also show as a short write
                raise OSError(28, os.strerror(28))
            os.fsync(fd)
        finally:
            os.close(fd)
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def crash_before_rename(spec: str | None) -> Callable[[], None] | None:
    """The fault tests' hook: ``statefile-before-rename[:N]`` dies at the Nth save (each
    save without N) between the durable write and the rename. None for no spec."""
    if not spec or not spec.startswith("statefile-before-rename"):
        return None
    _, _, nth = spec.partition(":")
    saves = 0

    def hook() -> None:
        nonlocal saves
        saves += 1
        if not nth or int(nth) == saves:
            os._exit(99)

    return hook


def load(path: Path) -> Saved:
    """What the file holds (nothing if there is no file); ValueError if it cannot be used."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return Saved()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"{path}: cannot read the state file: {reason}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid state file: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else None
        raise ValueError(f"{path}: unknown state file format {found!r}")
    epoch = doc.get("epoch", 0)
    if type(epoch) is not int or not 0 <= epoch <= MAX_EPOCH:
        raise ValueError(f"{path}: invalid state file: bad epoch {epoch!r}")
    try:
        return Saved(BindingTable.parse(doc.get("bindings")), epoch)
    except ValueError as exc:
        raise ValueError(f"{path}: invalid state file: {exc}") from None
