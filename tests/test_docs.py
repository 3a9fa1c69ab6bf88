"""The documentation's examples, held true: every ``ifpx`` command line in the docs
parses, and the README's Python worker runs against a real bridge and ends cleanly."""

from __future__ import annotations

import contextlib
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ifpx.bridge.testing.harness import BridgeProcess, Netns, wait_for
from ifpx.schemas import commands as c
from ifpx.subscribers.cli import build_parser

ROOT = Path(__file__).parent.parent
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "docker").glob("*.md")),
    *sorted((ROOT / "subscribers").rglob("*.md")),
]
_BLOCK = re.compile(r"```(?:sh|bash|console)?\n(.*?)```", re.S)
_ENV = re.compile(r"^[A-Z_][A-Z0-9_]*=\S+$")


def _shell_lines(text: str) -> list[str]:
    """The command lines of a doc's shell blocks: continuations joined, comments cut."""
    out: list[str] = []
    for block in _BLOCK.findall(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"\s+#.*$", "", line.strip())
            if line and not line.startswith("#"):
                out.append(line)
    return out


def ifpx_commands() -> list[tuple[str, list[str]]]:
    """Every ``ifpx`` invocation in the docs, as (doc, argv after ``ifpx``)."""
    found: list[tuple[str, list[str]]] = []
    for doc in DOCS:
        for line in _shell_lines(doc.read_text()):
            for part in re.split(r"\s(?:;|\||&&)\s", line):
                if not re.match(r"^(?:[A-Z_][A-Z0-9_]*=\S+\s+|sudo\s+|\$\s+)*ifpx\s", part):
                    continue
                words = shlex.split(part.replace("[", "").replace("]", ""))
                if words and words[-1] == "&":
                    words = words[:-1]  # run in the background
                while words and (_ENV.match(words[0]) or words[0] in ("sudo", "$")):
                    words = words[1:]
                if words[:1] == ["ifpx"]:
                    found.append((doc.name, words[1:]))
    return found


def test_the_docs_show_ifpx_commands() -> None:
    # The extraction itself: the guides are full of them; a broken pattern finds none.
    assert len(ifpx_commands()) >= 25


@pytest.mark.parametrize(
    "argv", [argv for _doc, argv in ifpx_commands()], ids=lambda a: " ".join(a)[:60]
)
def test_every_ifpx_command_in_the_docs_parses(argv: list[str]) -> None:
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"`ifpx {' '.join(argv)}` does not parse (exit {exc.code})")


def _readme_worker() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"## A worker in Python\n\n```python\n(.*?)```", text, re.S)
    assert match, "the README's Python worker example"
    return match.group(1)


@pytest.mark.netns
def test_the_readme_python_worker_runs_and_ends_on_ctrl_c(
    ns: Netns, br: BridgeProcess, tmp_path: Path
) -> None:
    br.result(c.Bind(port_id=0, proxy="tap0"))
    code = _readme_worker()
    code = code.replace("ipc:///run/ifpx/events.sock", br.events)
    code = code.replace("ipc:///run/ifpx/control.sock", br.control)
    script = tmp_path / "worker.py"
    script.write_text(code)
    out, err = tmp_path / "out", tmp_path / "err"
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(
            [sys.executable, "-X", "dev", "-u", str(script)], stdout=o, stderr=e
        )
    try:
        # The replica answered: the MTU line, then the lookup's (no route: None).
        wait_for(lambda: "None" in out.read_text(), 15, what="the example's prints")
        ns.cmd("link set tap0 mtu 1400")
        wait_for(lambda: "port 0 mtu 1400" in out.read_text(), 15, what="its callback")
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(timeout=15) == 0
        except subprocess.TimeoutExpired:
            # -X dev has faulthandler on: SIGABRT makes it print where every thread is.
            proc.send_signal(signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            raise AssertionError(f"still running 15 s after Ctrl-C:\n{err.read_text()}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    printed = out.read_text()
    assert "port_bound" in printed and "1500" in printed
    problems = err.read_text()
    assert "Traceback" not in problems and "ResourceWarning" not in problems, problems
