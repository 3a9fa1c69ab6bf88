"""The systemd units are valid as systemd itself reads them (systemd-analyze verify)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCKER = Path(__file__).parent.parent / "docker"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_units_verify(tmp_path: Path) -> None:
    ifpx = Path(sys.executable).parent / "ifpx"  # the installed console script
    assert ifpx.exists()
    units = []
    for name, as_name in (
        ("ifpx-bridge.service", "ifpx-bridge.service"),
        ("ifpx-bridge@.service", "ifpx-bridge@blue.service"),
    ):
        text = (DOCKER / name).read_text().replace("/usr/local/bin/ifpx", str(ifpx))
        (tmp_path / as_name).write_text(text)
        units.append(str(tmp_path / as_name))
    proc = subprocess.run(
        ["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60
    )
    # verify exits 0 even for unknown keys and bad values; it only says so: so nothing
    # may be said.
    assert proc.returncode == 0 and not proc.stderr.strip() and not proc.stdout.strip(), proc.stderr
