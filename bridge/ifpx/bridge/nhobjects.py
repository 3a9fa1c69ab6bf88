"""The kernel's next-hop objects (``ip nexthop``) and what each one resolves to (pure).

Routes installed by FRR and other modern daemons refer to a next-hop object by
id (RTA_NH_ID) instead of carrying their next hops; with
``net.ipv4.nexthop_compat_mode=0`` the kernel does not even expand them in route
messages. The mirror resolves such routes through this table. The kernel also
changes objects without telling: a member removed from a group shrinks the group
silently, and a link that goes down or loses its carrier takes the objects
through it along, also silently. :meth:`NhTable.apply` and
:meth:`NhTable.flush_dev` derive those changes, and return the ids whose
resolution may have changed, so the mirror republishes the routes that use them.
"""

from __future__ import annotations

from . import nlmsg

Resolved = tuple[int, tuple[nlmsg.NextHopT, ...]]
"""(route type, next hops): ``RTN_BLACKHOLE`` and no hops for a blackhole object."""


class NhTable:
    """Next-hop objects by id."""

    def __init__(self) -> None:
        self.objects: dict[int, nlmsg.NhObject] = {}

    def __len__(self) -> int:
        return len(self.objects)

    def resolve(self, nhid: int) -> Resolved | None:
        """What a route using ``nhid`` forwards with; None while the object is unknown."""
        obj = self.objects.get(nhid)
        if obj is None:
            return None
        if obj.blackhole:
            return nlmsg.RTN_BLACKHOLE, ()
        if not obj.group:
            return nlmsg.RTN_UNICAST, ((obj.gateway, obj.ifindex, 1, obj.flags),)
        hops: list[nlmsg.NextHopT] = []
        for member_id, weight in obj.group:
            member = self.objects.get(member_id)
            if member is None or member.group:
                continue  # the kernel has already dropped it from the group
            if member.blackhole:
                return nlmsg.RTN_BLACKHOLE, ()
            hops.append((member.gateway, member.ifindex, weight, member.flags))
        return nlmsg.RTN_UNICAST, tuple(hops)

    def _users(self, ids: set[int]) -> set[int]:
        """``ids`` and every group with a member among them (groups do not nest)."""
        return ids | {
            gid for gid, obj in self.objects.items() if any(m in ids for m, _w in obj.group)
        }

    def apply(self, rec: nlmsg.NhObject) -> set[int]:
        """Apply a RTM_NEWNEXTHOP/RTM_DELNEXTHOP; return the ids whose resolution may differ."""
        if rec.fdb:
            return set()  # bridge/VXLAN forwarding-database hops: never a route's
        if rec.deleted:
            return self._delete({rec.id})
        if self.objects.get(rec.id) == rec:
            return set()
        self.objects[rec.id] = rec
        return self._users({rec.id})

    def flush_dev(self, ifindex: int) -> set[int]:
        """The kernel flushed the objects through ``ifindex`` (link down or carrier loss)."""
        gone = {
            nid for nid, obj in self.objects.items() if not obj.group and obj.ifindex == ifindex
        }
        return self._delete(gone) if gone else set()

    def _delete(self, ids: set[int]) -> set[int]:
        affected = self._users(ids)
        for nid in ids:
            self.objects.pop(nid, None)
        # Groups lose the members silently; a group left empty is deleted with them.
        emptied: set[int] = set()
        for gid in affected - ids:
            obj = self.objects.get(gid)
            if obj is None:
                continue
            members = tuple((m, w) for m, w in obj.group if m not in ids)
            if members:
                self.objects[gid] = obj._replace(group=members)
            else:
                emptied.add(gid)
        for gid in emptied:
            del self.objects[gid]
        return affected

    def reconcile(self, dumped: list[nlmsg.NhObject]) -> set[int]:
        """Make the table equal a complete dump; return the ids whose resolution may differ."""
        gone = set(self.objects) - {rec.id for rec in dumped if not rec.fdb}
        changed = self._delete(gone) if gone else set()
        for rec in dumped:
            changed |= self.apply(rec)
        return changed
