"""The convergence barrier's pure parts: the worker table, and what a subscriber reports."""

from __future__ import annotations

import os
from pathlib import Path

import controlkit
import pytest

from ifpx.bridge import workers as wk
from ifpx.bridge.publisher import SeqTimes
from ifpx.schemas import commands as c
from ifpx.schemas import events as ev
from ifpx.schemas.envelope import Message
from ifpx.schemas.state import SnapshotState
from ifpx.schemas.topics import TOPICS
from ifpx.subscribers.eventqueue import EventQueue
from ifpx.subscribers.sync import Identity, SendReport, SyncMachine

EPOCH = 5
ALL = sorted(t for t in TOPICS)


def report(name: str = "w1", instance: int = 1, seq: int = 0, **kw: object) -> c.Report:
    fields: dict[str, object] = {
        "worker": name,
        "instance": instance,
        "epoch": EPOCH,
        "seq": seq,
        "synced": True,
        "topics": ALL,
    }
    fields.update(kw)
    return c.Report.model_validate(fields)


def ok(reply: c.Reply) -> c.Result:
    assert isinstance(reply, c.OkReply), reply
    return reply.result


def refused(reply: c.Reply) -> str:
    assert isinstance(reply, c.ErrorReply), reply
    return reply.error.code.value


def test_peer_credentials_come_from_zeromqs_ipc_peer_address() -> None:
    assert wk.Peer.from_address("localhost:0:0:28922") == wk.Peer(pid=28922, uid=0)
    assert wk.Peer.from_address(":1000:1000:77") == wk.Peer(pid=77, uid=1000)
    # pid 0: a peer in a pid namespace the bridge cannot see into
    assert wk.Peer.from_address(":0:0:0") == wk.Peer(pid=None, uid=0)
    assert wk.Peer.from_address("127.0.0.1") == wk.Peer()
    assert wk.Peer.from_address(None) == wk.Peer()


def test_seq_times_keep_one_record_per_resolution_and_answer_the_latest_before() -> None:
    times = SeqTimes(resolution=0.01, capacity=4)
    assert times.time_of(1) is None
    times.record(1, 10.0)
    times.record(2, 10.005)  # within the resolution: no record
    times.record(3, 10.02)
    assert times.time_of(1) == 10.0
    assert times.time_of(2) == 10.0
    assert times.time_of(3) == 10.02
    assert times.time_of(99) == 10.02
    for i in range(4, 20):
        times.record(i, 10.0 + i)
    assert times.time_of(1) is not None and times.time_of(1) > 10.0  # forgotten: reads short


def test_a_worker_is_listed_with_its_position_and_a_change_makes_it_lag(tmp_path: Path) -> None:
    ctl, effects, stream = controlkit.controller(tmp_path)
    stream.publish("route", 1.0)
    assert ok(controlkit.run(ctl, report(seq=1), wk.Peer(pid=100), now=1.0)[0]) == c.ReportResult(
        epoch=EPOCH, seq=1
    )
    listed = ok(controlkit.run(ctl, c.ListWorkers(), now=1.5)[0])
    assert isinstance(listed, c.ListWorkersResult)
    [w] = listed.workers
    assert (w.name, w.state, w.applied_seq, w.lag_seq) == ("w1", "current", 1, 0)
    stream.publish("route", 2.0)
    # behind, but not for longer than its interval: still current
    [w] = ok(controlkit.run(ctl, c.ListWorkers(), now=2.5)[0]).workers  # type: ignore[union-attr]
    assert (w.state, w.lag_seq, w.lag_seconds) == ("current", 1, 0.5)
    [w] = ok(controlkit.run(ctl, c.ListWorkers(), now=3.5)[0]).workers  # type: ignore[union-attr]
    assert (w.state, w.lag_seq) == ("lagging", 1)
    # three intervals without a report while its process lives: stalled (perhaps blocked
    # in the middle of an event), and waited for
    [w] = ok(controlkit.run(ctl, c.ListWorkers(), now=4.1)[0]).workers  # type: ignore[union-attr]
    assert w.state == "stalled"
    assert _wait(ctl, 4.1).waiting[0].state == "stalled"
    # the process exits: gone
    effects.dead.add(100)
    [w] = ok(controlkit.run(ctl, c.ListWorkers(), now=4.2)[0]).workers  # type: ignore[union-attr]
    assert w.state == "gone"


def test_a_worker_that_leaves_is_gone_at_once_and_a_reused_pid_is_not_its_process(
    tmp_path: Path,
) -> None:
    ctl, effects, stream = controlkit.controller(tmp_path)
    _published(stream, 2)
    ok(controlkit.run(ctl, report("a", 1, seq=2), wk.Peer(pid=100), now=1.0)[0])
    ok(controlkit.run(ctl, report("b", 2, seq=1), wk.Peer(pid=200), now=1.0)[0])
    # a closing subscriber's last report: gone, though its process lives on
    bye = report("b", 2, seq=1).model_copy(update={"leaving": True})
    ok(controlkit.run(ctl, bye, wk.Peer(pid=200), now=1.1)[0])
    assert _wait(ctl, 1.1).done  # b is not waited for
    # a's process exits and the kernel gives its pid to another one: not a's
    effects.starts[100] = 2
    listed = ok(controlkit.run(ctl, c.ListWorkers(), now=1.2)[0])
    assert isinstance(listed, c.ListWorkersResult)
    assert [(w.name, w.state) for w in listed.workers] == [("a", "gone"), ("b", "gone")]
    # so that process may take the name, as a restart would
    ok(controlkit.run(ctl, report("a", 3, seq=2), wk.Peer(pid=100), now=1.3)[0])
    assert ctl.workers.rows["a"].restarts == 1


def test_states_syncing_and_repairing(tmp_path: Path) -> None:
    ctl, _effects, _stream = controlkit.controller(tmp_path)
    controlkit.run(ctl, report("a", 1, synced=False), wk.Peer(pid=1))
    controlkit.run(ctl, report("b", 2, epoch=EPOCH - 1), wk.Peer(pid=2))
    controlkit.run(ctl, report("c", 3, repairing=True), wk.Peer(pid=3))
    listed = ok(controlkit.run(ctl, c.ListWorkers())[0])
    assert isinstance(listed, c.ListWorkersResult)
    assert [(w.name, w.state) for w in listed.workers] == [
        ("a", "syncing"),
        ("b", "syncing"),
        ("c", "repairing"),
    ]


def _published(stream: controlkit.Stream, count: int) -> None:
    for _ in range(count):
        stream.publish("route", 0.0)


def test_a_stranger_cannot_report_for_a_live_worker(tmp_path: Path) -> None:
    ctl, effects, stream = controlkit.controller(tmp_path)
    _published(stream, 9)
    controlkit.run(ctl, report(instance=1, seq=0), wk.Peer(pid=100))
    # another process, another instance: refused while pid 100 lives
    assert refused(controlkit.run(ctl, report(instance=2, seq=9), wk.Peer(pid=200))[0]) == (
        "permission_denied"
    )
    # the same instance from another process (a copied secret): refused too
    assert refused(controlkit.run(ctl, report(instance=1, seq=9), wk.Peer(pid=200))[0]) == (
        "permission_denied"
    )
    # the worker itself, from the read-only endpoint too (it may be all a worker is given)
    payload = controlkit.codec.encode_request(report(instance=1, seq=9))
    ok(controlkit.ask(ctl, payload, True, wk.Peer(pid=100)))
    assert ctl.workers.rows["w1"].report.seq == 9
    # a silent holder keeps its name while its process lives (it may be blocked)
    assert refused(controlkit.run(ctl, report(instance=2), wk.Peer(pid=200), now=9.0)[0]) == (
        "permission_denied"
    )
    ok(controlkit.run(ctl, report(instance=1, seq=0), wk.Peer(pid=100), now=9.1)[0])
    # ... and not once the kernel gave its pid to a later process
    effects.starts[100] = 7
    ok(controlkit.run(ctl, report(instance=2), wk.Peer(pid=200), now=9.2)[0])
    effects.dead.add(200)
    ok(controlkit.run(ctl, report(instance=1, seq=0), wk.Peer(pid=100), now=9.3)[0])
    # the holder exits and restarts: the restart takes the name over at once, one row
    effects.dead.add(100)
    ok(controlkit.run(ctl, report(instance=3, seq=4), wk.Peer(pid=300), now=9.4)[0])
    listed = ok(controlkit.run(ctl, c.ListWorkers(), now=9.4)[0])
    assert isinstance(listed, c.ListWorkersResult)
    [w] = listed.workers
    assert (w.applied_seq, w.restarts) == (4, 3)


def test_without_credentials_a_name_is_free_once_its_holder_is_gone(tmp_path: Path) -> None:
    ctl, _effects, stream = controlkit.controller(tmp_path)
    _published(stream, 3)
    controlkit.run(ctl, report(instance=1, interval=1.0), wk.Peer(), now=0.0)
    assert refused(controlkit.run(ctl, report(instance=2), wk.Peer(), now=2.0)[0]) == (
        "permission_denied"
    )
    ok(controlkit.run(ctl, report(instance=2, seq=3), wk.Peer(), now=3.5)[0])
    assert ctl.workers.rows["w1"].restarts == 1


def test_wait_applied_done_only_when_every_live_worker_has_it(tmp_path: Path) -> None:
    ctl, effects, stream = controlkit.controller(tmp_path)
    stream.publish("route", 0.0)
    controlkit.run(ctl, report("a", 1, seq=1), wk.Peer(pid=1), now=0.1)
    # b takes routes only: link messages are nothing it can be missing
    controlkit.run(ctl, report("b", 2, seq=1, topics=["route", "port", "sync", "hb"]), now=0.1)
    stream.publish("route", 1.0)
    stream.publish("link", 1.0)
    first = ok(controlkit.run(ctl, c.WaitApplied(), now=1.0)[0])
    assert isinstance(first, c.WaitAppliedResult)
    assert (first.done, first.seq, first.workers) == (False, 3, ["a", "b"])
    assert sorted(w.name for w in first.waiting) == ["a", "b"]
    controlkit.run(ctl, report("b", 2, seq=2, topics=["route", "port", "sync", "hb"]), now=1.1)
    second = ok(controlkit.run(ctl, c.WaitApplied(seq=3, epoch=EPOCH), now=1.1)[0])
    assert isinstance(second, c.WaitAppliedResult)
    assert [w.name for w in second.waiting] == ["a"]
    controlkit.run(ctl, report("a", 1, seq=3), wk.Peer(pid=1), now=1.2)
    third = ok(controlkit.run(ctl, c.WaitApplied(seq=3), now=1.2)[0])
    assert isinstance(third, c.WaitAppliedResult) and third.done
    # named: an unknown name waits; a gone worker drops out of the default set only
    named = ok(controlkit.run(ctl, c.WaitApplied(seq=3, workers=["a", "zz"]), now=1.2)[0])
    assert isinstance(named, c.WaitAppliedResult)
    assert [(w.name, w.state) for w in named.waiting] == [("zz", "unknown")]
    stream.publish("route", 9.0)
    # a, silent since, but its process lives: stalled, waited for; b (no credentials)
    # has missed its reports: gone
    stalled = ok(controlkit.run(ctl, c.WaitApplied(), now=9.0)[0])
    assert isinstance(stalled, c.WaitAppliedResult) and not stalled.done
    assert [(w.name, w.state) for w in stalled.waiting] == [("a", "stalled")]
    effects.dead.add(1)
    later = ok(controlkit.run(ctl, c.WaitApplied(), now=9.0)[0])
    # Nobody left to ask: not done (nothing can have applied it).
    assert isinstance(later, c.WaitAppliedResult) and not later.done
    assert later.workers == [] and later.waiting == []
    gone = ok(controlkit.run(ctl, c.WaitApplied(workers=["a"]), now=9.0)[0])
    assert isinstance(gone, c.WaitAppliedResult)
    assert [(w.name, w.state) for w in gone.waiting] == [("a", "gone")]


def test_wait_applied_refuses_a_future_seq_and_an_ended_epoch(tmp_path: Path) -> None:
    ctl, effects, _stream = controlkit.controller(tmp_path)
    assert refused(controlkit.run(ctl, c.WaitApplied(seq=1))[0]) == "invalid_value"
    assert refused(controlkit.run(ctl, c.WaitApplied(epoch=EPOCH + 1))[0]) == "invalid_value"
    nobody = ok(controlkit.run(ctl, c.WaitApplied())[0])
    assert isinstance(nobody, c.WaitAppliedResult) and not nobody.done
    # "now" is after the bridge has read what the kernel queued; a given seq needs no look
    assert effects.catch_ups == 1
    ok(controlkit.run(ctl, c.WaitApplied(seq=0))[0])
    assert effects.catch_ups == 1


def test_the_table_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wk, "MAX_WORKERS", 3)
    ctl, _effects, _stream = controlkit.controller(tmp_path)
    for i in range(3):
        ok(controlkit.run(ctl, report(f"w{i}", i + 1), now=float(i))[0])
    assert refused(controlkit.run(ctl, report("w9", 9), now=2.5)[0]) == "invalid_value"
    # once one is gone, the oldest gone makes room
    ok(controlkit.run(ctl, report("w9", 9), now=3.5)[0])
    assert sorted(ctl.workers.rows) == ["w1", "w2", "w9"]


def _wait(ctl: object, now: float, workers: list[str] | None = None) -> c.WaitAppliedResult:
    result = ok(controlkit.run(ctl, c.WaitApplied(workers=workers), now=now)[0])  # type: ignore[arg-type]
    assert isinstance(result, c.WaitAppliedResult)
    return result


def test_a_name_claimed_first_by_another_process_keeps_wait_from_done(tmp_path: Path) -> None:
    ctl, _effects, stream = controlkit.controller(tmp_path)
    _published(stream, 2)
    # A squatter takes the name first and claims to have applied everything.
    ok(controlkit.run(ctl, report("w1", 7, seq=2), wk.Peer(pid=666), now=0.0)[0])
    assert _wait(ctl, 0.0).done
    # The real worker is refused; until it stops trying, nobody can say it applied.
    assert refused(controlkit.run(ctl, report("w1", 1, seq=0), wk.Peer(pid=100), now=0.5)[0]) == (
        "permission_denied"
    )
    for names in (None, ["w1"]):
        result = _wait(ctl, 0.6, names)
        assert not result.done and ("w1", "refused") in [(w.name, w.state) for w in result.waiting]
    listed = ok(controlkit.run(ctl, c.ListWorkers(), now=0.6)[0])
    assert isinstance(listed, c.ListWorkersResult)
    assert [(w.name, w.pid) for w in listed.workers] == [("w1", 666)]  # the kernel's pid
    # Three of its intervals without a refused report: the squatter alone is waited for.
    ok(controlkit.run(ctl, report("w1", 7, seq=2), wk.Peer(pid=666), now=3.0)[0])
    assert _wait(ctl, 3.6).done


def test_a_full_table_and_a_pid_claiming_many_names_keep_wait_from_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wk, "MAX_WORKERS", 4)
    monkeypatch.setattr(wk, "MAX_NAMES_PER_PID", 2)
    ctl, _effects, stream = controlkit.controller(tmp_path)
    _published(stream, 1)
    ok(controlkit.run(ctl, report("f0", 1, seq=1), wk.Peer(pid=666), now=0.0)[0])
    ok(controlkit.run(ctl, report("f1", 2, seq=1), wk.Peer(pid=666), now=0.0)[0])
    assert refused(controlkit.run(ctl, report("f2", 3, seq=1), wk.Peer(pid=666), now=0.0)[0]) == (
        "invalid_value"
    )
    ok(controlkit.run(ctl, report("g0", 4, seq=1), wk.Peer(pid=667), now=0.0)[0])
    ok(controlkit.run(ctl, report("g1", 5, seq=1), wk.Peer(pid=667), now=0.0)[0])
    # The table is full: the real worker is refused, and waited for.
    assert refused(controlkit.run(ctl, report("real", 6, seq=0), wk.Peer(pid=1), now=0.1)[0]) == (
        "invalid_value"
    )
    result = _wait(ctl, 0.2)
    assert not result.done
    assert {(w.name, w.state) for w in result.waiting} == {("f2", "refused"), ("real", "refused")}
    assert "real" in result.workers  # what a client pins for its next polls
    # More refused names than the table keeps: the rest are waited for as one.
    for i in range(6):
        controlkit.run(ctl, report(f"x{i}", 10 + i, seq=0), wk.Peer(pid=2), now=0.3)
    assert wk.OTHERS_REFUSED in [w.name for w in _wait(ctl, 0.4, ["f0"]).waiting]


def test_a_report_beyond_the_bridges_position_is_refused(tmp_path: Path) -> None:
    ctl, _effects, stream = controlkit.controller(tmp_path)
    _published(stream, 5)
    reply = controlkit.run(ctl, report("w1", 1, seq=6), wk.Peer(pid=1), now=0.0)[0]
    assert refused(reply) == "invalid_value" and "w1" not in ctl.workers.rows
    # Of another epoch (a worker still on the previous bridge's): taken, and not current.
    ok(controlkit.run(ctl, report("w1", 1, seq=90, epoch=EPOCH - 1), wk.Peer(pid=1), now=0.0)[0])
    assert not _wait(ctl, 0.1).done


def test_text_that_reaches_terminals_has_no_control_characters() -> None:
    for bad in ("a\nw2  current", "\x1b[2J", "x\x7f"):
        with pytest.raises(ValueError):
            report(host=bad)
        with pytest.raises(ValueError):
            report(client=bad)
    assert report(host="büro-1", client="ifpx-c 0.3").host == "büro-1"


# ---- the subscriber's side --------------------------------------------------------


def _message(seq: int, topic: str = "route", epoch: int = EPOCH, tseq: int = 0) -> Message:
    e: ev.EventBase
    if topic == "hb":
        e = ev.Heartbeat(topic_seqs={"route": tseq}, interval=1.0)
    else:
        e = ev.RouteDel(dst="10.0.0.0", prefixlen=8, table=254, proto=4, metric=0)
    return Message(
        epoch=epoch, seq=seq, tseq=0 if topic == "hb" else seq, ts=0.0, topic=topic, events=[e]
    )


def test_marks_tell_what_was_taken_whole() -> None:
    q = EventQueue()
    q.mark(1, 3)
    assert q.delivered == (1, 3)  # nothing queued: at once
    q.extend([ev.CfgDone(), ev.CfgDone()])
    q.mark(1, 4)
    q.append(ev.CfgDone())
    q.mark(1, 5)
    assert len(q.take(1)) == 1 and q.delivered == (1, 3)
    assert len(q.take(1)) == 1 and q.delivered == (1, 3)  # taken, but not all of seq 4
    assert len(q.take(5)) == 1 and q.delivered == (1, 5) and q.empty


def _synced_machine(identity: Identity | None) -> SyncMachine:
    m = SyncMachine({"route", "port", "sync", "hb"}, identity=identity)
    [req] = m.start(0.0)
    snap = c.SnapshotResult(epoch=EPOCH, seq=0, topic_seqs={}, cfg_done=True, state=SnapshotState())
    assert not isinstance(req, SendReport)
    m.on_reply(c.OkReply(id=req.command.id, result=snap), 0.0)
    return m


def _reports(actions: list[object]) -> list[c.Report]:
    return [a.command for a in actions if isinstance(a, SendReport)]


def test_a_subscriber_reports_only_what_the_application_has_been_through() -> None:
    m = _synced_machine(Identity(name="w", instance=7, interval=1.0))
    m.take(100)
    m.applied_all_taken()
    [first] = _reports(m.tick(0.0))
    assert (first.worker, first.epoch, first.seq, first.synced) == ("w", EPOCH, 0, True)
    m.on_reply(c.OkReply(id=first.id, result=c.ReportResult(epoch=EPOCH, seq=0)), 0.0)
    m.on_message(_message(1), 0.1)
    m.on_message(_message(2), 0.1)
    assert _reports(m.tick(0.2)) == []  # taken by nobody yet: nothing new applied
    assert len(m.take(1)) == 1
    m.applied_all_taken()
    assert _reports(m.tick(0.3)) == []  # not idle: seq 2 still waits
    m.take(100)
    assert _reports(m.tick(0.3)) == []  # taken, but the application is still at it
    m.applied_all_taken()
    [idle] = _reports(m.tick(0.3))  # idle after the burst: reported at once
    assert idle.seq == 2
    m.on_reply(c.OkReply(id=idle.id, result=c.ReportResult(epoch=EPOCH, seq=2)), 0.3)
    assert _reports(m.tick(0.5)) == []
    # a heartbeat with nothing missing moves the position on; the interval reports it
    m.on_message(_message(9, "hb", tseq=2), 0.6)
    m.applied_all_taken()
    [beat] = _reports(m.tick(0.6))
    assert beat.seq == 9
    m.on_reply(c.OkReply(id=beat.id, result=c.ReportResult(epoch=EPOCH, seq=9)), 0.6)
    [periodic] = _reports(m.tick(1.7))
    assert periodic.seq == 9


def test_an_older_bridge_stops_the_reports_and_a_refusal_does_not() -> None:
    m = _synced_machine(Identity(name="w", instance=7, interval=0.1))
    m.take(100)
    m.applied_all_taken()
    [r] = _reports(m.tick(0.0))
    m.on_reply(
        c.ErrorReply(id=r.id, error=c.ErrorInfo(code=c.ErrorCode.PERMISSION_DENIED, message="x")),
        0.0,
    )
    [r] = _reports(m.tick(0.2))
    m.on_reply(
        c.ErrorReply(id=r.id, error=c.ErrorInfo(code=c.ErrorCode.UNKNOWN_COMMAND, message="?")),
        0.2,
    )
    assert _reports(m.tick(5.0)) == []
    assert _reports(_synced_machine(None).tick(5.0)) == []


def test_a_name_the_protocol_cannot_carry_is_refused_up_front(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ifpx.subscribers.subscriber import Subscriber, default_name

    for bad in ("two words", "x" * 65, "tab\there"):
        with pytest.raises(ValueError, match="worker name"):
            Subscriber("ipc:///nonexistent/ev", "ipc:///nonexistent/ctl", name=bad)
    with pytest.raises(ValueError, match="report_interval"):
        Subscriber("ipc:///nonexistent/ev", "ipc:///nonexistent/ctl", report_interval=0.001)
    monkeypatch.setenv("IFPX_WORKER_NAME", "fib 1")  # unusable: host:pid instead
    assert default_name().endswith(f":{os.getpid()}")
    monkeypatch.setenv("IFPX_WORKER_NAME", "fib-1")
    with Subscriber("ipc:///nonexistent/ev", "ipc:///nonexistent/ctl") as sub:
        assert sub.name == "fib-1"


def test_ctl_workers_escapes_what_an_older_bridge_passes_raw() -> None:
    from ifpx.subscribers.cli_ctl import _workers_table

    forged = c.WorkerInfo.model_construct(
        **{**c.WorkerInfo(name="w1", state="current").model_dump(), "host": "h\nw2  current\x1b[2J"}
    )
    table = _workers_table([forged])
    assert table.count("\n") == 1 and "\x1b" not in table
    assert "h\\x0aw2  current\\x1b[2J" in table


def test_an_inconsistent_event_is_not_delivered_and_a_snapshot_repairs() -> None:
    m = SyncMachine({"fib", "port", "sync", "hb"})
    [req] = m.start(0.0)
    snap = c.SnapshotResult(epoch=EPOCH, seq=0, topic_seqs={}, cfg_done=True, state=SnapshotState())
    m.on_reply(c.OkReply(id=req.command.id, result=snap), 0.0)
    m.take(100)
    bad = ev.GRouteAdd(table=254, proto=4, metric=0, group=9, dst="10.0.0.0", prefixlen=8)
    msg = Message(epoch=EPOCH, seq=1, tseq=1, ts=0.0, topic="fib", events=[bad])
    [repair] = m.on_message(msg, 0.1)
    assert isinstance(repair.command, c.Snapshot) and "group 9" in repair.reason
    assert m.stats.inconsistent == 1 and not m.state.groutes and m.take(100) == []
