"""Building and driving the C side (subscribers/c) from tests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from ifpx.bridge.testing.harness import wait_for
from ifpx.schemas.state import State

C_DIR = Path(__file__).parent.parent / "subscribers" / "c"


def have_toolchain(*pkgs: str) -> bool:
    """cc, make, pkg-config, and the pkg-config packages named."""
    if not (shutil.which("cc") and shutil.which("make") and shutil.which("pkg-config")):
        return False
    return subprocess.run(["pkg-config", "--exists", *pkgs], check=False).returncode == 0


def build(out: Path, directory: Path = C_DIR) -> Path:
    """``make`` into ``out``; returns ``out``."""
    subprocess.run(["make", "-s", "-C", str(directory), f"OUT={out}"], check=True, timeout=300)
    return out


def state_of(report: dict[str, Any]) -> State:
    """The canonical State in a C state report (ifpx_replica_json prints State's shape)."""
    return State.model_validate(report["state"]).canonical()


class ReportingProcess:
    """A C program that writes its state as JSON on SIGUSR1 (and once, unasked, when synced).

    Subclasses start ``self.proc`` writing to ``self.log`` and say how to read the
    report and which generation it has reached on every file it spans.
    """

    name = "the C program"
    proc: subprocess.Popen[bytes]
    log: Path
    gen = 0

    def _current(self) -> tuple[int, dict[str, Any]] | None:
        """(the report's generation, the report), or None while unreadable."""
        raise NotImplementedError

    def report(self, timeout: float = 20.0) -> dict[str, Any]:
        """A fresh report (written once everything queued was delivered)."""
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.output()}")
        want = self.gen + 1
        if self.gen:
            self.proc.send_signal(signal.SIGUSR1)

        def fresh() -> tuple[int, dict[str, Any]] | None:
            got = self._current()
            return got if got is not None and got[0] >= want else None

        got = wait_for(fresh, timeout, interval=0.02, what=f"{self.name}'s report")
        assert got is not None
        self.gen, data = got
        return data

    def output(self) -> str:
        """What it printed (its log lines, and for ifpx_sub the events as JSON lines)."""
        return self.log.read_text(errors="replace")

    def close(self, grace: float = 5.0) -> None:
        """Stop it (SIGTERM, then SIGKILL)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(grace)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file written whole then renamed into place, or None if not there yet."""
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data


class CSubscriber(ReportingProcess):
    """``ifpx_sub`` as a subprocess: state reports on demand (SIGUSR1 -> a JSON file)."""

    name = "ifpx_sub"

    def __init__(
        self,
        tool: Path,
        workdir: Path,
        events: str,
        control: str,
        *extra: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.path = workdir / f"csub-{os.getpid()}-{id(self)}.json"
        self.log = workdir / f"{self.path.stem}.log"
        argv = [str(tool), "--events", events, "--control", control, "--state", str(self.path)]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [*argv, *extra], stdout=log, stderr=subprocess.STDOUT, env=env
            )

    def _current(self) -> tuple[int, dict[str, Any]] | None:
        data = read_json(self.path)
        return None if data is None else (data["gen"], data)
