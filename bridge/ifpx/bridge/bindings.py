"""The port/proxy binding table (pure).

A DPDK port binds to exactly one proxy; a proxy may serve many ports. A proxy
is identified by its ifindex in the bridge's namespace; its name is an
attribute that follows renames. A binding whose proxy disappears stays, marked
gone (ifindex None), until a link of the same name appears again: the rebind
rule is "same name, next link to appear", because DPDK's net_tap re-creates
its tap under the same ``iface=`` name each time the application restarts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_IFNAME = re.compile(r"[^\s/]{1,15}")
"""What Linux accepts as an interface name (IFNAMSIZ - 1 bytes, no white space or slash)."""


@dataclass(slots=True)
class Entry:
    """One binding."""

    port_id: int
    proxy: str
    ifindex: int | None
    last_ifindex: int | None = None

    @property
    def gone(self) -> bool:
        """True while the proxy interface does not exist."""
        return self.ifindex is None


class BindingTable:
    """Bindings, indexed by port and by proxy ifindex."""

    def __init__(self) -> None:
        self._by_port: dict[int, Entry] = {}
        self._by_ifindex: dict[int, list[int]] = {}
        self.generation = 0
        """Counts changes to which ports are bound to which ifindex (for caches of it)."""
        self.moved = 0
        """Counts the kernel's changes to a bound proxy's identity (it came back under a new
        ifindex, or was renamed): what the state file holds changed without a command."""

    def __len__(self) -> int:
        return len(self._by_port)

    def entries(self) -> list[Entry]:
        """All bindings, by port id."""
        return [self._by_port[p] for p in sorted(self._by_port)]

    def get(self, port_id: int) -> Entry | None:
        """The binding of ``port_id``."""
        return self._by_port.get(port_id)

    def ports(self, ifindex: int) -> list[int]:
        """Ports bound to the proxy ``ifindex``, ascending."""
        return self._by_ifindex.get(ifindex, [])

    def is_bound(self, ifindex: int) -> bool:
        """True if any port is bound to ``ifindex``."""
        return ifindex in self._by_ifindex

    def _index(self, entry: Entry) -> None:
        self.generation += 1
        if entry.ifindex is not None:
            ports = self._by_ifindex.setdefault(entry.ifindex, [])
            ports.append(entry.port_id)
            ports.sort()

    def _unindex(self, entry: Entry) -> None:
        self.generation += 1
        if entry.ifindex is None:
            return
        ports = self._by_ifindex.get(entry.ifindex, [])
        if entry.port_id in ports:
            ports.remove(entry.port_id)
        if not ports:
            self._by_ifindex.pop(entry.ifindex, None)

    def bind(self, port_id: int, proxy: str, ifindex: int) -> tuple[Entry, Entry | None]:
        """Bind; return the new entry and the one it replaced (None if the port was free).

        When the port is already bound to exactly this proxy, the same entry is
        returned as both: nothing changed.
        """
        old = self._by_port.get(port_id)
        if old is not None and old.ifindex == ifindex:
            old.proxy = proxy
            return old, old
        if old is not None:
            self._unindex(old)
        entry = Entry(port_id, proxy, ifindex)
        self._by_port[port_id] = entry
        self._index(entry)
        return entry, old

    def unbind(self, port_id: int, ifindex: int | None = None) -> Entry | None:
        """Remove the port's binding (only if bound to ``ifindex``, when given); return it.

        None when there was nothing to remove.
        """
        entry = self._by_port.get(port_id)
        if entry is None or (ifindex is not None and entry.ifindex != ifindex):
            return None
        del self._by_port[port_id]
        self._unindex(entry)
        return entry

    def copy(self) -> BindingTable:
        """An independent copy (a change can be tried on it, and written, before it is made)."""
        out = BindingTable()
        for e in self._by_port.values():
            dup = Entry(e.port_id, e.proxy, e.ifindex, e.last_ifindex)
            out._by_port[dup.port_id] = dup
            out._index(dup)
        return out

    def mark_gone(self, ifindex: int) -> list[Entry]:
        """The proxy ``ifindex`` disappeared: its bindings become gone; return them."""
        entries = [self._by_port[p] for p in self.ports(ifindex)]
        for entry in entries:
            self._unindex(entry)
            entry.last_ifindex, entry.ifindex = ifindex, None
        return entries

    def add_gone(self, port_id: int, proxy: str, last_ifindex: int | None) -> Entry:
        """Record a binding whose proxy does not exist (restored from the state file)."""
        old = self._by_port.pop(port_id, None)
        if old is not None:
            self._unindex(old)
        entry = Entry(port_id, proxy, None, last_ifindex)
        self._by_port[port_id] = entry
        return entry

    def come_back(self, name: str, ifindex: int) -> list[tuple[Entry, int]]:
        """A link named ``name`` appeared: rebind gone bindings of that name to it.

        Returns (entry, the ifindex it had before, 0 if unknown) pairs.
        """
        back = []
        for entry in self._by_port.values():
            if entry.gone and entry.proxy == name:
                back.append((entry, entry.last_ifindex or 0))
                entry.ifindex = ifindex
                self._index(entry)
        if back:
            self.moved += 1
        return back

    def rename(self, ifindex: int, name: str) -> list[tuple[Entry, str]]:
        """The proxy ``ifindex`` is now called ``name``; return (entry, old name) pairs."""
        out = []
        for port in self.ports(ifindex):
            entry = self._by_port[port]
            if entry.proxy != name:
                out.append((entry, entry.proxy))
                entry.proxy = name
        if out:
            self.moved += 1
        return out

    def to_json(self) -> list[dict[str, Any]]:
        """A JSON-ready list for the state file."""
        return [
            {"port_id": e.port_id, "proxy": e.proxy, "ifindex": e.ifindex or e.last_ifindex}
            for e in self.entries()
        ]

    @staticmethod
    def parse(items: Any) -> list[Entry]:
        """Entries from :meth:`to_json` output; raise ValueError on anything else.

        Held to the wire's own rules (``type(x) is int``, since JSON's ``true`` is a
        Python int to ``isinstance``; Linux's interface names): a value that loaded
        here would otherwise break every snapshot reply later.
        """
        if not isinstance(items, list):
            raise ValueError("bindings is not a list")
        out: list[Entry] = []
        seen: set[int] = set()
        for item in items:
            if not isinstance(item, dict) or set(item) - {"port_id", "proxy", "ifindex"}:
                raise ValueError(f"bad binding {item!r}")
            port, proxy, ifindex = item.get("port_id"), item.get("proxy"), item.get("ifindex")
            if type(port) is not int or not 0 <= port <= 65535:
                raise ValueError(f"bad port_id {port!r}")
            if port in seen:
                raise ValueError(f"port {port} is bound twice")
            if type(proxy) is not str or not _IFNAME.fullmatch(proxy):
                raise ValueError(f"bad proxy name {proxy!r}")
            if ifindex is not None and (type(ifindex) is not int or not 0 < ifindex < 2**31):
                raise ValueError(f"bad ifindex {ifindex!r}")
            seen.add(port)
            out.append(Entry(port, proxy, ifindex))
        return out
