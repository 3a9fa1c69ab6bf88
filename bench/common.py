"""What the benchmark scenarios share: figures, /proc readings, the namespace's shape,
and ``ip monitor route`` as the reference consumer."""

from __future__ import annotations

import os
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field

from ifpx.bridge.testing.harness import BridgeProcess, Netns
from ifpx.schemas import commands as c


@dataclass
class Figure:
    """One measured quantity over several runs, with its reference and target."""

    name: str
    unit: str
    values: list[float] = field(default_factory=list)
    reference: list[float] = field(default_factory=list)
    ref_name: str = ""
    target: str = ""

    def median(self) -> float:
        """The median of the values (NaN while there are none)."""
        return statistics.median(self.values) if self.values else float("nan")

    def ratio(self) -> float | None:
        """The median over the reference's median; None without a reference (or with one
        of 0: CPU seconds from /proc count in ticks, and a small run may take none)."""
        ref = statistics.median(self.reference) if self.reference else 0
        return self.median() / ref if ref else None


def route_prefix(i: int) -> str:
    """The i-th of the scenarios' distinct /24 routes (11.0.0.0/24 on)."""
    return f"{11 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}.0/24"


def rss_bytes(pid: int) -> int:
    """The resident set of process ``pid``, from /proc."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """CPU time process ``pid`` has used (utime + stime, every thread), from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def counter(br: BridgeProcess, name: str) -> int:
    """One of the counters ``status`` reports (a status builds no snapshot)."""
    status = br.result(c.Status())
    assert isinstance(status, c.StatusResult)
    return status.counters.get(name, 0)


def shape(ns: Netns) -> None:
    """What every scenario's namespace holds before it starts: tap0 up, in 10.0.0.0/24."""
    ns.add_tap("tap0")
    ns.ip("link", "set", "tap0", "up")
    ns.ip("addr", "add", "10.0.0.1/24", "dev", "tap0")


class Monitor:
    """``ip monitor route`` as the C reference consumer: when has it printed N lines?"""

    def __init__(self, ns: Netns, rcvbuf: int = 0) -> None:
        size = ["-rcvbuf", str(rcvbuf)] if rcvbuf else []
        self.proc = subprocess.Popen(
            ["ip", "-n", ns.name, *size, "monitor", "route"], stdout=subprocess.PIPE, text=True
        )
        self.lines = 0
        self.marks: dict[int, float] = {}
        self._watch: list[int] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def expect(self, *counts: int) -> None:
        """Note the time at which the line count reaches each of ``counts``."""
        self._watch = sorted(counts)

    def _run(self) -> None:
        assert self.proc.stdout is not None
        for _ in self.proc.stdout:
            self.lines += 1
            if self._watch and self.lines >= self._watch[0]:
                self.marks[self._watch.pop(0)] = time.monotonic()

    def close(self) -> None:
        """Stop ip monitor."""
        self.proc.kill()
        self.proc.wait()


def figure(
    figs: dict[str, Figure], key: str, name: str, unit: str, ref: str, target: str
) -> Figure:
    """The figure ``key`` of ``figs``, made on first use."""
    return figs.setdefault(key, Figure(name, unit, ref_name=ref, target=target))
