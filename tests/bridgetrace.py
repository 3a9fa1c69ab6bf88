"""Bridge traces (tests/traces/bridge/*.json): netlink records, commands and time in,
events and re-dumps out, through the bridge's pure heart (core and reconciler).

A trace has ``doc``, ``forms`` (``flat``, ``group``: the route forms someone takes) and
``steps``, each at a time in milliseconds, doing one thing:

- ``netlink``: records as the listener decodes them, applied in order;
- ``dump``: a whole dump of ``kind`` (of ``family``) the daemon ran, made the mirror;
- ``redump``: the re-dump the reconciler hands out next (``kind``, ``family``,
  ``oif``), answered with the kernel's ``records``;
- ``tick``: time passes; ``again`` lists the second looks then due, answered by the
  ``redump`` steps that follow;
- ``bind`` / ``unbind``: a command (``port``, ``proxy``).

After each step the events made must be ``events`` (as documents, in order) and the
re-dumps wanted ``redumps``. ``final`` is the bridge's snapshot at the end. The traces
are written once by ``python tests/bridgetrace.py`` from the scenarios below, read
through, and then hold every later change of the core to them.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ifpx.bridge import nlmsg
from ifpx.bridge.core import BridgeCore
from ifpx.bridge.reconciler import Reconciler, redump_order
from ifpx.bridge.redump import Redump
from ifpx.schemas import events as ev

TRACES = Path(__file__).parent / "traces" / "bridge"
AF4, AF6 = socket.AF_INET, socket.AF_INET6
_RECORDS: dict[str, Any] = {
    "link": nlmsg.Link,
    "addr": nlmsg.Addr,
    "route": nlmsg.Route,
    "nh": nlmsg.NhObject,
    "neigh": nlmsg.Neigh,
}


def record_doc(rec: nlmsg.Record) -> dict[str, Any]:
    """A record as a trace holds it: ``{type: {field: value}}``."""
    for name, cls in _RECORDS.items():
        if isinstance(rec, cls):
            fields = rec._asdict() if hasattr(rec, "_asdict") else dict(_fields(rec))
            return {name: fields}
    raise TypeError(rec)


def _fields(rec: Any) -> list[tuple[str, Any]]:
    return [(f, getattr(rec, f)) for f in rec.__slots__]


def record(doc: dict[str, Any]) -> nlmsg.Record:
    """A record from its trace form."""
    ((name, fields),) = doc.items()
    fields = dict(fields)
    if name == "route":
        fields["nexthops"] = tuple(tuple(h) for h in fields["nexthops"])
    if name == "nh":
        fields["group"] = tuple(tuple(m) for m in fields["group"])
    rec: nlmsg.Record = _RECORDS[name](**fields)
    return rec


def _redump_doc(req: Redump) -> dict[str, Any]:
    return {"kind": req.kind, "family": req.family, "oif": req.oif}


def _events_doc(events: list[ev.EventBase]) -> list[dict[str, Any]]:
    return [e.model_dump(mode="json") for e in events]


class Runner:
    """The core and the reconciler, driven by a trace's steps."""

    def __init__(self, forms: dict[str, bool]) -> None:
        self.core = BridgeCore(validate=True)
        self.core.out.flat = forms.get("flat", True)
        self.core.out.grouped = forms.get("group", False)
        self.reconciler = Reconciler(self.core.redumps, self.core.counters)
        self._again: list[Redump] = []

    def step(self, step: dict[str, Any]) -> dict[str, Any]:
        """Run one step; return what it made (``events``, ``redumps``, ``again``)."""
        core, now = self.core, step["at"] / 1000
        made: dict[str, Any] = {}
        if "netlink" in step:
            events = core.apply_all(record(r) for r in step["netlink"])
        elif "dump" in step:
            recs = [record(r) for r in step["records"]]
            events = core.reconcile(step["dump"], recs, step.get("family", 0))
        elif "redump" in step:
            want = step["redump"]
            req = self._again.pop(0) if self._again else self.reconciler.next()
            assert req is not None and _redump_doc(req) == want, (req, want)
            recs = [record(r) for r in step["records"]]
            events = core.reconcile(req.kind, recs, req.family, req.oif)
            self.reconciler.ran(req, now)
        elif "tick" in step:
            self._again = self.reconciler.due(now)
            made["again"] = [_redump_doc(r) for r in self._again]
            events = []
        elif "bind" in step:
            link = core.resolve(step["bind"]["proxy"])
            assert link is not None
            events = core.bind(step["bind"]["port"], link)[2]
        elif "unbind" in step:
            events = core.unbind(step["unbind"]["port"])[1]
        else:
            raise ValueError(f"a step that does nothing: {step}")
        made["events"] = _events_doc(events)
        made["redumps"] = [_redump_doc(r) for r in sorted(core.redumps, key=redump_order)]
        return made

    def final(self) -> dict[str, Any]:
        """The bridge's snapshot, canonical."""
        doc: dict[str, Any] = self.core.snapshot().canonical().model_dump(mode="json")
        return doc


def load(name: str) -> dict[str, Any]:
    """A trace by its file's stem."""
    doc: dict[str, Any] = json.loads((TRACES / f"{name}.json").read_text())
    return doc


def names() -> list[str]:
    """Every bridge trace."""
    return sorted(p.stem for p in TRACES.glob("*.json"))


# ---- the scenarios the traces were written from ------------------------------------


def _link(
    ifindex: int, name: str, up: bool = True, carrier: bool = True, mtu: int = 1500
) -> dict[str, Any]:
    mac = f"02:00:00:00:00:{ifindex:02x}"
    return record_doc(nlmsg.Link(False, ifindex, name, mtu, mac, up, carrier))


def _gone(ifindex: int, name: str) -> dict[str, Any]:
    return record_doc(nlmsg.Link(True, ifindex, name, 1500, None, False, False))


def _addr(ifindex: int, ip: str, plen: int, deleted: bool = False) -> dict[str, Any]:
    return record_doc(nlmsg.Addr(deleted, ifindex, AF6 if ":" in ip else AF4, ip, plen))


def _neigh(ifindex: int, ip: str, mac: str | None, state: int = 0x02) -> dict[str, Any]:
    return record_doc(nlmsg.Neigh(state == 0, ifindex, AF6 if ":" in ip else AF4, ip, mac, state))


def _route(
    dst: str,
    *hops: tuple[str | None, int],
    deleted: bool = False,
    metric: int = 0,
    nlflags: int = 0,
    nhid: int = 0,
    rtype: int = nlmsg.RTN_UNICAST,
    dead: int = 0,
) -> dict[str, Any]:
    ip, plen = dst.split("/")
    family = AF6 if ":" in ip else AF4
    down = nlmsg.RTNH_F_DEAD | nlmsg.RTNH_F_LINKDOWN  # the hops through ``dead``
    nexthops = tuple((gw, ifx, 1, down if ifx == dead else 0) for gw, ifx in hops)
    return record_doc(
        nlmsg.Route(
            deleted, family, 254, ip, int(plen), 0, 4, rtype, 0, metric, nexthops, None, nhid,
            nlflags,
        )
    )  # fmt: skip


def _nh(nid: int, gw: str | None, ifindex: int, deleted: bool = False) -> dict[str, Any]:
    return record_doc(nlmsg.NhObject(deleted, nid, AF4, gw, ifindex, 0, False, False, ()))


_TAPS = [_link(2, "tap0"), _link(3, "tap1"), _link(4, "eth0")]
_START = [{"at": 0, "dump": "link", "records": _TAPS}]


def _port_config() -> dict[str, Any]:
    return {
        "doc": "A port's configuration: bound, its state replayed; changes to it told to "
        "its port; changes elsewhere and after the unbind silent.",
        "steps": [
            *_START,
            {"at": 1, "netlink": [_addr(2, "10.0.0.1", 24),
                                   _neigh(2, "10.0.0.2", "02:aa:00:00:00:02")]},
            {"at": 2, "bind": {"port": 0, "proxy": "tap0"}},
            {"at": 3, "netlink": [_link(2, "tap0", mtu=9000), _link(4, "eth0", mtu=9000)]},
            {"at": 4, "netlink": [_addr(2, "fd00::1", 64), _addr(2, "10.0.0.1", 24, deleted=True)]},
            {"at": 5, "netlink": [_neigh(2, "10.0.0.2", None, state=0)]},
            {"at": 6, "bind": {"port": 1, "proxy": "tap0"}},
            {"at": 7, "unbind": {"port": 0}},
            {"at": 8, "netlink": [_link(2, "tap0", up=False, mtu=9000)]},
        ],
    }  # fmt: skip


def _link_down() -> dict[str, Any]:
    gw0, gw1 = ("10.0.0.2", 2), ("10.1.0.2", 3)
    return {
        "doc": "A link goes down under routes, in both forms: the ECMP route's group "
        "marks the hop dead (one nhgroup_set; the flat form republishes it), the "
        "route through it alone goes; the re-dumps the kernel's silence needs are "
        "asked for, answered, and looked at again once the kernel settles: they "
        "confirm the mirror, so nothing more is said. The link back is one "
        "nhgroup_set again.",
        "forms": {"flat": True, "group": True},
        "steps": [
            *_START,
            {"at": 1, "bind": {"port": 0, "proxy": "tap0"}},
            {"at": 2, "bind": {"port": 1, "proxy": "tap1"}},
            {"at": 3, "netlink": [_route("192.0.2.0/24", gw0, gw1),
                                   _route("198.51.100.0/24", gw1)]},
            {"at": 4, "netlink": [_link(3, "tap1", up=False, carrier=False)]},
            {"at": 5, "redump": {"kind": "nexthop", "family": 0, "oif": 0}, "records": []},
            {"at": 6, "redump": {"kind": "route", "family": AF4, "oif": 3}, "records": [
                _route("192.0.2.0/24", gw0, gw1, dead=3)]},
            {"at": 7, "redump": {"kind": "route", "family": AF6, "oif": 3}, "records": []},
            {"at": 30, "tick": True},
            {"at": 60, "tick": True},
            {"at": 61, "redump": {"kind": "nexthop", "family": 0, "oif": 0}, "records": []},
            {"at": 62, "redump": {"kind": "route", "family": AF4, "oif": 3}, "records": [
                _route("192.0.2.0/24", gw0, gw1, dead=3)]},
            {"at": 63, "redump": {"kind": "route", "family": AF6, "oif": 3}, "records": []},
            {"at": 70, "netlink": [_link(3, "tap1")]},
        ],
    }  # fmt: skip


def _aliases() -> dict[str, Any]:
    gw0, gw1 = ("10.0.0.2", 2), ("10.1.0.2", 3)
    append, prepend = nlmsg.NLM_F_CREATE | nlmsg.NLM_F_APPEND, nlmsg.NLM_F_CREATE
    return {
        "doc": "ip route append and prepend: the kernel forwards by the first route of "
        "an IPv4 key; the hidden ones come forward, one route_add, as those in front go.",
        "steps": [
            *_START,
            {"at": 1, "bind": {"port": 0, "proxy": "tap0"}},
            {"at": 2, "bind": {"port": 1, "proxy": "tap1"}},
            {"at": 3, "netlink": [_route("192.0.2.0/24", gw0, nlflags=append)]},
            {"at": 4, "netlink": [_route("192.0.2.0/24", gw1, nlflags=append)]},
            {"at": 5, "netlink": [_route("192.0.2.0/24", ("10.1.0.3", 3), nlflags=prepend)]},
            {"at": 6, "netlink": [_route("192.0.2.0/24", ("10.1.0.3", 3), deleted=True)]},
            {"at": 7, "netlink": [_route("192.0.2.0/24", gw1, deleted=True)]},
            {"at": 8, "netlink": [_route("192.0.2.0/24", gw0, deleted=True)]},
        ],
    }  # fmt: skip


def _merged() -> dict[str, Any]:
    return {
        "doc": "The kernel keeps fe80::/64 apart per interface; it is published as one "
        "route through every bound port, in both forms, and follows each port.",
        "forms": {"flat": True, "group": True},
        "steps": [
            *_START,
            {"at": 1, "bind": {"port": 0, "proxy": "tap0"}},
            {"at": 2, "netlink": [_route("fe80::/64", (None, 2), metric=256),
                                   _route("fe80::/64", (None, 3), metric=256)]},
            {"at": 3, "bind": {"port": 1, "proxy": "tap1"}},
            {"at": 4, "netlink": [_route("fe80::/64", (None, 2), metric=256, deleted=True)]},
            {"at": 5, "unbind": {"port": 1}},
        ],
    }  # fmt: skip


def _objects() -> dict[str, Any]:
    return {
        "doc": "Routes through kernel next-hop objects (FRR's): one group per object; "
        "the object replaced is one nhgroup_set; the object deleted takes its routes "
        "along, as the kernel does without a message.",
        "forms": {"flat": True, "group": True},
        "steps": [
            *_START,
            {"at": 1, "bind": {"port": 0, "proxy": "tap0"}},
            {"at": 2, "netlink": [_nh(10, "10.0.0.2", 2)]},
            {"at": 3, "netlink": [_route("192.0.2.0/24", ("10.0.0.2", 2), nhid=10),
                                   _route("198.51.100.0/24", ("10.0.0.2", 2), nhid=10)]},
            {"at": 4, "netlink": [_nh(10, "10.0.0.3", 2)]},
            {"at": 5, "netlink": [_nh(10, "10.0.0.3", 2, deleted=True)]},
            {"at": 6, "redump": {"kind": "nexthop", "family": 0, "oif": 0}, "records": []},
        ],
    }  # fmt: skip


def _gone_and_back() -> dict[str, Any]:
    return {
        "doc": "A proxy deleted: its addresses and routes withdrawn, then proxy_gone; "
        "made again under its name: proxy_back and its state replayed to the port. A "
        "route dump that lacks a route sweeps it.",
        "steps": [
            *_START,
            {"at": 1, "netlink": [_addr(2, "10.0.0.1", 24)]},
            {"at": 2, "bind": {"port": 0, "proxy": "tap0"}},
            {"at": 3, "netlink": [_route("192.0.2.0/24", ("10.0.0.2", 2)),
                                   _route("203.0.113.0/24", ("10.0.0.3", 2))]},
            {"at": 4, "dump": "route", "family": AF4,
             "records": [_route("192.0.2.0/24", ("10.0.0.2", 2))]},
            {"at": 5, "netlink": [_gone(2, "tap0")]},
            {"at": 6, "netlink": [_link(7, "tap0"), _addr(7, "10.0.0.1", 24)]},
        ],
    }  # fmt: skip


SCENARIOS: dict[str, Callable[[], dict[str, Any]]] = {
    "port-config-follows-the-binding": _port_config,
    "link-down-under-routes-both-forms": _link_down,
    "append-and-prepend-hide-ipv4-routes": _aliases,
    "device-routes-merge-per-key": _merged,
    "next-hop-objects-and-their-routes": _objects,
    "proxy-gone-and-back-and-a-sweep": _gone_and_back,
}


def write() -> None:
    """Run every scenario through today's core and write its trace."""
    TRACES.mkdir(parents=True, exist_ok=True)
    for name, scenario in SCENARIOS.items():
        trace = scenario()
        runner = Runner(trace.get("forms", {}))
        for step in trace["steps"]:
            step.update(runner.step(step))
        trace["final"] = runner.final()
        (TRACES / f"{name}.json").write_text(json.dumps(trace, indent=1) + "\n")


if __name__ == "__main__":
    write()
    sys.exit(0)
