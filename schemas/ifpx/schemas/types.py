"""Scalar wire types shared by events, commands and state: ports, addresses, MACs.

Addresses travel as strings in their canonical (compressed) text form, so that
non-Python consumers need nothing but a msgpack decoder and ``inet_pton``.
"""

from __future__ import annotations

import socket
from typing import Annotated

from pydantic import AfterValidator, Field, WithJsonSchema


# inet_pton/inet_ntop validate and canonicalise in C, several times faster than the
# ipaddress module. IPv4 needs no Python call at all: a pattern admits the canonical
# dotted quad only.
def _ipv6(value: str) -> str:
    try:
        return socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, value))
    except OSError:
        raise ValueError(f"not an IPv6 address: {value!r}") from None


PortId = Annotated[int, Field(ge=0, le=65535, description="DPDK port id (uint16)")]
IfIndex = Annotated[
    int, Field(ge=0, le=2**31 - 1, description="Linux ifindex in the bridge's netns")
]
IfName = Annotated[str, Field(min_length=1, max_length=15, pattern=r"^[^\s/]+$")]
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_PATTERN = rf"^{_OCTET}(\.{_OCTET}){{3}}$"
"""Dotted quad in canonical form (no leading zeros): checked in pydantic-core, no Python call."""

IPv4 = Annotated[
    str,
    Field(max_length=15, pattern=IPV4_PATTERN),
    WithJsonSchema({"type": "string", "format": "ipv4"}),
]
IPv6 = Annotated[
    str,
    Field(max_length=45),
    AfterValidator(_ipv6),
    WithJsonSchema({"type": "string", "format": "ipv6"}),
]
IPAny = Annotated[IPv4 | IPv6, Field(union_mode="left_to_right")]
Mac = Annotated[str, Field(max_length=17, pattern=r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")]
"""Lower case, colon separated: as the kernel reports it and ``ip link`` prints it."""
PrefixLen4 = Annotated[int, Field(ge=0, le=32)]
PrefixLen6 = Annotated[int, Field(ge=0, le=128)]
U32 = Annotated[int, Field(ge=0, le=2**32 - 1)]
U64 = Annotated[int, Field(ge=0, le=2**64 - 1)]
