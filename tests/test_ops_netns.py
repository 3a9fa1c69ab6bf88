"""Ops tooling against a live bridge: ifpx ctl, watch, snapshot, record, replay, recording."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from netutil import free_port, ifpx, mtu_reaches, scrape, wait_bridge_equals_kernel

from ifpx.bridge.testing.harness import BridgeProcess, Netns, wait_for
from ifpx.schemas import commands as c
from ifpx.schemas.state import State
from ifpx.schemas.topics import RouteForm
from ifpx.subscribers import Subscriber
from ifpx.subscribers.client import BridgeError, ControlClient
from ifpx.subscribers.recording import RecordingError, records, verify

pytestmark = pytest.mark.netns


def test_ctl_every_subcommand(ns: Netns, br: BridgeProcess) -> None:
    ok = ifpx(br, "ctl", "--json", "bind", "0", "tap0")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["binding"]["proxy"] == "tap0"
    again = ifpx(br, "ctl", "bind", "0", "tap0")
    assert again.returncode == 0 and "already bound" in again.stdout
    assert ifpx(br, "ctl", "bind", "1", "tap0").returncode == 0
    listing = ifpx(br, "ctl", "list")
    assert listing.returncode == 0 and "PORT" in listing.stdout and "tap0" in listing.stdout
    info = json.loads(ifpx(br, "ctl", "--json", "info", "tap0").stdout)
    assert info["port_ids"] == [0, 1] and info["name"] == "tap0"
    port = json.loads(ifpx(br, "ctl", "--json", "port", "1").stdout)
    assert port["binding"]["proxy"] == "tap0"
    ports = json.loads(ifpx(br, "ctl", "--json", "ports", "tap0").stdout)
    assert ports["port_ids"] == [0, 1]
    # In words as its siblings are, not JSON unless asked for.
    text = ifpx(br, "ctl", "ports", "tap0").stdout
    assert re.fullmatch(r"tap0 \(ifindex \d+\): ports 0, 1\n", text), text
    hello = ifpx(br, "ctl", "hello").stdout
    assert re.search(r"protocol v1\.\d+ epoch \d+", hello) and "capabilities: " in hello
    status = json.loads(ifpx(br, "ctl", "--json", "status").stdout)
    assert status["bindings"] == 2 and status["netns"] == ns.name
    kinds = ifpx(br, "ctl", "events-available").stdout.split()
    assert "mtu_change" in kinds and "neigh6_del" in kinds and "cfg_done" in kinds
    made = ifpx(br, "ctl", "create-proxy", "px7", "--mtu", "1500")
    assert made.returncode == 0 and "created" in made.stdout
    assert ifpx(br, "ctl", "bind", "7", "px7").returncode == 0
    moved = ifpx(br, "ctl", "bind", "7", "tap0")
    assert moved.returncode == 0 and "moved from px7" in moved.stdout
    assert ifpx(br, "ctl", "bind", "7", "px7").returncode == 0
    refused = ifpx(br, "ctl", "destroy-proxy", "tap1")  # not made by ifpx
    assert refused.returncode == 1 and "not made by ifpx" in refused.stderr
    gone = ifpx(br, "ctl", "destroy-proxy", "px7")
    assert gone.returncode == 0 and "1 bindings removed" in gone.stdout
    unbound = ifpx(br, "ctl", "unbind", "1")
    assert unbound.returncode == 0 and "unbound" in unbound.stdout
    assert "nothing to unbind" in ifpx(br, "ctl", "unbind", "1").stdout
    hello = ifpx(br, "ctl", "hello")
    assert "protocol v1" in hello.stdout


def test_the_control_client_binds_and_makes_proxies_as_ctl_does(
    ns: Netns, br: BridgeProcess
) -> None:
    with ControlClient(br.control) as client:
        made = client.create_proxy("px9", mtu=1400)
        assert made.created and made.name == "px9"
        assert "mtu 1400" in ns.cmd("link show px9")
        bound = client.bind(3, "px9")
        assert bound.changed and bound.binding.ifindex == made.ifindex
        assert not client.bind(3, "px9").changed  # idempotent
        assert [b.port_id for b in client.unbind(3).removed] == [3]
        assert client.unbind(3).removed == []
        client.bind(4, made.ifindex)
        gone = client.destroy_proxy("px9")
        assert [b.port_id for b in gone.removed_bindings] == [4]
        with pytest.raises(BridgeError) as refused:
            client.bind(5, "no-such-tap")
        assert refused.value.code is not None


def test_ctl_error_paths(br: BridgeProcess, tmp_path: Path) -> None:
    missing = ifpx(br, "ctl", "bind", "0", "nope0")
    assert missing.returncode == 1 and "no_such_proxy" in missing.stderr
    notbound = ifpx(br, "ctl", "port", "9")
    assert notbound.returncode == 1 and "not_bound" in notbound.stderr
    bad_port = ifpx(br, "ctl", "bind", "70000", "tap0")
    assert bad_port.returncode == 2 and "out of range" in bad_port.stderr
    t0 = time.monotonic()
    down = ifpx(
        None, "ctl", "--timeout", "0.3", "--retries", "1", "status",
        control=f"ipc://{tmp_path}/nobody.sock",
    )  # fmt: skip
    assert down.returncode == 3 and "not reachable" in down.stderr
    assert time.monotonic() - t0 < 10


def test_watch_and_snapshot(ns: Netns, br: BridgeProcess, tmp_path: Path) -> None:
    br.result(c.Bind(port_id=0, proxy="tap0"))
    log = tmp_path / "watch.err"
    with log.open("w") as err:
        watch = subprocess.Popen(
            [sys.executable, "-m", "ifpx.subscribers", "watch", "--json", "--no-snapshot",
             "--kind", "mtu_change", "--count", "1",
             "--events", br.events, "--control", br.control],
            stdout=subprocess.PIPE, stderr=err, text=True,
        )  # fmt: skip
    try:
        wait_for(lambda: "# synced" in log.read_text(), 10, what="the watcher to sync")
        ns.ip("link", "set", "tap0", "mtu", "1420")
        out, _ = watch.communicate(timeout=20)
    finally:
        watch.kill()
    line = json.loads(out.strip().splitlines()[-1])
    assert line["kind"] == "mtu_change" and line["mtu"] == 1420 and line["port_id"] == 0
    snap = ifpx(br, "snapshot", "--json")
    doc = json.loads(snap.stdout)
    assert {"epoch", "seq", "bindings", "ports", "routes", "neighs"} <= set(doc)
    assert doc["ports"]["0"]["mtu"] == 1420 and doc["bindings"][0]["proxy"] == "tap0"
    human = ifpx(br, "snapshot")
    assert "port 0 tap0: mac" in human.stdout


def _record_session(
    ns: Netns, br: BridgeProcess, path: Path, routes: RouteForm = "flat"
) -> Subscriber:
    """Record (routes in form ``routes``) while making changes; return a live subscriber
    of that form that followed along."""
    br.result(c.Bind(port_id=0, proxy="tap0"))
    br.result(c.Bind(port_id=1, proxy="tap1"))
    live = Subscriber(br.events, br.control, routes=routes)
    live.sync(timeout=5)
    rec = subprocess.Popen(
        [sys.executable, "-m", "ifpx.subscribers", "record", str(path), "--duration", "30",
         "--events", br.events, "--control", br.control, "--routes", routes],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: path.exists() and path.stat().st_size > 100, 10, what="the recorder")
        for step in [
            "link set tap0 up", "link set tap1 up", "addr add 10.0.0.1/24 dev tap0",
            "link set tap0 mtu 1400", "addr add 10.1.0.1/24 dev tap1",
            "route add 10.50.0.0/16 nexthop via 10.0.0.2 dev tap0 nexthop via 10.1.0.2 dev tap1",
            "neigh add 10.0.0.2 lladdr 02:00:00:00:00:02 dev tap0", "link set tap1 down",
        ]:  # fmt: skip
            ns.cmd(step)
        want = wait_bridge_equals_kernel(br)
        wait_for(
            lambda: live.poll(10_000, 0.05) is not None and live.state.to_state() == want,
            10,
            what="the live subscriber",
        )
        # The recorder has everything once the file stops growing past the last message.
        wait_for(lambda: _recorded_seq(path) >= br.snapshot().seq, 10, what="the recording")
    finally:
        rec.terminate()
        _, err = rec.communicate(timeout=10)
    assert rec.returncode == 0, err
    return live


def _recorded_seq(path: Path) -> int:
    from ifpx.schemas import codec
    from ifpx.subscribers.recording import read_header

    seq = 0
    with path.open("rb") as fh:
        read_header(fh)
        try:
            for r in records(fh):
                if r.type == "message":
                    seq = codec.decode_message([r.topic.encode(), r.payload]).seq
        except RecordingError:
            pass  # the record being written right now
    return seq


def test_record_then_replay_into_a_fresh_subscriber(
    ns: Netns, br: BridgeProcess, tmp_path: Path
) -> None:
    path = tmp_path / "session.ifpxrec"
    live = _record_session(ns, br, path)
    live_state = live.state.to_state()
    live.close()
    with path.open("rb") as fh:
        assert verify(fh) >= 9
    shown = ifpx(None, "recording", "show", str(path))
    assert shown.returncode == 0 and "mtu 1400" in shown.stdout and "snapshot" in shown.stdout

    def refuses_bind(_sub: Subscriber, control: str) -> None:
        assert sub_client_refuses_bind(control) == c.ErrorCode.NOT_SUPPORTED

    err = _replayed(path, tmp_path, live_state, "1", check=refuses_bind)
    assert "replayed" in err and "lateness p50" in err
    print(err.strip())


def _replayed(
    path: Path,
    tmp_path: Path,
    want: State,
    speed: str,
    routes: RouteForm = "flat",
    check: Callable[[Subscriber, str], None] | None = None,
) -> str:
    """``ifpx replay`` of ``path`` into a fresh subscriber taking routes in form ``routes``,
    until its replica is ``want``; then ``check`` (the subscriber, the replay's control
    endpoint). Returns what the player wrote on stderr."""
    events, control = f"ipc://{tmp_path}/r-ev.sock", f"ipc://{tmp_path}/r-ctl.sock"
    player = subprocess.Popen(
        [sys.executable, "-m", "ifpx.subscribers", "replay", str(path), "--speed", speed,
         "--linger", "3", "--events", events, "--control", control],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with Subscriber(events, control, routes=routes) as sub:
            sub.sync(timeout=10)
            wait_for(
                lambda: sub.poll(10_000, 0.05) is not None and sub.state.to_state() == want,
                15,
                what="the replayed replica to equal the live one",
            )
            if check is not None:
                check(sub, control)
        _, err = player.communicate(timeout=30)
    finally:
        player.kill()
    assert player.returncode == 0, err
    return err


def test_a_recording_of_routes_by_group_replays_into_group_form_workers(
    ns: Netns, br: BridgeProcess, tmp_path: Path
) -> None:
    # The DPDK example takes routes by next-hop group: a post-mortem must replay that form.
    path = tmp_path / "groups.ifpxrec"
    live = _record_session(ns, br, path, routes="group")
    live_state = live.state.to_state()
    assert live.state.groutes and not live.state.routes
    live.close()
    shown = ifpx(None, "recording", "show", str(path))
    routes = [line for line in shown.stdout.splitlines() if " route add " in line]
    assert routes and all(" nhgroup " in line for line in routes), shown.stdout

    def forwards_by_group(sub: Subscriber, _control: str) -> None:
        assert sub.state.groups and sub.state.lookup("10.50.1.1") is not None

    _replayed(path, tmp_path, live_state, "4", routes="group", check=forwards_by_group)


def sub_client_refuses_bind(control: str) -> c.ErrorCode:
    from ifpx.subscribers import BridgeError, ControlClient

    with ControlClient(control, timeout=5) as client:
        try:
            client.request(c.Bind(port_id=0, proxy="tap0"))
        except BridgeError as exc:
            return exc.code
    raise AssertionError("a replay accepted a bind")


def test_corrupt_and_truncated_recordings(ns: Netns, br: BridgeProcess, tmp_path: Path) -> None:
    path = tmp_path / "good.ifpxrec"
    _record_session(ns, br, path).close()
    data = path.read_bytes()
    with path.open("rb") as fh:
        from ifpx.subscribers.recording import read_header

        read_header(fh)
        recs = list(records(fh))
    victim = recs[3]
    corrupt = bytearray(data)
    corrupt[victim.offset + 12] ^= 0xFF
    bad = tmp_path / "corrupt.ifpxrec"
    bad.write_bytes(bytes(corrupt))
    out = ifpx(None, "recording", "verify", str(bad))
    assert out.returncode == 1
    assert f"record 3 at offset {victim.offset}" in out.stderr and "checksum" in out.stderr
    short = tmp_path / "truncated.ifpxrec"
    short.write_bytes(data[: recs[-1].offset + 5])
    out = ifpx(None, "recording", "verify", str(short))
    assert out.returncode == 1 and f"record {len(recs) - 1}" in out.stderr
    replay = ifpx(
        None, "replay", str(bad), "--max", "--linger", "0",
        "--events", f"ipc://{tmp_path}/x-ev.sock", "--control", f"ipc://{tmp_path}/x-ctl.sock",
    )  # fmt: skip
    assert replay.returncode == 1 and "record 3" in replay.stderr
    assert ifpx(None, "recording", "verify", str(path)).returncode == 0


def test_metrics_are_scraped(ns: Netns) -> None:
    from ifpx.bridge.testing.harness import bridge

    port = free_port()
    with bridge(ns, ["--metrics", f"127.0.0.1:{port}"]) as br:
        br.result(c.Bind(port_id=0, proxy="tap0"))
        ns.ip("link", "set", "tap0", "mtu", "1300")
        br.request(c.ProxyOfPort(port_id=9))  # an error, counted by its code
        wait_for(lambda: 'ifpx_events_published_total{kind="mtu_change"}' in scrape(port), 10)
        text = scrape(port)
    assert 'ifpx_commands_total{cmd="bind",result="ok"} 1.0' in text
    assert 'ifpx_commands_total{cmd="proxy_of_port",result="not_bound"} 1.0' in text
    names = ["ifpx_netlink_overruns_total", "ifpx_resyncs_total", "ifpx_epoch", "ifpx_sequence"]
    names += ["ifpx_compensations_total", "ifpx_resync_seconds_total"]
    for name in names:
        assert name in text


def test_replay_refuses_the_endpoints_of_a_live_bridge(
    ns: Netns, br: BridgeProcess, tmp_path: Path
) -> None:
    path = tmp_path / "session.ifpxrec"
    _record_session(ns, br, path).close()
    proc = ifpx(None, "replay", str(path), "--max", "--events", br.events, "--control", br.control)
    assert proc.returncode == 2, proc.stderr
    assert "belongs to a running bridge" in proc.stderr and "Traceback" not in proc.stderr
    # The bridge still owns both sockets: a subscriber syncs and follows a change.
    with Subscriber(br.events, br.control) as sub:
        mtu_reaches(sub, ns, 0, "tap0", 1280, "the live bridge's event after the refused replay")


def test_watch_prints_only_the_kinds_and_ports_asked_for(ns: Netns, br: BridgeProcess) -> None:
    br.result(c.Bind(port_id=0, proxy="tap0"))
    br.result(c.Bind(port_id=1, proxy="tap1"))
    for dev, net in (("tap0", "192.0.2"), ("tap1", "198.51.100")):
        ns.ip("link", "set", dev, "up", "mtu", "1450")
        ns.ip("addr", "add", f"{net}.1/24", "dev", dev)
    ns.ip("route", "add", "10.60.0.0/16", "via", "192.0.2.2")
    ns.ip("route", "add", "10.61.0.0/16", "via", "198.51.100.2")
    wait_bridge_equals_kernel(br)
    shown = ifpx(br, "watch", "--kind", "route_add", "--port", "1", "--count", "2", timeout=30)
    lines = shown.stdout.splitlines()
    assert shown.returncode == 0, shown.stderr
    assert all("route add" in line and "port 1" in line for line in lines), lines
    assert any("10.61.0.0/16" in line for line in lines)
    assert not any("mtu" in line or "port 0" in line for line in lines)


def test_watch_says_when_the_bridge_goes_silent_and_when_it_restarted(
    ns: Netns, br: BridgeProcess, tmp_path: Path
) -> None:
    err_log, out_log = tmp_path / "watch.err", tmp_path / "watch.out"
    with err_log.open("w") as err, out_log.open("w") as out:
        watch = subprocess.Popen(
            [sys.executable, "-m", "ifpx.subscribers", "watch", "--no-snapshot",
             "--events", br.events, "--control", br.control],
            stdout=out, stderr=err, text=True,
        )  # fmt: skip
    try:
        wait_for(lambda: "# synced" in err_log.read_text(), 10, what="the watcher to sync")
        assert br.proc is not None
        br.proc.send_signal(signal.SIGKILL)
        br.proc.wait(10)
        wait_for(
            lambda: "# no heartbeat from the bridge" in err_log.read_text(),
            15,
            what="the watcher to say the bridge went silent",
        )
        br.start()
        wait_for(
            lambda: "resync end (bridge restarted (new epoch))" in out_log.read_text(),
            20,
            what="the watcher to say the bridge restarted",
        )
        assert "heartbeats missed" not in out_log.read_text()
    finally:
        watch.kill()
        watch.wait(10)
