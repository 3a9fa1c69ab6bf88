"""The bridge's unvalidated model building: its shortcut is taken on the hot path, and equal."""

from __future__ import annotations

from test_core import core_with_taps, link, route

from ifpx.bridge import fastmodel, nlmsg
from ifpx.bridge.core import AF4, AF6, BridgeCore


def _workload(core: BridgeCore) -> list[str]:
    core.bind(0, core.links[2])
    core.bind(1, core.links[2])
    out = core.apply_all(
        [
            link(2, "tap0", mtu=1400, mac="02:00:00:00:00:09", up=True),
            nlmsg.Addr(False, 2, AF4, "10.0.0.1", 24),
            nlmsg.Addr(False, 2, AF6, "2001:db8::1", 64),
            nlmsg.Neigh(False, 2, AF4, "10.0.0.2", "02:00:00:00:00:02", 0x02),
            route("10.1.0.0", 16, ("10.0.0.2", 2, 1)),
            route("10.2.0.0", 16, ("10.0.0.2", 2, 1), ("10.0.0.3", 2, 2)),
            route("10.1.0.0", 16, ("10.0.0.2", 2, 1), deleted=True),
            nlmsg.Link(False, 2, "tap9", 1400, "02:00:00:00:00:09", True, False),
            nlmsg.Link(True, 2, "tap9", 1400, "02:00:00:00:00:09", True, False),
        ]
    )
    # A port bound to a proxy that has state already: the replay path.
    out += core.apply_all(
        [
            nlmsg.Addr(False, 3, AF4, "10.9.0.1", 24),
            nlmsg.Addr(False, 3, AF6, "2001:db8:9::1", 64),
            nlmsg.Neigh(False, 3, AF4, "10.9.0.2", "02:00:00:00:00:05", 0x02),
            route("10.9.0.0", 16, ("10.9.0.2", 3, 1)),
        ]
    )
    out += core.bind(2, core.links[3])[2]
    return sorted({e.kind for e in out})


def test_the_hot_path_takes_the_shortcut_for_every_kind_it_builds() -> None:
    fastmodel.MISSES.clear()
    kinds = _workload(core_with_taps())
    assert {"route_add", "route_del", "mtu_change", "addr_add", "neigh_add"} <= set(kinds)
    assert fastmodel.MISSES == {}, f"slow path taken for {fastmodel.MISSES}"


def test_trusted_and_validated_models_are_equal() -> None:
    trusted, checked = core_with_taps(), BridgeCore(validate=True)
    checked.apply_all([link(2, "tap0"), link(3, "tap1"), link(4, "eth0")])
    assert _workload(trusted) == _workload(checked)
    assert trusted.snapshot() == checked.snapshot()
