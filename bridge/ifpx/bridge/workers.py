"""The workers that report to the bridge: who they are, what they applied, how far behind (pure).

A subscriber reports the last sequence number whose events went through its
callbacks (``report``); this table keeps one row per worker name and answers
``list_workers`` and ``wait_applied`` from those rows, the bridge's position and
the time given by the caller. It owns no socket and reads no clock; whether a
process still exists, and since when, is asked of the ``process_start`` function it
is given.

Who may report for a name: the subscriber that reported it first (its
``instance``), for as long as it lives. Over ipc the kernel tells the bridge
each peer's pid (SO_PEERCRED, through ZeroMQ's Peer-Address), so a name held by
a live process cannot be taken by another one, and one held by a process that
has exited (or whose pid the kernel gave to a later process: its start time
differs) is taken over at once by its restart (the row is kept, ``restarts``
counts). Where there are no credentials (tcp), ``instance`` is a 63-bit secret
shared only between that subscriber and the bridge, and a name is free again
once its holder has missed three reports.

A worker is gone when its process is (ipc), when it said it was leaving (a closing
subscriber's last report), or, without credentials, when it missed three reports.
A worker of a live process that stopped reporting is ``stalled``, not gone: it may be
blocked in the middle of an event (a full ring), and ``wait_applied`` waits for it.

``wait_applied`` never says done while it cannot know: a name whose report was
refused (held by another process, a full table, a process claiming too many names)
is waited for, as ``refused``, until the refused reporter has been silent for three
of its intervals; and with no worker at all, nothing is done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NoReturn, Protocol

from ifpx.schemas import commands as c
from ifpx.schemas.serving import CommandError

MISSED_REPORTS = 3
"""Reports a worker may miss before it counts as gone."""
FORGET_AFTER = 600.0
"""Seconds a gone worker stays listed."""
MAX_WORKERS = 1024
"""Most rows; past it the oldest gone worker is forgotten, or a new name refused."""
MAX_NAMES_PER_PID = 256
"""Most names one live process may report under (a worker per lcore fits)."""
OTHERS_REFUSED = "(others)"
"""The name ``wait_applied`` shows for refused names it could not keep one by one."""


@dataclass(frozen=True)
class Peer:
    """What the transport says about whoever sent a request (ipc: the kernel's credentials)."""

    pid: int | None = None
    uid: int | None = None

    @classmethod
    def from_address(cls, address: str | None) -> Peer:
        """Parse ZeroMQ's ipc Peer-Address (``...:uid:gid:pid``); anything else knows nobody."""
        if not address:
            return cls()
        parts = address.rsplit(":", 3)
        if len(parts) != 4 or not all(p.isdigit() for p in parts[1:]):
            return cls()
        uid, pid = int(parts[1]), int(parts[3])
        # pid 0: the peer lives in a pid namespace the bridge cannot see into.
        return cls(pid=pid if pid > 0 else None, uid=uid)


class Position(Protocol):
    """The published stream as the table needs it (the publisher is one)."""

    epoch: int
    seq: int

    def last_seq_of(self, topics: Iterable[str]) -> int:
        """The ``seq`` of the latest message on any of ``topics``."""

    def published_at(self, seq: int) -> float | None:
        """About when ``seq`` was published, on the caller's clock."""


@dataclass
class Worker:
    """One worker's latest report and what the bridge knows of its sender."""

    name: str
    instance: int
    peer_pid: int | None
    report: c.Report
    first_seen: float
    last_seen: float
    restarts: int = 0
    peer_start: int | None = None
    """When the process of ``peer_pid`` started, as first seen: a later process given
    the same pid is not this one."""


class WorkerTable:
    """Rows by worker name, fed by reports; answers ``list_workers`` and ``wait_applied``."""

    def __init__(self, process_start: Callable[[int], int | None]) -> None:
        self.process_start = process_start
        self.rows: dict[str, Worker] = {}
        self.reports = 0
        self.refused = 0
        self.refusals: dict[str, float] = {}
        """Names whose reports were refused, until when they are waited for."""
        self._others_until = 0.0
        """Until when refused names that did not fit in :attr:`refusals` are waited for."""

    # ---- reports ------------------------------------------------------------------

    def report(self, r: c.Report, peer: Peer, now: float, pos: Position) -> Worker:
        """Take a report; CommandError if it is not that worker's to make, or cannot be true."""
        if r.epoch == pos.epoch and r.seq > pos.seq:
            self.refused += 1
            raise CommandError(
                c.ErrorCode.INVALID_VALUE,
                f"worker {r.worker!r} reports seq {r.seq}; the bridge has published {pos.seq}",
            )
        w = self.rows.get(r.worker)
        if w is None:
            self._make_room(r, now)
            self._within_share(r, peer, now)
            w = self.rows[r.worker] = Worker(r.worker, r.instance, peer.pid, r, now, now)
            w.peer_start = self._start(peer.pid)
        elif w.instance != r.instance:
            self._take_over(w, r, peer, now)
        elif w.peer_pid is not None and peer.pid is not None and w.peer_pid != peer.pid:
            self._refuse(
                r,
                now,
                c.ErrorCode.PERMISSION_DENIED,
                f"worker {r.worker!r} reports from pid {w.peer_pid}, not {peer.pid}",
            )
        w.report = r
        w.last_seen = now
        if w.peer_pid is None and peer.pid is not None:
            w.peer_pid, w.peer_start = peer.pid, self._start(peer.pid)
        self.reports += 1
        return w

    def _start(self, pid: int | None) -> int | None:
        return None if pid is None else self.process_start(pid)

    def _take_over(self, w: Worker, r: c.Report, peer: Peer, now: float) -> None:
        # Another subscriber claims the name: a restart (the holder has exited or left,
        # or it is the holder's own process making a new subscriber) or a stranger.
        held_by = w.peer_pid
        free = (held_by is not None and peer.pid == held_by) or self._gone(w, now)
        if not free:
            holder = f"pid {held_by}" if held_by is not None else "another subscriber"
            after = (
                "while it runs"
                if held_by is not None
                else f"until it misses {MISSED_REPORTS} reports"
                f" ({MISSED_REPORTS * w.report.interval:.1f}s)"
            )
            self._refuse(
                r,
                now,
                c.ErrorCode.PERMISSION_DENIED,
                f"worker name {r.worker!r} is held by {holder} {after}; choose another name",
            )
        w.instance = r.instance
        w.peer_pid, w.peer_start = peer.pid, self._start(peer.pid)
        w.restarts += 1
        w.first_seen = now

    def _make_room(self, r: c.Report, now: float) -> None:
        self.forget(now)
        if len(self.rows) < MAX_WORKERS:
            return
        gone = [w for w in self.rows.values() if self._gone(w, now)]
        if not gone:
            self._refuse(
                r,
                now,
                c.ErrorCode.INVALID_VALUE,
                f"{MAX_WORKERS} workers report to this bridge already; not taking another",
            )
        del self.rows[min(gone, key=lambda w: w.last_seen).name]

    def _within_share(self, r: c.Report, peer: Peer, now: float) -> None:
        if peer.pid is None:
            return
        held = sum(
            1 for w in self.rows.values() if w.peer_pid == peer.pid and not self._gone(w, now)
        )
        if held >= MAX_NAMES_PER_PID:
            self._refuse(
                r,
                now,
                c.ErrorCode.INVALID_VALUE,
                f"pid {peer.pid} reports under {held} names already; not taking another",
            )

    def _refuse(self, r: c.Report, now: float, code: c.ErrorCode, message: str) -> NoReturn:
        """Refuse ``r``, and have ``wait_applied`` wait for its name while it is sent."""
        self.refused += 1
        until = now + MISSED_REPORTS * r.interval
        refusals = self.refusals
        if r.worker not in refusals and len(refusals) >= MAX_WORKERS:
            for name in [n for n, t in refusals.items() if t <= now]:
                del refusals[name]
        if r.worker in refusals or len(refusals) < MAX_WORKERS:
            refusals[r.worker] = until
        else:
            self._others_until = max(self._others_until, until)
        raise CommandError(code, message)

    def _refused_now(self, now: float) -> list[str]:
        """The names refused lately (whose reporters may be the real workers)."""
        names = sorted(n for n, until in self.refusals.items() if until > now)
        if self._others_until > now:
            names.append(OTHERS_REFUSED)
        return names

    def forget(self, now: float) -> None:
        """Drop the workers gone for longer than :data:`FORGET_AFTER`."""
        old = [
            name
            for name, w in self.rows.items()
            if now - w.last_seen > FORGET_AFTER and self._gone(w, now)
        ]
        for name in old:
            del self.rows[name]
        for name in [n for n, until in self.refusals.items() if until <= now]:
            del self.refusals[name]

    # ---- what they have applied ---------------------------------------------------------

    def _gone(self, w: Worker, now: float) -> bool:
        if w.report.leaving:
            return True
        if w.peer_pid is None:
            return self._silent(w, now)
        start = self.process_start(w.peer_pid)
        return start is None or (w.peer_start is not None and start != w.peer_start)

    @staticmethod
    def _silent(w: Worker, now: float) -> bool:
        return now - w.last_seen > MISSED_REPORTS * w.report.interval

    @staticmethod
    def _has(w: Worker, seq: int, pos: Position) -> bool:
        """True if ``w`` applied everything up to ``seq`` it subscribes to."""
        r = w.report
        if r.epoch != pos.epoch or not r.synced:
            return False
        # Nothing on its topics since what it applied: nothing it could be missing.
        return r.seq >= seq or pos.last_seq_of(r.topics) <= r.seq

    def info(self, w: Worker, pos: Position, now: float) -> c.WorkerInfo:
        """``w`` as ``list_workers`` shows it."""
        r = w.report
        current = self._has(w, pos.seq, pos)
        lag_seq = 0 if current else max(pos.seq - r.seq, 0) if r.epoch == pos.epoch else pos.seq
        lag_seconds = 0.0
        if lag_seq:
            since = pos.published_at(r.seq + 1 if r.epoch == pos.epoch else 1)
            lag_seconds = max(now - since, 0.0) if since is not None else 0.0
        state: c.WorkerState
        if self._gone(w, now):
            state = "gone"
        elif self._silent(w, now):
            state = "stalled"  # its process lives: blocked, perhaps mid-event
        elif not r.synced or r.epoch != pos.epoch:
            state = "syncing"
        elif r.repairing:
            state = "repairing"
        elif lag_seconds > r.interval:
            state = "lagging"
        else:
            state = "current"
        return c.WorkerInfo(
            name=w.name,
            state=state,
            host=r.host,
            pid=w.peer_pid if w.peer_pid is not None else r.pid,
            client=r.client,
            epoch=r.epoch,
            applied_seq=r.seq,
            lag_seq=lag_seq,
            lag_seconds=round(lag_seconds, 4),
            last_report=round(max(now - w.last_seen, 0.0), 4),
            reporting_for=round(max(now - w.first_seen, 0.0), 4),
            restarts=w.restarts,
            topics=sorted(r.topics),
            counters=dict(r.counters),
        )

    def infos(self, pos: Position, now: float) -> list[c.WorkerInfo]:
        """Every worker, by name, then the names refused lately that no row has."""
        self.forget(now)
        rows = [self.info(self.rows[n], pos, now) for n in sorted(self.rows)]
        return rows + [_refused(n) for n in self._refused_now(now) if n not in self.rows]

    def wait(
        self, seq: int, names: list[str] | None, pos: Position, now: float
    ) -> c.WaitAppliedResult:
        """Whether every worker named (None: every one not gone) has applied ``seq``.

        Never done with no worker to ask, nor while a name waited for was refused
        lately (its refused reporter may be the real worker).
        """
        refused = self._refused_now(now)
        if names is None:
            chosen = [w for _n, w in sorted(self.rows.items()) if not self._gone(w, now)]
            unknown: list[str] = []
            contested = refused
        else:
            wanted = sorted(set(names))
            chosen = [self.rows[n] for n in wanted if n in self.rows]
            unknown = [n for n in wanted if n not in self.rows and n not in refused]
            contested = [n for n in refused if n in wanted or n == OTHERS_REFUSED]
        waiting = [
            self.info(w, pos, now)
            for w in chosen
            if self._gone(w, now) or not self._has(w, seq, pos)
        ]
        waiting += [c.WorkerInfo(name=n, state="unknown") for n in unknown]
        waiting += [_refused(n) for n in contested if n not in self.rows or self.rows[n] in chosen]
        return c.WaitAppliedResult(
            done=bool(chosen) and not waiting,
            epoch=pos.epoch,
            seq=seq,
            workers=[w.name for w in chosen]
            + unknown
            + [n for n in contested if n not in self.rows],
            waiting=waiting,
        )


def _refused(name: str) -> c.WorkerInfo:
    return c.WorkerInfo(name=name, state="refused")
