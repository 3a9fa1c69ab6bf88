"""Scalar wire types shared by events, commands and state: ports, addresses, MACs.

Addresses travel as strings in their canonical (compressed) text form, so that
non-Python consumers need nothing but a msgpack decoder and ``inet_pton``.
"""

from __future__ import annotations

import re
import socket
from typing import Annotated

from pydantic import AfterValidator, Field, WithJsonSchema

_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


# inet_pton/inet_ntop validate and canonicalise in C, several times faster than the
# ipaddress module; validation of a full routing table spends most of its time here.
def _ipv4(value: str) -> str:
    try:
        return socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, value))
    except OSError:
        raise ValueError(f"not an IPv4 address: {value!r}") from None


def _ipv6(value: str) -> str:
    try:
        return socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, value))
    except OSError:
        raise ValueError(f"not an IPv6 address: {value!r}") from None


def _ip(value: str) -> str:
    return _ipv6(value) if ":" in value else _ipv4(value)


def _mac(value: str) -> str:
    low = value.lower()
    if not _MAC_RE.match(low):
        raise ValueError(f"not a MAC address: {value!r}")
    return low


PortId = Annotated[int, Field(ge=0, le=65535, description="DPDK port id (uint16)")]
IfIndex = Annotated[
    int, Field(ge=0, le=2**31 - 1, description="Linux ifindex in the bridge's netns")
]
IfName = Annotated[str, Field(min_length=1, max_length=15, pattern=r"^[^\s/]+$")]
IPv4 = Annotated[
    str,
    Field(max_length=15),
    AfterValidator(_ipv4),
    WithJsonSchema({"type": "string", "format": "ipv4"}),
]
IPv6 = Annotated[
    str,
    Field(max_length=45),
    AfterValidator(_ipv6),
    WithJsonSchema({"type": "string", "format": "ipv6"}),
]
IPAny = Annotated[
    str,
    Field(max_length=45),
    AfterValidator(_ip),
    WithJsonSchema({"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}),
]
Mac = Annotated[
    str,
    Field(max_length=17),
    AfterValidator(_mac),
    WithJsonSchema({"type": "string", "pattern": "^[0-9a-f]{2}(:[0-9a-f]{2}){5}$"}),
]
PrefixLen4 = Annotated[int, Field(ge=0, le=32)]
PrefixLen6 = Annotated[int, Field(ge=0, le=128)]
U32 = Annotated[int, Field(ge=0, le=2**32 - 1)]
U64 = Annotated[int, Field(ge=0, le=2**64 - 1)]
