"""Proxy interface creation and removal through pyroute2 (thin I/O)."""

from __future__ import annotations

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError


class TapError(Exception):
    """The kernel refused; ``errno`` says why."""

    def __init__(self, errno: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno


ALIAS = "ifpx proxy"
"""The alias (``ip link show`` prints it) that marks a tap ifpx made: the only kind
``destroy_proxy`` removes unless forced."""


def create(name: str, mac: str | None = None, mtu: int | None = None) -> tuple[int, bool]:
    """Make a persistent multi_queue tap (what net_tap's ``iface=`` attaches to).

    Returns (ifindex, created); an existing interface of that name is left as it is.
    """
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if found:
            return int(found[0]), False
        try:
            ipr.link(
                "add",
                ifname=name,
                kind="tuntap",
                mode="tap",
                ifr={"multi_queue": True, "no_pi": True},
            )
            ifindex = int(ipr.link_lookup(ifname=name)[0])
            changes: dict[str, object] = {"ifalias": ALIAS}
            if mac is not None:
                changes["address"] = mac
            if mtu is not None:
                changes["mtu"] = mtu
            ipr.link("set", index=ifindex, **changes)
        except NetlinkError as exc:
            raise TapError(exc.code, f"{name}: {exc}") from None
        except OSError as exc:
            raise TapError(exc.errno or 0, f"{name}: {exc}") from None
    return ifindex, True


def destroy(name: str) -> bool:
    """Remove the interface ``name``; False if there was none."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            return False
        try:
            ipr.link("del", index=found[0])
        except NetlinkError as exc:
            raise TapError(exc.code, f"{name}: {exc}") from None
    return True


def made_by_ifpx(name: str) -> bool:
    """True if ``name`` carries the alias :func:`create` gives the taps it makes."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            return False
        return bool(ipr.get_links(found[0])[0].get_attr("IFLA_IFALIAS") == ALIAS)


def is_tap(name: str) -> bool:
    """True if ``name`` exists and is a tun/tap device."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            return False
        link = ipr.get_links(found[0])[0]
        info = link.get_attr("IFLA_LINKINFO")
        return info is not None and info.get_attr("IFLA_INFO_KIND") == "tun"
