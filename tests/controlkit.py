"""A controller without a kernel or sockets: its effects, stream and counters as plain objects."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ifpx.bridge import nlmsg, statefile
from ifpx.bridge.bindings import BindingTable
from ifpx.bridge.control import Controller
from ifpx.bridge.core import BridgeCore
from ifpx.bridge.stats import BridgeStats
from ifpx.bridge.workers import Peer
from ifpx.schemas import codec
from ifpx.schemas import commands as c
from ifpx.schemas.events import EventBase
from ifpx.schemas.journal import Journal


class Effects:
    """Persist writes a real file (or fails as told); taps are remembered, not made."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fail: OSError | None = None
        self.taps = {"tap0", "tap1"}
        self.made: set[str] = set()
        self.destroyed: list[str] = []
        self.dead: set[int] = set()
        self.starts: dict[int, int] = {}
        """Start times of processes a test says were given a pid again (others: 1)."""
        self.catch_ups = 0

    def persist(self, table: BindingTable) -> None:
        if self.fail is not None:
            raise self.fail
        statefile.save(self.path, table, 1)

    def refresh_links(self) -> list[EventBase]:
        return []

    def create_tap(self, name: str, mac: str | None, mtu: int | None) -> tuple[int, bool]:
        created = name not in self.taps
        self.taps.add(name)
        if created:
            self.made.add(name)
        return 9, created

    def is_tap(self, name: str) -> bool:
        return name in self.taps

    def made_by_ifpx(self, name: str) -> bool:
        return name in self.made

    def destroy_tap(self, name: str) -> None:
        self.destroyed.append(name)

    def process_start(self, pid: int) -> int | None:
        return None if pid in self.dead else self.starts.get(pid, 1)

    def catch_up(self) -> bool:
        self.catch_ups += 1
        return True


@dataclass
class Stream:
    """The published stream's numbers and journal, as the publisher would hold them."""

    epoch: int = 5
    seq: int = 0
    journal: Journal = field(default_factory=lambda: Journal(64))

    last: dict[str, int] = field(default_factory=dict)
    times: dict[int, float] = field(default_factory=dict)

    def topic_seqs(self) -> dict[str, int]:
        return {"link": self.seq}

    def publish(self, topic: str, now: float) -> int:
        """One more message on ``topic`` at ``now``; its seq."""
        self.seq += 1
        self.last[topic] = self.seq
        self.times[self.seq] = now
        return self.seq

    def last_seq_of(self, topics: Iterable[str]) -> int:
        return max((self.last.get(t, 0) for t in topics), default=0)

    def published_at(self, seq: int) -> float | None:
        return self.times.get(seq)


def zero_stats(**given: int) -> BridgeStats:
    """Counters, all zero but ``given``."""
    values: dict[str, object] = {name: 0 for name in BridgeStats.__dataclass_fields__}
    values.update(uptime=1.5, events_by_kind={}, commands_by_result={}, resync_seconds=0.0)
    values.update(given)
    return BridgeStats(**values)  # type: ignore[arg-type]


def controller(tmp_path: Path) -> tuple[Controller, Effects, Stream]:
    """A controller over a core that knows tap0 (ifindex 2) and tap1 (3)."""
    core = BridgeCore()
    core.apply_all(
        [
            nlmsg.Link(False, 2, "tap0", 1500, "02:00:00:00:00:01", True, True),
            nlmsg.Link(False, 3, "tap1", 1500, "02:00:00:00:00:02", True, True),
        ]
    )
    effects = Effects(tmp_path / "state.json")
    stream = Stream()
    return Controller(core, stream, effects, zero_stats), effects, stream


def ask(
    ctl: Controller,
    payload: bytes | list[bytes],
    read_only: bool = False,
    peer: Peer | None = None,
    now: float = 0.0,
) -> c.Reply:
    """The reply to ``payload`` (raw bytes, or frames)."""
    frames = payload if isinstance(payload, list) else [payload]
    reply, _events = ctl.handle_frames(frames, read_only, peer, now)
    return codec.decode_reply(reply)


def run(
    ctl: Controller, cmd: c.Command, peer: Peer | None = None, now: float = 0.0
) -> tuple[c.Reply, list[EventBase]]:
    """The reply to ``cmd`` and the events the daemon would publish."""
    reply, events = ctl.handle_frames([codec.encode_request(cmd)], False, peer, now)
    return codec.decode_reply(reply), events
