"""``ifpx record``, ``ifpx replay`` and ``ifpx recording``: streams kept and served again."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from ifpx.schemas import codec
from ifpx.schemas import commands as c
from ifpx.schemas.instance import InstanceLocked

from . import fmt
from .clibase import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    failed,
    saying,
    snapshot_json,
)
from .client import ClientError


def _stop_on_signals(stop: Callable[[], None]) -> None:
    def _handler(_signum: int, _frame: object) -> None:
        stop()

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)


def record(ns: argparse.Namespace) -> int:
    """Run ``ifpx record``."""
    from .recorder import Recorder

    rec = Recorder(
        Path(ns.file),
        ns.events,
        ns.control,
        kinds=set(ns.kind) if ns.kind else None,
        timeout=ns.timeout,
        curve=ns.curve,
        routes=ns.routes,
        on_retry=saying("ifpx record"),
    )
    _stop_on_signals(rec.stop)
    try:
        stats = rec.run(count=ns.count, duration=ns.duration)
    except ClientError as exc:
        return failed("ifpx record", exc)
    print(
        f"recorded {stats.messages} messages and {stats.snapshots} snapshots in "
        f"{stats.seconds:.1f}s to {ns.file}" + (f"; {stats.gaps} gaps" if stats.gaps else ""),
        file=sys.stderr,
    )
    return EXIT_OK


def replay(ns: argparse.Namespace) -> int:
    """Run ``ifpx replay``."""
    from .recording import RecordingError
    from .replayer import Replayer

    try:
        player = Replayer(
            Path(ns.file),
            ns.events,
            ns.control,
            speed=ns.speed,
            as_fast_as_possible=ns.max,
            loop=ns.loop,
            linger=ns.linger,
        )
    except InstanceLocked as exc:
        print(f"ifpx replay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, zmq.ZMQError) as exc:
        print(f"ifpx replay: cannot serve {ns.events} and {ns.control}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _stop_on_signals(player.stop)
    try:
        stats = player.run()
    except (RecordingError, OSError) as exc:
        print(f"ifpx replay: {exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        player.close()
    late = sorted(stats.lateness)
    if late:
        p50 = late[len(late) // 2] * 1e3
        p99 = late[min(len(late) - 1, int(len(late) * 0.99))] * 1e3
        timing = f"; lateness p50 {p50:.2f} ms, p99 {p99:.2f} ms"
    else:
        timing = ""
    print(f"replayed {stats.published} messages, {stats.loops} loop(s){timing}", file=sys.stderr)
    return EXIT_OK


def recording(ns: argparse.Namespace) -> int:
    """Run ``ifpx recording``."""

    from .recording import RecordingError, read_header, records, verify

    try:
        with open(ns.file, "rb") as fh:
            if ns.action == "verify":
                count = verify(fh)
                print(f"{ns.file}: OK, {count} records")
                return EXIT_OK
            header = read_header(fh)
            if ns.json:
                print(json.dumps({"header": header}))
            else:
                print(f"recording format {header['format']}, topics {header.get('topics')}")
            t0 = None
            for rec in records(fh):
                t0 = rec.time if t0 is None else t0
                if rec.type == "snapshot":
                    reply = codec.decode_reply(rec.payload)
                    assert isinstance(reply, c.OkReply)
                    assert isinstance(reply.result, c.SnapshotResult)
                    snap = reply.result
                    doc: dict[str, Any] = {"index": rec.index, "time": rec.time, "type": "snapshot"}
                    doc.update(snapshot_json(snap))
                    if ns.json:
                        print(json.dumps(doc))
                    else:
                        state = snap.state
                        print(
                            f"#{rec.index} +{rec.time - t0:.3f}s snapshot epoch {snap.epoch} "
                            f"seq {snap.seq}: {len(state.bindings)} bindings, "
                            f"{len(state.routes.rows)} routes, {len(state.neighs)} neighbours"
                        )
                    continue
                msg = codec.decode_message([rec.topic.encode(), rec.payload])
                if ns.json:
                    print(
                        json.dumps(
                            {"index": rec.index, "time": rec.time, "message": msg.model_dump()}
                        )
                    )
                else:
                    for e in msg.events:
                        print(f"#{rec.index} +{rec.time - t0:.3f}s seq {msg.seq} {fmt.describe(e)}")
    except (RecordingError, codec.CodecError) as exc:
        print(f"ifpx recording: {ns.file}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    # An unreadable file and a reader gone away (`| head`) are the command line's to say.
    return EXIT_OK
