"""Figures the fault tests report: printed, and collected for `make reliability`."""

from __future__ import annotations

import os


def record(name: str, value: object) -> None:
    line = f"{name}\t{value}"
    print(f"FIGURE {line}")
    path = os.environ.get("RELIABILITY_FIGURES")
    if path:
        with open(path, "a") as fh:
            fh.write(line + "\n")
