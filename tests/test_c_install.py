"""The C library installs like a library: soname, static archive, headers, pkg-config, meson.

A program built against the installed copy (not the source tree) decodes the golden
message, linked shared and static; meson finds it with ``dependency('libifpx')``;
and the DPDK example builds against it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ctools import C_DIR, have_toolchain

pytestmark = pytest.mark.skipif(
    not have_toolchain("libzmq", "msgpack"),
    reason="needs cc, make, pkg-config, libzmq3-dev and libmsgpack-dev (apt)",
)

GOLDEN = Path(__file__).parent / "golden" / "envelope.message.json"
# The dev install puts meson beside the interpreter; a system one does as well.
MESON = shutil.which("meson") or str(Path(sys.executable).with_name("meson"))

PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ifpx.h"

static int show(const struct ifpx_event *ev, void *ctx)
{
    (void)ctx;
    printf("%s %u\n", ifpx_kind_name(ev->kind), ev->nh_count);
    return 0;
}

int main(int argc, char **argv)
{
    size_t n = strlen(argv[argc - 1]) / 2;
    char *buf = malloc(n);
    for (size_t i = 0; i < n; i++)
        sscanf(argv[argc - 1] + 2 * i, "%2hhx", (unsigned char *)&buf[i]);
    struct ifpx_header hdr;
    int rc = ifpx_decode_message(buf, n, &hdr, show, NULL);
    printf("rc %d seq %llu\n", rc, (unsigned long long)hdr.seq);
    free(buf);
    return rc != IFPX_OK;
}
"""


@pytest.fixture(scope="module")
def prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("install")
    subprocess.run(
        ["make", "-s", "-C", str(C_DIR), f"OUT={root / 'build'}", f"PREFIX={root / 'usr'}",
         "install"],
        check=True, timeout=300,
    )  # fmt: skip
    return root / "usr"


def _env(prefix: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PKG_CONFIG_PATH"] = str(prefix / "lib" / "pkgconfig")
    env["LD_LIBRARY_PATH"] = str(prefix / "lib")
    return env


def _pkg(prefix: Path, *args: str) -> list[str]:
    out = subprocess.run(
        ["pkg-config", *args, "libifpx"], env=_env(prefix), capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip
    return out.split()


def _golden_hex() -> str:
    return str(json.loads(GOLDEN.read_text())["msgpack_hex"])


def test_the_install_has_a_versioned_shared_library_an_archive_and_headers(prefix: Path) -> None:
    lib = prefix / "lib"
    real = sorted(p.name for p in lib.glob("libifpx.so.*.*.*"))
    assert len(real) == 1
    assert os.readlink(lib / "libifpx.so") == "libifpx.so.2"
    assert os.readlink(lib / "libifpx.so.2") == real[0]
    assert (lib / "libifpx.a").is_file()
    dynamic = subprocess.run(
        ["readelf", "-d", str(lib / real[0])], capture_output=True, text=True, check=True
    ).stdout
    assert "Library soname: [libifpx.so.2]" in dynamic
    headers = {p.name for p in (prefix / "include" / "ifpx").iterdir()}
    ours = {"ifpx.h", "ifpx_machine.h", "ifpx_replica.h", "ifpx_wire.h", "ifpx_json.h"}
    ours |= {"ifpx_contract.h"}  # generated from the schemas (ifpx.schemas.cgen)
    # With DPDK, the RFC's API comes too (libifpx-rte: tests/test_rte_if_proxy.py).
    assert headers == ours | ({"rte_if_proxy.h"} if have_toolchain("libdpdk") else set())
    assert _pkg(prefix, "--modversion")[0].startswith("2.")


@pytest.mark.parametrize("link", ["shared", "static"])
def test_a_program_built_from_pkg_config_decodes_the_golden_message(
    prefix: Path, tmp_path: Path, link: str
) -> None:
    src = tmp_path / "decode.c"
    src.write_text(PROGRAM)
    exe = tmp_path / f"decode-{link}"
    cflags = _pkg(prefix, "--cflags")
    libs = _pkg(prefix, "--libs") if link == "shared" else [
        str(prefix / "lib" / "libifpx.a"), *_pkg(prefix, "--static", "--libs-only-l")[1:]
    ]  # fmt: skip
    subprocess.run(["cc", "-o", str(exe), str(src), *cflags, *libs], check=True, timeout=120)
    out = subprocess.run(
        [str(exe), _golden_hex()], env=_env(prefix), capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines() == ["route_add 2", "route6_add 1", "rc 0 seq 42"]
    needed = subprocess.run(["ldd", str(exe)], env=_env(prefix), capture_output=True, text=True)
    if link == "shared":
        assert str(prefix / "lib" / "libifpx.so.2") in needed.stdout
    else:
        assert "libifpx" not in needed.stdout


@pytest.mark.skipif(not Path(MESON).exists(), reason="needs meson (pip install meson)")
def test_meson_finds_the_installed_library(prefix: Path, tmp_path: Path) -> None:
    (tmp_path / "decode.c").write_text(PROGRAM)
    (tmp_path / "meson.build").write_text(
        "project('decode', 'c')\n"
        "executable('decode', 'decode.c', dependencies: dependency('libifpx'))\n"
    )
    env = _env(prefix)
    env["PATH"] = f"{Path(MESON).parent}:{env['PATH']}"  # ninja, where pip put it
    subprocess.run([MESON, "setup", "build"], cwd=tmp_path, env=env, check=True, timeout=120)
    subprocess.run([MESON, "compile", "-C", "build"], cwd=tmp_path, env=env, check=True,
                   timeout=120)  # fmt: skip
    out = subprocess.run(
        [str(tmp_path / "build" / "decode"), _golden_hex()], env=env, capture_output=True,
        text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0 and out.stdout.endswith("rc 0 seq 42\n")


@pytest.mark.skipif(
    not have_toolchain("libdpdk"), reason="needs libdpdk-dev (apt) for the DPDK example"
)
def test_the_dpdk_example_builds_against_the_installed_library(
    prefix: Path, tmp_path: Path
) -> None:
    out = tmp_path / "worker"
    subprocess.run(
        ["make", "-s", "-C", str(C_DIR / "examples" / "dpdk-worker"), f"OUT={out}",
         "LIBIFPX=pkg-config"],
        env=_env(prefix), check=True, timeout=600,
    )  # fmt: skip
    assert not (out / "ifpx").exists()  # nothing of the source tree's library was built
    needed = subprocess.run(
        ["ldd", str(out / "dpdk-worker")], env=_env(prefix), capture_output=True, text=True
    ).stdout
    assert str(prefix / "lib" / "libifpx.so.2") in needed
