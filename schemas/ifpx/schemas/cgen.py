"""The C library's copy of the wire contract, generated from the models.

``python -m ifpx.schemas.cgen DIR`` writes two headers into DIR (subscribers/c):
``ifpx_contract.h`` (public: ``enum ifpx_kind`` numbered as :data:`events.KIND_ORDER`
says, the route types and rule actions as the wire names them, the protocol version and
the contract's bounds) and ``ifpx_contract_tables.h`` (the library's own: each kind's
name, topic and scope, the topics in their bit order, as initialiser lists). A test
regenerates both and fails when the committed ones differ: the C side cannot drift from
the schemas unnoticed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import get_args

from . import codec, envelope, events, types
from .topics import KIND_TOPIC, TOPIC_ORDER
from .version import PROTOCOL_MINOR, PROTOCOL_VERSION

GENERATED = (
    "/* Generated from the wire contract (ifpx.schemas) by `python -m ifpx.schemas.cgen`:\n"
    " * do not edit. tests/test_cgen.py fails when this file and the schemas differ. */\n"
)


def _max_length(model: type[events.WireModel], field: str) -> int:
    for meta in model.model_fields[field].metadata:
        if getattr(meta, "max_length", None) is not None:
            return int(meta.max_length)
    raise LookupError(f"{model.__name__}.{field} has no max_length")


def _name_length() -> int:
    for meta in getattr(types.IfName, "__metadata__", ()):
        for item in getattr(meta, "metadata", [meta]):
            if getattr(item, "max_length", None) is not None:
                return int(item.max_length)
    raise LookupError("IfName has no max_length")


def _enum(name: str, members: list[str], per_line: int = 4) -> str:
    rows = [members[i : i + per_line] for i in range(0, len(members), per_line)]
    body = ",\n".join("    " + ", ".join(row) for row in rows)
    return f"enum {name} {{\n{body}\n}};\n"


def _quoted(values: list[str] | tuple[str, ...]) -> list[str]:
    return [f'"{v}"' for v in values]


def _kinds() -> list[str]:
    return [kind for _minor, kinds in events.KIND_ORDER for kind in kinds]


def _c_list(values: list[str], per_line: int) -> str:
    """``values`` as a C list a macro continues over lines of ``per_line``."""
    rows = [", ".join(values[i : i + per_line]) for i in range(0, len(values), per_line)]
    return ", \\\n    ".join(rows)


def contract_h() -> str:
    """The public header: what a consumer compiles against."""
    lines = [GENERATED, "#ifndef IFPX_CONTRACT_H\n#define IFPX_CONTRACT_H\n"]
    lines.append(
        f"#define IFPX_PROTOCOL_VERSION {PROTOCOL_VERSION}\n"
        f"#define IFPX_PROTOCOL_MINOR {PROTOCOL_MINOR}\n"
        f"#define IFPX_MAX_NEXTHOPS {_max_length(events.RouteAdd, 'nexthops')}\n"
        f"#define IFPX_NAME_LEN {_name_length() + 1}   /* a name and its NUL (IFNAMSIZ) */\n"
        f"#define IFPX_MAX_BATCH {envelope.MAX_BATCH}   /* events in one message */\n"
        f"#define IFPX_MAX_MESSAGE_BYTES {codec.MAX_MESSAGE_BYTES}u\n"
        f"#define IFPX_N_TOPICS {len(TOPIC_ORDER)}\n"
    )
    body = []
    for minor, kinds in events.KIND_ORDER:
        if minor:
            body.append(f"    /* protocol minor {minor} */")
        names = [f"IFPX_{k.upper()}" for k in kinds]
        body += ["    " + ", ".join(names[i : i + 4]) + "," for i in range(0, len(names), 4)]
    lines.append(
        "/* Every event kind, numbered in the order it entered the protocol (append only:\n"
        " * the numbers are part of the ABI). */\n"
        "enum ifpx_kind {\n" + "\n".join(body) + "\n    IFPX_KIND_COUNT\n};\n"
    )
    route_types = [f"IFPX_RT_{t.upper()}" for t in get_args(events.RouteType)]
    lines.append(
        "/* How a route forwards: only unicast routes have next hops. BLACKHOLE drops\n"
        " * silently, UNREACHABLE and PROHIBIT drop with an ICMP error, THROW ends the\n"
        " * lookup in this table. */\n" + _enum("ifpx_route_type", route_types, 5)
    )
    actions = [f"IFPX_RULE_{a.upper()}" for a in get_args(events.RuleAction)]
    lines.append(
        '/* What a matching policy rule does (the wire\'s "action"). */\n'
        + _enum("ifpx_rule_action", actions)
    )
    lines.append("#endif\n")
    return "\n".join(lines)


def tables_h() -> str:
    """The library's own header: the names and tables its sources build arrays from."""
    kinds = _kinds()
    quoted = _quoted(kinds)
    topics = _quoted([KIND_TOPIC[k] for k in kinds])
    scoped = ["1" if issubclass(events.EVENT_TYPES[k], events.PortScoped) else "0" for k in kinds]
    return "\n".join(
        [
            GENERATED,
            "#ifndef IFPX_CONTRACT_TABLES_H\n#define IFPX_CONTRACT_TABLES_H\n",
            '#include "ifpx_contract.h"\n',
            "/* Per enum ifpx_kind, in its order: the wire's name, the topic it is published\n"
            " * on, and whether it is port-scoped (port_id, proxy, ifindex). */",
            f"#define IFPX_KIND_NAMES \\\n    {_c_list(quoted, 5)}",
            f"#define IFPX_KIND_TOPICS \\\n    {_c_list(topics, 8)}",
            f"#define IFPX_KIND_PORT_SCOPED \\\n    {_c_list(scoped, 17)}\n",
            "/* Bit i of a topic mask is topic i. */",
            f"#define IFPX_TOPIC_NAMES {', '.join(_quoted(TOPIC_ORDER))}\n",
            f"#define IFPX_ROUTE_TYPE_NAMES {', '.join(_quoted(get_args(events.RouteType)))}",
            f"#define IFPX_RULE_ACTION_NAMES {', '.join(_quoted(get_args(events.RuleAction)))}\n",
            "#endif\n",
        ]
    )


def render() -> dict[str, str]:
    """Every generated header: file name -> text."""
    return {"ifpx_contract.h": contract_h(), "ifpx_contract_tables.h": tables_h()}


def main(argv: list[str]) -> int:
    """Write the headers into the directory ``argv[0]``."""
    if len(argv) != 1:
        print("usage: python -m ifpx.schemas.cgen DIR", file=sys.stderr)
        return 2
    for name, text in render().items():
        (Path(argv[0]) / name).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
