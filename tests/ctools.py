"""Building and driving the C side (subscribers/c) from tests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from ifpx.bridge.harness import wait_for
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
    """The canonical State in a C state report (its ``cfg_done`` is not part of State)."""
    raw = dict(report["state"])
    raw.pop("cfg_done", None)
    return State.model_validate(raw).canonical()


class CSubscriber:
    """``ifpx_sub`` as a subprocess: state reports on demand (SIGUSR1 -> a JSON file)."""

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
        self.gen = 0

    def _read(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return data

    def report(self, timeout: float = 10.0) -> dict[str, Any]:
        """A fresh state report (written after everything queued was delivered)."""
        if self.proc.poll() is not None:
            raise AssertionError(f"ifpx_sub exited {self.proc.returncode}: {self.output()}")
        want = self.gen + 1
        if self.gen:
            self.proc.send_signal(signal.SIGUSR1)

        def fresh() -> dict[str, Any] | None:
            data = self._read()
            return data if data is not None and data["gen"] >= want else None

        wait_for(fresh, timeout, interval=0.02, what="a C state report")
        data = self._read()
        assert data is not None
        self.gen = data["gen"]
        return data

    def output(self) -> str:
        """What it printed (events as JSON lines, log lines)."""
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        """Stop it (SIGTERM, then SIGKILL)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
