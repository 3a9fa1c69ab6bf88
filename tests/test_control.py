"""The controller on its own, no root and no sockets: requests in, replies and events out."""

from __future__ import annotations

import itertools
import socket
from pathlib import Path

import controlkit
import pytest

from ifpx.bridge import nlmsg
from ifpx.bridge.control import HANDLERS, READ_ONLY, Controller
from ifpx.schemas import codec
from ifpx.schemas import commands as c


def test_every_command_has_exactly_one_handler() -> None:
    assert set(HANDLERS) == set(c.COMMAND_TYPES)
    assert set(READ_ONLY) <= set(HANDLERS)


def test_bind_returns_its_events_and_publishes_nothing_itself(tmp_path: Path) -> None:
    ctl, effects, stream = controlkit.controller(tmp_path)
    reply, events = controlkit.run(ctl, c.Bind(id=1, port_id=0, proxy="tap0"))
    assert isinstance(reply, c.OkReply) and reply.id == 1
    assert [e.kind for e in events] == ["port_bound", "mac_change", "mtu_change", "link_change"]
    assert stream.seq == 0  # the daemon publishes, not the controller
    assert effects.path.exists()
    again, events = controlkit.run(ctl, c.Bind(id=2, port_id=0, proxy="tap0"))
    assert isinstance(again, c.OkReply) and not again.result.changed  # type: ignore[union-attr]
    assert events == []
    moved, events = controlkit.run(ctl, c.Bind(id=3, port_id=0, proxy="tap1"))
    assert isinstance(moved, c.OkReply)
    assert [e.kind for e in events][:2] == ["port_unbound", "port_bound"]


def test_an_exclusive_bind_refuses_a_port_another_proxy_holds_and_changes_nothing(
    tmp_path: Path,
) -> None:
    ctl, _effects, _stream = controlkit.controller(tmp_path)
    controlkit.run(ctl, c.Bind(port_id=0, proxy="tap0"))
    reply, events = controlkit.run(ctl, c.Bind(port_id=0, proxy="tap1", exclusive=True))
    assert isinstance(reply, c.ErrorReply) and reply.error.code == c.ErrorCode.ALREADY_EXISTS
    assert "tap0" in reply.error.message and events == []
    assert ctl.core.bindings.get(0).proxy == "tap0"  # type: ignore[union-attr]
    # Its own binding again: idempotent; a free port: bound.
    again, events = controlkit.run(ctl, c.Bind(port_id=0, proxy="tap0", exclusive=True))
    assert isinstance(again, c.OkReply) and events == []
    free, events = controlkit.run(ctl, c.Bind(port_id=1, proxy="tap1", exclusive=True))
    assert isinstance(free, c.OkReply) and free.result.changed  # type: ignore[union-attr]
    # A proxy that is gone holds nothing: its port is taken.
    ctl.core.apply(nlmsg.Link(True, 2, "tap0", 1500, "02:00:00:00:00:01", False, False))
    taken, events = controlkit.run(ctl, c.Bind(port_id=0, proxy="tap1", exclusive=True))
    assert isinstance(taken, c.OkReply) and taken.result.binding.proxy == "tap1"  # type: ignore[union-attr]


def test_unbind_only_from_the_named_proxy(tmp_path: Path) -> None:
    ctl, _effects, _stream = controlkit.controller(tmp_path)
    controlkit.run(ctl, c.Bind(port_id=0, proxy="tap0"))
    reply, events = controlkit.run(ctl, c.Unbind(port_id=0, proxy="tap1"))
    assert isinstance(reply, c.OkReply) and reply.result.removed == []  # type: ignore[union-attr]
    assert events == []
    reply, events = controlkit.run(ctl, c.Unbind(port_id=0, proxy="tap0"))
    assert [b.port_id for b in reply.result.removed] == [0]  # type: ignore[union-attr]
    assert [e.kind for e in events] == ["port_unbound"]


def test_destroy_proxy_refuses_what_is_no_tap_and_keeps_its_bindings(tmp_path: Path) -> None:
    ctl, effects, _stream = controlkit.controller(tmp_path)
    controlkit.run(ctl, c.Bind(port_id=0, proxy="tap0"))
    effects.taps.discard("tap0")
    reply, events = controlkit.run(ctl, c.DestroyProxy(name="tap0"))
    assert isinstance(reply, c.ErrorReply) and reply.error.code == c.ErrorCode.INVALID_VALUE
    assert events == [] and effects.destroyed == []
    assert [e.port_id for e in ctl.core.bindings.entries()] == [0]
    effects.taps.add("tap0")
    # A tap ifpx did not make (net_tap's, or one made by hand) goes only when forced.
    reply, events = controlkit.run(ctl, c.DestroyProxy(name="tap0"))
    assert isinstance(reply, c.ErrorReply) and "not made by ifpx" in reply.error.message
    assert events == [] and effects.destroyed == []
    reply, events = controlkit.run(ctl, c.DestroyProxy(name="tap0", force=True))
    assert isinstance(reply, c.OkReply) and effects.destroyed == ["tap0"]
    assert [e.kind for e in events] == ["port_unbound"]


def test_bind_says_when_it_moved_the_port(tmp_path: Path) -> None:
    ctl, _effects, _stream = controlkit.controller(tmp_path)
    reply, _ = controlkit.run(ctl, c.Bind(port_id=0, proxy="tap0"))
    assert isinstance(reply, c.OkReply) and isinstance(reply.result, c.BindResult)
    assert reply.result.moved_from is None
    reply, events = controlkit.run(ctl, c.Bind(port_id=0, proxy="tap1"))
    assert isinstance(reply, c.OkReply) and isinstance(reply.result, c.BindResult)
    assert reply.result.moved_from == "tap0" and events[0].kind == "port_unbound"
    reply, _ = controlkit.run(ctl, c.Bind(port_id=0, proxy="tap1"))
    assert isinstance(reply, c.OkReply) and isinstance(reply.result, c.BindResult)
    assert reply.result.moved_from is None and not reply.result.changed


def test_status_reports_the_stats_it_is_given(tmp_path: Path) -> None:
    ctl, _effects, _stream = controlkit.controller(tmp_path)
    ctl.stats_now = lambda: controlkit.zero_stats(
        epoch=77, seq=12, compensations=3, bindings=2, journal_bytes=4096
    )
    reply, _ = controlkit.run(ctl, c.Status())
    assert isinstance(reply, c.OkReply) and isinstance(reply.result, c.StatusResult)
    assert (reply.result.epoch, reply.result.seq, reply.result.bindings) == (77, 12, 2)
    assert reply.result.counters["compensations"] == 3 and reply.result.uptime == 1.5
    # What the journal holds, beside its capacity: a bench tells it from the mirror's share.
    assert reply.result.counters["journal_bytes"] == 4096


def test_commands_are_counted_by_result(tmp_path: Path) -> None:
    ctl, _effects, _stream = controlkit.controller(tmp_path)
    controlkit.run(ctl, c.Bind(port_id=0, proxy="tap0"))
    controlkit.run(ctl, c.ProxyOfPort(port_id=9))
    controlkit.ask(ctl, b"\xc1")
    assert (ctl.stats.ok, ctl.stats.errors) == (1, 2)
    assert ctl.stats.by_result[("proxy_of_port", "not_bound")] == 1
    assert ctl.stats.by_result[("invalid", "bad_request")] == 1


@pytest.mark.parametrize("read_only", [False, True])
def test_replay_answers_from_the_journal_or_says_gap(tmp_path: Path, read_only: bool) -> None:
    ctl, _effects, stream = controlkit.controller(tmp_path)
    for seq in (1, 2, 3):
        stream.journal.append(seq, "link", f"payload-{seq}".encode())
    stream.seq = 3
    payload = codec.encode_request(c.Replay(epoch=5, from_seq=1, topics=["link"]))
    reply = controlkit.ask(ctl, payload, read_only)
    assert isinstance(reply, c.OkReply) and isinstance(reply.result, c.ReplayResult)
    assert reply.result.messages == [b"payload-2", b"payload-3"]
    old = controlkit.ask(ctl, codec.encode_request(c.Replay(epoch=4, from_seq=1)), read_only)
    assert isinstance(old, c.ErrorReply) and old.error.code == c.ErrorCode.JOURNAL_GAP


def test_read_only_refuses_every_change(tmp_path: Path) -> None:
    ctl, effects, _stream = controlkit.controller(tmp_path)
    for cmd in (
        c.Bind(port_id=0, proxy="tap0"),
        c.Unbind(port_id=0),
        c.CreateProxy(name="tap9"),
        c.DestroyProxy(name="tap1"),
    ):
        reply = controlkit.ask(ctl, codec.encode_request(cmd), read_only=True)
        assert isinstance(reply, c.ErrorReply)
        assert reply.error.code == c.ErrorCode.PERMISSION_DENIED
    assert ctl.core.bindings.entries() == [] and effects.destroyed == []
    assert not effects.path.exists()


def test_create_proxy_refuses_a_name_an_interface_that_is_no_tap_has(tmp_path: Path) -> None:
    ctl, effects, _stream = controlkit.controller(tmp_path)
    effects.taps.discard("tap1")  # tap1 exists in the mirror, as something else
    reply, _ = controlkit.run(ctl, c.CreateProxy(name="tap1"))
    assert isinstance(reply, c.ErrorReply) and reply.error.code == c.ErrorCode.ALREADY_EXISTS
    reply, _ = controlkit.run(ctl, c.CreateProxy(name="px0"))
    assert isinstance(reply, c.OkReply) and "px0" in effects.taps


def test_a_server_refuses_what_it_has_no_handler_for_and_knows_every_command() -> None:
    from ifpx.schemas.serving import Server

    server = Server({"status": lambda _cmd: c.EventsAvailableResult(kinds=[])}, unsupported="no")
    reply = codec.decode_reply(server.answer([codec.encode_request(c.Bind(port_id=0, proxy="x"))]))
    assert isinstance(reply, c.ErrorReply) and reply.error.code == c.ErrorCode.NOT_SUPPORTED
    assert server.stats.by_result == {("bind", "not_supported"): 1}
    with pytest.raises(ValueError, match="do not exist"):
        Server({"reboot": lambda _cmd: c.EventsAvailableResult(kinds=[])})


def _route(dst: str) -> nlmsg.Route:
    return nlmsg.Route(False, socket.AF_INET, 254, dst, 16, 0, 4, 1, 0, 0, (("10.0.0.2", 2, 1, 0),))


def test_a_snapshot_of_the_same_state_is_built_once(tmp_path: Path) -> None:
    ctl, _effects, stream = controlkit.controller(tmp_path)
    ctl.core.apply(_route("10.1.0.0"))
    first, _ = ctl.handle_frames([codec.encode_request(c.Snapshot(id=1))], now=10.0)
    second, _ = ctl.handle_frames([codec.encode_request(c.Snapshot(id=2))], now=14.0)
    assert ctl.snapshots_built == 1
    one, two = codec.decode_reply(first), codec.decode_reply(second)
    assert isinstance(one, c.OkReply) and isinstance(two, c.OkReply)
    assert (one.id, two.id) == (1, 2) and one.result == two.result
    # The same bytes as the reply built and encoded the ordinary way.
    assert second == codec.encode_reply(c.OkReply(id=2, result=two.result))
    # Kept a while only: a million routes are 20 MB packed.
    ctl.expire(14.9)
    _asked(ctl, 14.95)
    assert ctl.snapshots_built == 1
    ctl.expire(15.1)
    _asked(ctl, 15.1)
    assert ctl.snapshots_built == 2
    # Anything the snapshot could show otherwise builds it again: a kernel change
    # (published or not: with no route subscriber, routes change without a message),
    # a binding, a message published.
    ctl.core.apply(_route("10.2.0.0"))  # through tap0, bound to no port: not published
    assert _asked(ctl, 15.2).state.routes.rows == [] and ctl.snapshots_built == 3
    controlkit.run(ctl, c.Bind(port_id=0, proxy="tap0"), now=15.3)
    routes = _asked(ctl, 15.4).state.expand().routes
    assert [r.dst for r in routes] == ["10.1.0.0/16", "10.2.0.0/16"]
    assert ctl.snapshots_built == 4
    stream.publish("route", 15.5)
    assert _asked(ctl, 15.6).seq == stream.seq and ctl.snapshots_built == 5
    _asked(ctl, 15.7)
    assert ctl.snapshots_built == 5


def _asked(ctl: Controller, now: float) -> c.SnapshotResult:
    reply = controlkit.ask(ctl, codec.encode_request(c.Snapshot(id=3)), now=now)
    assert isinstance(reply, c.OkReply) and isinstance(reply.result, c.SnapshotResult)
    return reply.result


def test_snapshot_builds_under_churn_take_at_most_a_quarter_of_the_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctl, _effects, stream = controlkit.controller(tmp_path)
    clock = [100.0]
    costs = itertools.chain([0.4, 0.4], itertools.repeat(0.001))
    ctl.clock = lambda: clock[0]
    pack = codec.pack_snapshot

    def slow_pack(result: c.SnapshotResult) -> bytes:
        clock[0] += next(costs)  # each build "takes" the next cost
        return pack(result)

    monkeypatch.setattr(codec, "pack_snapshot", slow_pack)
    assert _asked(ctl, 1.0).seq == stream.seq and ctl.snapshots_built == 1
    stream.publish("route", 1.1)  # churn: the kept snapshot is stale
    reply = controlkit.ask(ctl, codec.encode_request(c.Snapshot(id=4)), now=1.2)
    assert isinstance(reply, c.ErrorReply) and reply.error.code == c.ErrorCode.BUSY
    assert "ask again in 1.10 s" in reply.error.message and ctl.snapshots_refused == 1
    clock[0] += 1.25  # three times the build's 0.4 s later: built again
    assert _asked(ctl, 2.0).seq == stream.seq and ctl.snapshots_built == 2
    clock[0] += 1.25
    # Quick builds, each of a new state (churn), back to back: a burst of them is built
    # at once (workers starting together), then they get their share too.
    built = ctl.snapshots_built
    for i in range(100):
        stream.publish("route", 3.0 + i / 1000)
        reply = controlkit.ask(ctl, codec.encode_request(c.Snapshot(id=5)), now=3.0 + i / 1000)
        if isinstance(reply, c.ErrorReply):
            assert reply.error.code == c.ErrorCode.BUSY
            break
    assert 25 <= ctl.snapshots_built - built <= 40 and ctl.snapshots_refused == 2
    # While the kernel's messages queue up, a tenth of the time: fewer in a burst.
    clock[0] += 1.0
    ctl.behind = True
    built = ctl.snapshots_built
    for i in range(100):
        stream.publish("route", 5.0 + i / 1000)
        reply = controlkit.ask(ctl, codec.encode_request(c.Snapshot(id=6)), now=5.0 + i / 1000)
        if isinstance(reply, c.ErrorReply):
            break
    assert 8 <= ctl.snapshots_built - built <= 14
