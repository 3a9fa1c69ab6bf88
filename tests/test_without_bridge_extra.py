"""A worker host installs ``ifpx`` without the ``bridge`` extra: no pyroute2, no
prometheus-client. ``Subscriber`` and ``ifpx watch`` work there; the bridge's options
that need the extra say so instead of failing with a traceback.

The absence is made real in each child process: importing either package fails there.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from test_replay_timing import _one_message

WITHOUT_EXTRA = """
import sys
class _Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pyroute2", "prometheus_client"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _Absent())
from ifpx.subscribers.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _ifpx(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WITHOUT_EXTRA, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_watch_follows_a_stream_without_the_bridge_extra(tmp_path: Path) -> None:
    path = tmp_path / "one.ifpxrec"
    _one_message(path, pause=1.5)
    events, control = f"ipc://{tmp_path}/ev.sock", f"ipc://{tmp_path}/ctl.sock"
    player = _ifpx("replay", str(path), "--events", events, "--control", control)
    try:
        watch = _ifpx(
            "watch", "--count", "1", "--no-snapshot", "--timeout", "10", "--events", events,
            "--control", control,
        )  # fmt: skip
        out, err = watch.communicate(timeout=60)
        assert watch.returncode == 0, err
        assert "port 0 (tap0) mtu 1400" in out
        assert "No module named" not in err
    finally:
        player.kill()
        player.wait(10)


def test_the_bridge_says_which_extra_its_metrics_need(tmp_path: Path) -> None:
    proc = _ifpx(
        "bridge", "--state", str(tmp_path / "state.json"), "--metrics", "127.0.0.1:0",
        "--events", f"ipc://{tmp_path}/ev.sock", "--control", f"ipc://{tmp_path}/ctl.sock",
    )  # fmt: skip
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, out + err
    assert "pip install 'ifpx[bridge]'" in err and "Traceback" not in err
