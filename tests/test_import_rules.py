"""Dependency direction: schemas import nothing of ours; subscribers never pull in the bridge."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(package_dir: Path) -> set[str]:
    found: set[str] = set()
    for path in package_dir.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
    return found


def test_schemas_import_nothing_of_ours() -> None:
    mods = _imports(ROOT / "schemas/ifpx/schemas")
    assert not {m for m in mods if m.startswith("ifpx.")}


def test_subscribers_import_only_schemas() -> None:
    mods = _imports(ROOT / "subscribers/ifpx/subscribers")
    ours = {m for m in mods if m.startswith("ifpx.")}
    assert ours and all(m.startswith("ifpx.schemas") for m in ours), ours
    assert "pyroute2" not in {m.split(".")[0] for m in mods}


def test_bridge_core_imports_no_subscribers() -> None:
    # Only the demo, which orchestrates worker processes, may use the subscriber side.
    # (bridge/ifpx/bridge/testing, where the demo lives, is not the bridge itself.)
    bridge = ROOT / "bridge/ifpx/bridge"
    for path in bridge.glob("*.py"):
        mods = _imports(path.parent) if False else set()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                mods.add(node.module)
        assert not any(m.startswith("ifpx.subscribers") for m in mods), path.name


def test_no_ifpx_init_anywhere() -> None:
    for top in ("schemas", "bridge", "subscribers"):
        assert not (ROOT / top / "ifpx" / "__init__.py").exists()


def test_importing_subscribers_loads_no_netlink_library() -> None:
    code = (
        "import sys, ifpx.subscribers, ifpx.subscribers.subscriber, ifpx.subscribers.cli; "
        "assert 'pyroute2' not in sys.modules, 'pyroute2 loaded'; "
        "assert not [m for m in sys.modules if m.startswith('ifpx.bridge.')], 'bridge loaded'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_watch_help_works_without_loading_pyroute2() -> None:
    code = (
        "import sys; from ifpx.subscribers.cli import build_parser; build_parser(); "
        "assert 'pyroute2' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_parser_alone_loads_neither_the_schemas_nor_zeromq() -> None:
    # `ifpx --help`, `--version` and completion start in a tenth of a second; a
    # module-level import of the models (a fifth of a second to build) or of ZeroMQ in
    # the parser's path would undo it unnoticed.
    code = (
        "import sys; from ifpx.subscribers.cli import build_parser; build_parser(); "
        "heavy = [m for m in ('pydantic', 'zmq', 'msgpack', 'ifpx.schemas.events') "
        "if m in sys.modules]; assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_every_name_a_package_offers_loads_on_first_use() -> None:
    import ifpx.schemas
    import ifpx.subscribers

    for package in (ifpx.schemas, ifpx.subscribers):
        assert package.__all__, package
        for name in package.__all__:
            assert getattr(package, name) is not None, (package.__name__, name)
        assert set(package.__all__) <= set(dir(package))
    from ifpx.subscribers import ControlClient, Subscriber

    assert ControlClient.__module__ == "ifpx.subscribers.client"
    assert Subscriber.__module__ == "ifpx.subscribers.subscriber"
