"""The C library's copy of the wire contract is generated from the schemas, and holds."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import get_args

import pytest
from ctools import C_DIR, build, have_toolchain

from ifpx.schemas import cgen
from ifpx.schemas.events import EVENT_TYPES, KIND_ORDER, PortScoped
from ifpx.schemas.topics import KIND_TOPIC, TOPIC_ORDER, TOPICS

RELEASED_KINDS = [
    *("mac_change", "mtu_change", "link_change"),
    *("addr_add", "addr_del", "addr6_add", "addr6_del"),
    *("route_add", "route_del", "route6_add", "route6_del"),
    *("neigh_add", "neigh_del", "neigh6_add", "neigh6_del"),
    *("cfg_done", "port_bound", "port_unbound", "proxy_gone", "proxy_renamed", "proxy_back"),
    *("resync_begin", "resync_end", "heartbeat"),
    *("rule_add", "rule_del", "rule6_add", "rule6_del"),
    *("nhgroup_set", "nhgroup_del", "groute_add", "groute_del", "groute6_add", "groute6_del"),
]
"""enum ifpx_kind as libifpx.so.2 numbers it: what an application built against it holds."""

KINDS = [kind for _minor, kinds in KIND_ORDER for kind in kinds]


@pytest.mark.parametrize("name", sorted(cgen.render()))
def test_the_committed_header_is_what_the_schemas_generate(name: str) -> None:
    committed = (C_DIR / name).read_text()
    assert committed == cgen.render()[name], (
        f"subscribers/c/{name} differs from the schemas: "
        "run `python -m ifpx.schemas.cgen subscribers/c` and commit it"
    )


def test_every_kind_and_topic_has_one_number_and_released_numbers_hold() -> None:
    assert sorted(KINDS) == sorted(EVENT_TYPES)  # each once
    assert sorted(TOPIC_ORDER) == sorted(TOPICS)
    assert KINDS[: len(RELEASED_KINDS)] == RELEASED_KINDS, "a released kind was renumbered"
    assert TOPIC_ORDER[:9] == (
        "link",
        "addr",
        "route",
        "neigh",
        "port",
        "sync",
        "hb",
        "rule",
        "fib",
    )
    minors = [minor for minor, _kinds in KIND_ORDER]
    assert minors == sorted(set(minors))


def test_the_cli_writes_the_headers(tmp_path: Path) -> None:
    assert cgen.main([str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} == set(cgen.render())
    assert cgen.main([]) == 2


PROGRAM = r"""
#include <stdio.h>
#include "ifpx_wire.h"
#include "ifpx_machine.h"
int main(void)
{
    for (int k = 0; k < IFPX_KIND_COUNT; k++)
        printf("kind %s %s %d\n", ifpx_kind_name(k), ifpx_kind_topic(k),
               ifpx_kind_is_port_scoped(k));
    for (int t = 0; t < IFPX_N_TOPICS; t++)
        printf("topic %s %d\n", ifpx_topic_names[t], ifpx_topic_index(ifpx_topic_names[t]));
    for (int r = 0; ifpx_route_type_name(r); r++)
        printf("type %s\n", ifpx_route_type_name(r));
    printf("limits %d %d %d %d\n", IFPX_MAX_NEXTHOPS, IFPX_NAME_LEN, IFPX_PROTOCOL_VERSION,
           IFPX_PROTOCOL_MINOR);
    return 0;
}
"""


@pytest.mark.skipif(
    not have_toolchain("libzmq", "msgpack"), reason="needs cc, libzmq3-dev and libmsgpack-dev"
)
def test_the_c_library_names_each_kind_as_the_schemas_do(tmp_path: Path) -> None:
    from ifpx.schemas.events import RouteType
    from ifpx.schemas.version import PROTOCOL_MINOR, PROTOCOL_VERSION

    out = build(tmp_path / "build")
    src = tmp_path / "kinds.c"
    src.write_text(PROGRAM)
    libs = subprocess.run(
        ["pkg-config", "--libs", "libzmq", "msgpack"], capture_output=True, text=True, check=True
    ).stdout.split()
    exe = tmp_path / "kinds"
    subprocess.run(
        ["cc", "-std=c11", "-Wall", "-Werror", f"-I{C_DIR}", "-o", str(exe), str(src),
         str(out / "libifpx.a"), *libs],
        check=True,
        timeout=120,
    )  # fmt: skip
    lines = subprocess.run(
        [str(exe)], capture_output=True, text=True, check=True, timeout=30
    ).stdout.splitlines()
    kinds = [line.split()[1:] for line in lines if line.startswith("kind ")]
    assert kinds == [
        [k, KIND_TOPIC[k], str(int(issubclass(EVENT_TYPES[k], PortScoped)))] for k in KINDS
    ]
    topics = [line.split()[1:] for line in lines if line.startswith("topic ")]
    assert topics == [[t, str(i)] for i, t in enumerate(TOPIC_ORDER)]
    assert [line.split()[1] for line in lines if line.startswith("type ")] == list(
        get_args(RouteType)
    )
    assert lines[-1] == f"limits 256 16 {PROTOCOL_VERSION} {PROTOCOL_MINOR}"
