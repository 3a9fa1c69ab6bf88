"""iproute2's names for route protocols and tables, for human output (JSON keeps numbers).

``ip`` reads ``rt_protos`` and ``rt_tables`` (and their ``.d`` directories) from
``/etc/iproute2``, and newer iproute2 ships its defaults under
``/usr/share/iproute2`` or ``/usr/lib/iproute2``; so do we, over the kernel's own
names. FRR installs ``rt_protos.d/frr.conf`` (186 bgp ... 196 static); its
names are known here even where FRR is not installed.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_DIRS = (Path("/usr/lib/iproute2"), Path("/usr/share/iproute2"), Path("/etc/iproute2"))
"""Later ones win, as iproute2's own configuration overrides its shipped defaults."""

_PROTOS = {
    0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static", 8: "gated", 9: "ra",
    10: "mrt", 11: "zebra", 12: "bird", 13: "dnrouted", 14: "xorp", 15: "ntk", 16: "dhcp",
    17: "mrouted", 18: "keepalived", 42: "babel", 99: "openr", 186: "bgp", 187: "isis",
    188: "ospf", 189: "rip", 190: "ripng", 191: "nhrp", 192: "eigrp", 193: "ldp", 194: "sharp",
    195: "pbr", 196: "static", 197: "openfabric", 198: "srte",
}  # fmt: skip
"""The kernel's RTPROT_* names, and FRR's rt_protos.d/frr.conf."""

_TABLES = {0: "unspec", 253: "default", 254: "main", 255: "local"}


def _read(name: str, base: dict[int, str]) -> dict[int, str]:
    names = dict(base)
    for d in _DIRS:
        files = [d / name, *sorted((d / f"{name}.d").glob("*.conf"))]
        for path in files:
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                fields = line.split("#", 1)[0].split()
                if len(fields) >= 2:
                    try:
                        names[int(fields[0], 0)] = fields[1]
                    except ValueError:
                        continue
    return names


@cache
def _protos() -> dict[int, str]:
    return _read("rt_protos", _PROTOS)


@cache
def _tables() -> dict[int, str]:
    return _read("rt_tables", _TABLES)


def proto(number: int) -> str:
    """``ip route``'s name for a route protocol (the number if it has none)."""
    return _protos().get(number, str(number))


def table(number: int) -> str:
    """``ip route``'s name for a routing table (the number if it has none)."""
    return _tables().get(number, str(number))
