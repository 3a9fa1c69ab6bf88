"""A stand-in bridge for subscriber tests: real ZeroMQ sockets, messages as hostile as asked.

It publishes whatever bytes a test gives it on a PUB socket and answers
``snapshot`` (and nothing else) on a ROUTER socket from a thread, counting the
requests, so a test can tell how a subscriber, Python or C, reacts to messages
no real bridge sends.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import msgpack
import zmq

from ifpx.schemas import codec
from ifpx.schemas import commands as c
from ifpx.schemas.state import SnapshotState
from ifpx.schemas.topics import TOPICS


class FakeBridge:
    """PUB and ROUTER on ipc endpoints in ``workdir``; stop with :meth:`close`."""

    def __init__(self, workdir: Path, epoch: int = 1000) -> None:
        self.events = f"ipc://{workdir}/fake-events.sock"
        self.control = f"ipc://{workdir}/fake-control.sock"
        self.epoch = epoch
        self.seq = 0
        self.tseq = {t: 0 for t in TOPICS if t != "hb"}
        self.requests: dict[str, int] = {}
        self.refuse = ""
        """Answer ``snapshot`` with this ``bad_request`` message instead (empty: answer it)."""
        ctx = zmq.Context.instance()
        self._pub: zmq.Socket[bytes] = ctx.socket(zmq.PUB)
        self._pub.setsockopt(zmq.LINGER, 0)
        self._pub.bind(self.events)
        self._router: zmq.Socket[bytes] = ctx.socket(zmq.ROUTER)
        self._router.setsockopt(zmq.LINGER, 0)
        self._router.bind(self.control)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self._router.poll(50, zmq.POLLIN):
                continue
            frames = self._router.recv_multipart()
            request = codec.decode_request(frames[-1])
            reply: c.Reply
            with self._lock:
                self.requests[request.cmd] = self.requests.get(request.cmd, 0) + 1
                if isinstance(request, c.Snapshot) and self.refuse:
                    reply = codec.error_reply(c.ErrorCode.BAD_REQUEST, self.refuse, request.id)
                elif isinstance(request, c.Snapshot):
                    result: c.Result = c.SnapshotResult(
                        epoch=self.epoch,
                        seq=self.seq,
                        topic_seqs=dict(self.tseq),
                        cfg_done=True,
                        state=SnapshotState(),
                    )
                    reply = c.OkReply(id=request.id, result=result)
                else:
                    reply = codec.error_reply(c.ErrorCode.NOT_SUPPORTED, "fake", request.id)
            self._router.send_multipart([*frames[:-1], codec.encode_reply(reply)])

    def count(self, cmd: str) -> int:
        """How many ``cmd`` requests came so far."""
        with self._lock:
            return self.requests.get(cmd, 0)

    def send(self, topic: str, doc: dict[str, Any]) -> None:
        """Publish ``doc`` packed as it is (no validation: it may be anything)."""
        self._pub.send_multipart([topic.encode(), msgpack.packb(doc, use_bin_type=True)])

    def message(self, topic: str, events: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
        """A message document of this bridge's epoch, numbered next on ``topic``."""
        with self._lock:
            if topic != "hb" and "seq" not in fields:
                self.seq += 1
                self.tseq[topic] += 1
            doc = {
                "v": 1,
                "epoch": self.epoch,
                "seq": self.seq,
                "tseq": 0 if topic == "hb" else self.tseq[topic],
                "ts": time.time(),
                "topic": topic,
                "events": events,
            }
        doc.update(fields)
        return doc

    def heartbeat(self, **fields: Any) -> None:
        """A heartbeat with this bridge's current sequence numbers."""
        beat = {"kind": "heartbeat", "topic_seqs": dict(self.tseq), "interval": 0.2}
        self.send("hb", self.message("hb", [beat], **fields))

    def restart(self, epoch: int) -> None:
        """Become a new bridge life with ``epoch`` (numbers start again)."""
        with self._lock:
            self.epoch = epoch
            self.seq = 0
            self.tseq = {t: 0 for t in self.tseq}

    def close(self) -> None:
        """Stop serving and close the sockets."""
        self._stop.set()
        self._thread.join(5)
        self._pub.close()
        self._router.close()
