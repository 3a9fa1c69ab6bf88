"""Names a package offers, loaded on first use (PEP 562).

Building the models takes a fifth of a second, which ``ifpx --help`` and a module
that needs only the default endpoints should not pay: ``ifpx.schemas`` and
``ifpx.subscribers`` say where each of their names lives, and import it when it is
first asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def exports(
    package: str, homes: dict[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` for the names in ``homes`` (name ->
    the submodule that defines it); ``namespace`` is the package's ``globals()``."""

    def getattr_(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f".{home}", package), name)
        namespace[name] = value  # once: later lookups do not come here
        return value

    def dir_() -> list[str]:
        return sorted({*namespace, *homes})

    return getattr_, dir_
