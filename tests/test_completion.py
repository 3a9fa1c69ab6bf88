"""``ifpx completion bash``: the script bash runs, driven as bash drives it."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest


def _complete(script: str, words: list[str]) -> list[str]:
    """What the completion offers with the cursor on the last of ``words``."""
    line = " ".join(f"'{w}'" for w in words)
    driver = f"{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _ifpx\n"
    driver += 'printf "%s\\n" "${COMPREPLY[@]}"'
    out = subprocess.run(["bash", "-c", driver], capture_output=True, text=True, check=True)
    return [w for w in out.stdout.splitlines() if w]


def _script() -> str:
    """What ``ifpx completion bash`` prints."""
    return subprocess.run(
        [sys.executable, "-m", "ifpx.subscribers", "completion", "bash"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completion_follows_the_parser() -> None:
    script = _script()
    assert _complete(script, ["ifpx", "wa"]) == ["watch"]
    assert set(_complete(script, ["ifpx", "ctl", "de"])) == {"destroy-proxy"}
    # Options and their values before the subcommand do not lose the way.
    words = ["ifpx", "ctl", "--control", "ipc:///x", "destroy-proxy", "--f"]
    assert _complete(script, words) == ["--force"]
    assert "--kind" in _complete(script, ["ifpx", "watch", "--k"])


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completion_offers_values() -> None:
    script = _script()
    assert _complete(script, ["ifpx", "recording", "sh"]) == ["show"]
    assert _complete(script, ["ifpx", "watch", "--routes", ""]) == ["flat", "group"]
    kinds = _complete(script, ["ifpx", "watch", "--kind", "route"])
    assert {"route", "route_add", "route6_del"} <= set(kinds)
    # A proxy's name: the interfaces Linux has.
    assert "lo" in _complete(script, ["ifpx", "ctl", "info", "l"])
    assert "lo" in _complete(script, ["ifpx", "ctl", "bind", "0", "l"])
