"""The floor under ifpx's latency: a bare pyzmq PUB -> SUB hop over ipc, measured here.

``python -m bench.zmqfloor ENDPOINT BACK block|busy`` is the subscriber: it echoes each
message's send time back over a PUSH socket so the publisher (in the bench process)
takes the difference against the same clock. ``block`` waits in recv as a worker that
sleeps between events does; ``busy`` spins on a non-blocking recv as a DPDK lcore does.
"""

from __future__ import annotations

import sys

import zmq


def main() -> int:
    endpoint, back, mode = sys.argv[1:4]
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    push = ctx.socket(zmq.PUSH)
    push.connect(back)
    while True:
        if mode == "busy":
            while True:
                try:
                    frames = sub.recv_multipart(zmq.NOBLOCK)
                    break
                except zmq.Again:
                    pass
        else:
            frames = sub.recv_multipart()
        push.send(frames[1])
        if frames[1] == b"end":
            return 0


if __name__ == "__main__":
    sys.exit(main())
