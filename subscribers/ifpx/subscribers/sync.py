"""The subscriber's protocol as a pure machine: messages, replies and time in; requests out.

Every rule of following a bridge lives here and nowhere else: the Clone pattern's
late join (hold what arrives until the snapshot, drop what it covers), per-topic
sequence gaps and tail gaps seen in heartbeats, journal repair and its fallback
to a snapshot, the epoch rule, missed heartbeats, the bound on held messages,
Lazy Pirate retries, the back-off after a refused snapshot. It owns no socket
and reads no clock: the caller passes the time and carries out the
:data:`Action` list each call returns
(:class:`~ifpx.subscribers.subscriber.Subscriber` in Python). The C library's
``ifpx_machine.c`` is the same machine; both are driven by the trace fixtures in
``tests/traces`` (frames and time in, requests, events and replica out).
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from ifpx.schemas import codec
from ifpx.schemas import commands as c
from ifpx.schemas import events as ev
from ifpx.schemas.envelope import Message
from ifpx.schemas.state import RouteTable, SnapshotState
from ifpx.schemas.topics import ALWAYS_SUBSCRIBED, KIND_TOPIC, RouteForm, Topic

from .eventqueue import EventQueue
from .replica import Inconsistent, Replica
from .replicadiff import diff_replicas, initial_events

log = logging.getLogger(__name__)

MAX_HELD = 100_000
"""Most messages held while a repair is under way; past it, a snapshot covers them all.

The C library's ``IFPX_MAX_HELD`` is the same number (a test holds them equal).
"""
RESTARTED = "bridge restarted (new epoch)"
"""The reason of a repair whose snapshot was of another epoch (the C machine's too)."""
EPOCH_PROBE_INTERVAL = 1.0
"""Least time between two snapshots asked for because a message of an unknown epoch came."""
RETIRED_EPOCHS = 16
"""Epochs remembered as not the bridge's (their messages are dropped)."""
MAX_PROBING = 8
"""Unknown epochs held for while the snapshot that settles them is awaited."""
SNAPSHOT_RETRY_FIRST = 0.5
"""Wait after a refused snapshot before asking again; doubled per refusal in a row."""
SNAPSHOT_RETRY_MAX = 30.0
"""Longest wait between two snapshots the bridge refuses (an older bridge refuses for ever)."""

MIN_REPORT_GAP = 0.05
"""Least time between two reports: the report made on going idle waits this long at most."""

ALWAYS_DELIVERED = frozenset(k for k, t in KIND_TOPIC.items() if t in ALWAYS_SUBSCRIBED) - {
    "heartbeat"
}
"""Kinds delivered whatever the kinds filter: bindings, ``cfg_done`` and resync markers."""


@dataclass
class SubscriberStats:
    """What happened so far; useful in tests, logs and dashboards."""

    messages: int = 0
    events: int = 0
    gaps: int = 0
    journal_repairs: int = 0
    snapshot_repairs: int = 0
    inconsistent: int = 0
    """Events refused by the replica (see :class:`~ifpx.subscribers.replica.Inconsistent`)."""
    epochs: int = 0
    heartbeat_misses: int = 0
    bad_messages: int = 0
    callback_errors: int = 0
    request_retries: int = 0
    snapshot_refusals: int = 0


@dataclass(frozen=True)
class SendRequest:
    """Send ``command`` on the control connection; only a reply echoing its ``id`` counts."""

    command: c.Snapshot | c.Replay
    reason: str


@dataclass(frozen=True)
class SendReport:
    """Send ``command`` on the control connection: what this worker has applied."""

    command: c.Report


@dataclass(frozen=True)
class ResetControl:
    """Close the control connection; the next request opens a fresh one (Lazy Pirate)."""


Action = SendRequest | SendReport | ResetControl
"""What the machine asks its caller to do."""


@dataclass(frozen=True)
class Identity:
    """Who a worker says it is in its reports (see :class:`~ifpx.schemas.commands.Report`)."""

    name: str
    instance: int
    host: str = ""
    pid: int = 0
    client: str = ""
    interval: float = 1.0
    """Seconds between two reports when nothing else makes one."""


@dataclass
class _Request:
    id: int
    kind: str
    sent: float
    """When it was sent; for a deferred one, when it is due."""
    reason: str
    deferred: bool = False
    """Not sent yet: a snapshot waiting out its back-off after a refusal."""


class SyncMachine:
    """One subscriber's protocol state, its replica and the events it has for the application."""

    def __init__(
        self,
        topics: set[Topic],
        kinds: set[str] | None = None,
        ports: set[int] | None = None,
        heartbeat_timeout: float = 3.5,
        request_timeout: float = 5.0,
        now: float = 0.0,
        identity: Identity | None = None,
    ) -> None:
        self.topics = topics
        self.kinds = kinds
        self.ports = ports
        self.heartbeat_timeout = heartbeat_timeout
        self.request_timeout = request_timeout
        self.form: RouteForm = "group" if "fib" in topics and "route" not in topics else "flat"
        """How routes arrive: by next-hop group when the ``fib`` topic is taken alone."""
        self.state = Replica(self.form)
        self.stats = SubscriberStats()
        self.pending = EventQueue()
        self.epoch: int | None = None
        self.seq = 0
        self.synced = False
        self._tseq: dict[str, int] = {}
        self._tseq_at: dict[str, int] = {}
        self._held: list[Message] = []
        self._req: _Request | None = None
        self._ids = itertools.count(1)
        self._last_rx = now
        self._now = now
        # Epochs that are not the bridge's: earlier lives, and any that a snapshot proved
        # bogus. Their messages are dropped and prove nothing about the bridge's liveness.
        self._retired: deque[int] = deque(maxlen=RETIRED_EPOCHS)
        # Unknown epochs seen since the snapshot that will settle them was asked for.
        self._probing: set[int] = set()
        self._probe_at = now - EPOCH_PROBE_INTERVAL
        self._actions: list[Action] = []
        # Reports: who we are (None: no reports), what the application has applied,
        # the report out and what the last one said.
        self.identity = identity
        self.applied = (0, 0)
        """(epoch, seq) the application is done with: what reports say."""
        self._report_id = 0
        self._report_sent = now - (identity.interval if identity else 0.0)
        self._reported: tuple[int, int, bool, bool] | None = None
        self._report_refusal = ""
        self._reports_off = False
        self._snapshot_wait = 0.0
        self.refusal = ""
        """The bridge's last refusal of a snapshot (``code: message``); empty once one is taken."""

    # ---- what the caller feeds in ------------------------------------------------

    @property
    def repairing(self) -> bool:
        """True while a journal or snapshot repair is under way (a request is out)."""
        return self._req is not None

    def start(self, now: float) -> list[Action]:
        """Ask for the first snapshot (nothing if one is already asked for or taken)."""
        self._now = now
        if self._req is None and not self.synced:
            self._start_snapshot("initial sync")
        return self._flush()

    def on_message(self, msg: Message, now: float) -> list[Action]:
        """A published message, decoded and valid."""
        self._now = now
        self.stats.messages += 1
        if self.synced and msg.epoch != self.epoch:
            self._foreign(msg)
        else:
            self._last_rx = now
            if self._req is not None or not self.synced:
                self._hold(msg)
            else:
                self._process(msg)
        return self._flush()

    def on_bad_message(self) -> None:
        """A published message that did not decode (dropped, counted)."""
        self.stats.bad_messages += 1

    def on_reply(self, reply: c.Reply, now: float) -> list[Action]:
        """A reply on the control connection, decoded; one to a forgotten request is ignored."""
        self._now = now
        req = self._req
        if req is not None and not req.deferred and reply.id == req.id:
            self._req = None
            self._on_reply(req, reply)
        elif self._report_id and reply.id == self._report_id:
            self._report_id = 0
            self._on_report_reply(reply)
        return self._flush()

    @property
    def awaiting_reply(self) -> bool:
        """True while a repair or a report is out and unanswered (read the control connection)."""
        req = self._req
        return (req is not None and not req.deferred) or self._report_id != 0

    def applied_all_taken(self) -> None:
        """The application is done with every event taken so far (it came back for more)."""
        self.applied = self.pending.delivered

    def tick(self, now: float) -> list[Action]:
        """Time passed: retry an unanswered request, notice missed heartbeats, report."""
        self._now = now
        if self.identity is not None:
            self._maybe_report(now)
        req = self._req
        if req is not None and req.deferred:
            if now >= req.sent:
                self._req = None
                self._start_snapshot(req.reason)
        elif req is not None and now - req.sent > self.request_timeout:
            # Lazy Pirate: the bridge may be gone; a fresh connection drops the stale request.
            self.stats.request_retries += 1
            self._actions.append(ResetControl())
            self._req = None
            self._start_snapshot(req.reason)
        elif req is None and self.synced and now - self._last_rx > self.heartbeat_timeout:
            self.stats.heartbeat_misses += 1
            self._last_rx = now
            self._start_snapshot("heartbeats missed")
        return self._flush()

    def take(self, n: int) -> list[ev.EventBase]:
        """Up to ``n`` events for the application, in order."""
        return self.pending.take(n)

    def _flush(self) -> list[Action]:
        actions, self._actions = self._actions, []
        return actions

    # ---- messages -----------------------------------------------------------------

    def _foreign(self, msg: Message) -> None:
        # A message of another epoch: a bridge restarted (its epoch is larger, or smaller
        # if its clock went back and its state file was lost), a straggler of an earlier
        # life, or garbage. Only a snapshot can tell, and the one rule for all three:
        # ask once, hold what the asked-about epochs send meanwhile, believe the snapshot.
        epoch = msg.epoch
        if epoch in self._retired:
            return
        if epoch in self._probing:
            self._hold(msg)
            return
        if self._req is None or self._req.kind != "snapshot":
            if self._now - self._probe_at < EPOCH_PROBE_INTERVAL:
                return  # its next message or heartbeat asks again
            self._probe_at = self._now
            self.stats.epochs += 1
            self._start_snapshot(RESTARTED)
        if len(self._probing) < MAX_PROBING:
            self._probing.add(epoch)
            self._hold(msg)

    def _retire(self, epoch: int) -> None:
        if epoch not in self._retired:
            self._retired.append(epoch)

    def _hold(self, msg: Message) -> None:
        if msg.topic == "hb":
            return  # a heartbeat only matters against the state it arrives in
        self._held.append(msg)
        if len(self._held) > MAX_HELD:
            self._held.clear()
            if self._req is None or self._req.kind != "snapshot":
                self._req = None
                self._start_snapshot("too far behind during repair")

    def _process(self, msg: Message) -> None:
        if msg.epoch != self.epoch:
            self._foreign(msg)
            return
        if msg.topic == "hb":
            hb = msg.events[0]
            assert isinstance(hb, ev.Heartbeat)  # the envelope's rule: one heartbeat on hb
            behind = [
                t
                for t in self.topics
                if t != "hb" and hb.topic_seqs.get(t, 0) > self._tseq.get(t, 0)
            ]
            if behind:
                self.stats.gaps += 1
                self._start_replay(min(self._tseq_at.get(t, 0) for t in behind), "lost tail")
            else:
                # Nothing missing on our topics: once what is queued is applied, so is
                # everything up to the heartbeat's seq (other topics are not ours).
                self.pending.mark(msg.epoch, msg.seq)
            return
        last = self._tseq.get(msg.topic, 0)
        if msg.tseq <= last:
            return
        if msg.tseq > last + 1:
            self.stats.gaps += 1
            self._start_replay(self._tseq_at.get(msg.topic, 0), f"gap on {msg.topic}")
            self._hold(msg)
            return
        self._tseq[msg.topic] = msg.tseq
        self._tseq_at[msg.topic] = msg.seq
        self.seq = msg.seq
        self._accept(msg.events)
        self.pending.mark(msg.epoch, msg.seq)

    def _accept(self, events: Sequence[ev.EventBase]) -> None:
        # Once per event in a burst: the filters are looked up once per message.
        ports = self.ports
        if ports is not None:
            events = [e for e in events if not isinstance(e, ev.PortScoped) or e.port_id in ports]
        apply = self.state.apply
        applied = 0
        try:
            for e in events:
                apply(e)
                applied += 1
        except Inconsistent as exc:
            # Neither it nor what follows is applied or delivered: the snapshot's
            # difference will say what is true.
            self.stats.inconsistent += 1
            log.warning("inconsistent event (%s): taking a snapshot", exc)
            events = events[:applied]
            self._start_snapshot(f"inconsistent event: {exc}")
        self.stats.events += len(events)
        kinds = self.kinds
        if kinds is not None:
            events = [e for e in events if e.kind in kinds or e.kind in ALWAYS_DELIVERED]
        self.pending.extend(events)

    # ---- repairs ------------------------------------------------------------------

    def _send(self, kind: str, cmd: c.Snapshot | c.Replay, reason: str) -> None:
        rid = next(self._ids)
        self._req = _Request(rid, kind, self._now, reason)
        self._actions.append(SendRequest(cmd.model_copy(update={"id": rid}), reason))

    def _start_snapshot(self, reason: str) -> None:
        if self._req is not None and self._req.kind == "snapshot":
            return
        # Named only for the group form, which needs a bridge that knows the field; a
        # bridge keeps a route form published while a snapshot's taker may want it.
        topics = sorted(self.topics) if "fib" in self.topics else None
        self._send("snapshot", c.Snapshot(topics=topics), reason)

    def _start_replay(self, from_seq: int, reason: str) -> None:
        if self._req is not None:
            return
        assert self.epoch is not None
        topics: list[str] = sorted(t for t in self.topics if t != "hb")
        self._send("replay", c.Replay(epoch=self.epoch, from_seq=from_seq, topics=topics), reason)

    def _on_reply(self, req: _Request, reply: c.Reply) -> None:
        result = reply.result if isinstance(reply, c.OkReply) else None
        if req.kind == "snapshot" and isinstance(result, c.SnapshotResult):
            self._install(result, req.reason)
        elif req.kind == "replay" and isinstance(result, c.ReplayResult):
            self._replay(result, req.reason)
        elif req.kind == "snapshot":
            self._refused(req.reason, reply)
        else:
            # A refused replay (the journal no longer reaches back): a snapshot at once.
            self._start_snapshot(req.reason)

    def _refused(self, reason: str, reply: c.Reply) -> None:
        # Asking again at once would loop as fast as the bridge answers: a bridge that
        # refuses one snapshot (an older one refusing the group form's topics, say)
        # refuses the next. Wait, doubling the wait per refusal in a row; hold what
        # arrives meanwhile, as during any repair.
        if isinstance(reply, c.ErrorReply):
            self.refusal = f"{reply.error.code.value}: {reply.error.message}"
        else:
            self.refusal = f"a {type(reply.result).__name__} in answer to a snapshot"
        self.stats.snapshot_refusals += 1
        wait = self._snapshot_wait = min(
            SNAPSHOT_RETRY_MAX, self._snapshot_wait * 2 or SNAPSHOT_RETRY_FIRST
        )
        log.warning("snapshot refused (%s): asking again in %.1f s", self.refusal, wait)
        self._req = _Request(0, "snapshot", self._now + wait, reason, deferred=True)

    def _replay(self, result: c.ReplayResult, reason: str) -> None:
        try:
            missing = [codec.decode_payload(p) for p in result.messages]
        except codec.CodecError:
            self._start_snapshot(reason)
            return
        self.stats.journal_repairs += 1
        held, self._held = self._held, []
        for msg in sorted([*missing, *held], key=lambda m: (m.epoch, m.seq)):
            if self._req is not None:
                self._hold(msg)
            else:
                self._process(msg)

    def _kinds_only(self, events: Iterable[ev.EventBase]) -> Iterator[ev.EventBase]:
        kinds = self.kinds
        for e in events:
            if kinds is None or e.kind in kinds or e.kind in ALWAYS_DELIVERED:
                yield e

    def _filtered(self, state: SnapshotState) -> SnapshotState:
        ports = self.ports
        keep = self.topics
        routes = bool(keep & {"route", "fib"})
        if ports is None and routes and keep >= {"link", "addr", "rule", "neigh"}:
            return state
        out_ports = []
        for p in state.ports:
            if ports is not None and p.port_id not in ports:
                continue
            update: dict[str, object] = {}
            if "addr" not in keep:
                update["addrs"] = []
            if "link" not in keep:
                update.update(mac=None, mtu=0, up=False, carrier=False)
            out_ports.append(p.model_copy(update=update) if update else p)
        return SnapshotState.model_construct(
            bindings=[b for b in state.bindings if ports is None or b.port_id in ports],
            ports=out_ports,
            routes=state.routes if routes else RouteTable(),
            neighs=[
                n for n in state.neighs if "neigh" in keep and (ports is None or n.port_id in ports)
            ],
            rules=state.rules if "rule" in keep else [],
        )

    def _install(self, snap: c.SnapshotResult, reason: str) -> None:
        self._snapshot_wait = 0.0
        self.refusal = ""
        target = Replica(self.form)
        target.load(self._filtered(snap.state))
        target.cfg_done = snap.cfg_done
        if not self.synced:
            # The initial state reaches the application as events (as the RFC's initial
            # dump does), produced as it polls for them: a full table costs no events
            # up front, and the replica is whole at once. Under a kinds filter, only
            # those kinds: the topics not taken left their fields unknown (an MTU of 0).
            self.pending.add_lazy(self._kinds_only(initial_events(target)))
            self.state.adopt(target)
            if snap.cfg_done:
                self.pending.append(ev.CfgDone())
        else:
            if self.epoch is not None and snap.epoch != self.epoch:
                # Whatever made us ask (heartbeats missed while it was down, say), a
                # snapshot of another epoch says what happened.
                reason = RESTARTED
            changes = diff_replicas(self.state, target)
            self.state.adopt(target)
            self.stats.snapshot_repairs += 1
            self.pending.append(ev.ResyncBegin(reason=reason))
            self.pending.extend(self._kinds_only(changes))
            self.pending.append(ev.ResyncEnd(reason=reason, changes=len(changes)))
        if self.epoch is not None and self.epoch != snap.epoch:
            self._retire(self.epoch)
        for epoch in self._probing - {snap.epoch}:
            self._retire(epoch)
        self._probing.clear()
        self.epoch = snap.epoch
        self.seq = snap.seq
        self._tseq = {t: snap.topic_seqs.get(t, 0) for t in self.topics}
        self._tseq_at = {t: snap.seq for t in self.topics}
        self.synced = True
        self._last_rx = self._now
        self.pending.mark(snap.epoch, snap.seq)
        held, self._held = self._held, []
        for msg in held:
            if msg.epoch != snap.epoch:
                continue  # the snapshot is the bridge's word on which epoch is live
            if self._req is not None:
                self._hold(msg)
            elif msg.seq > snap.seq:
                self._process(msg)

    # ---- reports --------------------------------------------------------------------

    def _maybe_report(self, now: float) -> None:
        ident = self.identity
        assert ident is not None
        since = now - self._report_sent
        if self._report_id:
            if since <= self.request_timeout:
                return
            self._report_id = 0  # unanswered: the bridge may be gone; the next one tells
        position = (*self.applied, self.synced, self.repairing)
        due = since >= ident.interval
        # Idle after a burst: the application has applied all it was given.
        idle = (
            position != self._reported
            and self.pending.empty
            and self.applied == self.pending.delivered
            and since >= MIN_REPORT_GAP
        )
        if not (due or idle) or self._reports_off:
            return
        report = self._report(ident, position)
        self._report_id = report.id
        self._report_sent = now
        self._reported = position
        self._actions.append(SendReport(report))

    def farewell(self) -> c.Report | None:
        """The closing subscriber's last report (``leaving``: the bridge counts the worker
        gone at once, not stalled while its process lives); None if the bridge holds no
        row of it."""
        if self.identity is None or self._reported is None or self._reports_off:
            return None
        position = (*self.applied, self.synced, self.repairing)
        return self._report(self.identity, position, leaving=True)

    def _report(
        self, ident: Identity, position: tuple[int, int, bool, bool], leaving: bool = False
    ) -> c.Report:
        st = self.stats
        return c.Report(
            id=next(self._ids),
            worker=ident.name,
            instance=ident.instance,
            host=ident.host,
            pid=ident.pid,
            client=ident.client,
            epoch=position[0],
            seq=position[1],
            synced=position[2],
            repairing=position[3],
            topics=sorted(self.topics),
            interval=ident.interval,
            leaving=leaving,
            counters={
                "events": st.events,
                "gaps": st.gaps,
                "journal_repairs": st.journal_repairs,
                "snapshot_repairs": st.snapshot_repairs,
                "heartbeat_misses": st.heartbeat_misses,
                "bad_messages": st.bad_messages,
                "callback_errors": st.callback_errors,
                "snapshot_refusals": st.snapshot_refusals,
                "inconsistent": st.inconsistent,
            },
        )

    def _on_report_reply(self, reply: c.Reply) -> None:
        if isinstance(reply, c.OkReply):
            if self._report_refusal:
                log.info("reports taken again")
            self._report_refusal = ""
            return
        code, message = reply.error.code, reply.error.message
        if code in (c.ErrorCode.UNKNOWN_COMMAND, c.ErrorCode.NOT_SUPPORTED):
            # A bridge older than protocol minor 2: it has no use for reports.
            log.info("the bridge takes no reports (%s); not sending any", message)
            self._reports_off = True
        elif message != self._report_refusal:
            log.warning("report refused: %s: %s", code.value, message)
            self._report_refusal = message
