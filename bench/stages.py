"""In-process figures: what the bridge's stages and a subscriber's decoding cost per event.

The churn scenario measures the processes as they run, wake-ups, system calls and
contention included. These take that apart, in one process and without sockets that
wait: the bridge's decode, core and publish stages over the very datagrams the kernel
sent for an ``ip -batch`` of route adds (recorded in the same run, beside ``ip monitor
route`` alone, whose CPU per event is the reference), and what a subscriber pays to
decode and validate one route event under each of pydantic's ways to validate a whole
message. A stage that costs more than the reference on its own cannot be hidden by
batching or fewer wake-ups; that is what bench/NOTES.md reads from them.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable

import msgpack
import zmq
from pydantic import TypeAdapter

from ifpx.bridge import nlmsg, nlsock
from ifpx.bridge.core import BridgeCore
from ifpx.bridge.daemon import DRAIN
from ifpx.bridge.netns import Namespace
from ifpx.bridge.publisher import Publisher
from ifpx.bridge.testing.harness import netns, wait_for
from ifpx.schemas import codec
from ifpx.schemas import events as ev
from ifpx.schemas.envelope import Message
from ifpx.schemas.journal import Journal
from ifpx.schemas.topics import Topic

from .common import Figure, Monitor, cpu_seconds, figure, route_prefix, shape

_MONITOR = "ip monitor route (C), alone: CPU per event"


def bridge_stages(n: int, runs: int, figs: dict[str, Figure]) -> None:
    """Decode, core and publish per route add, in process, against ip monitor alone."""
    for _ in range(runs):
        links, datagrams, monitor_cpu = _record(n)
        for form in ("flat", "group"):
            stages, records = _replay(links, datagrams, form)
            if records < n:
                raise RuntimeError(f"recorded {records} route records for {n} adds")
            for stage, used in stages.items():
                fig = figure(figs, f"stage {form} {stage}",
                             f"bridge in process, routes {form}: {stage} per route add", "us",
                             _MONITOR, "-" if stage != "all stages" else "<= 1x")  # fmt: skip
                fig.values.append(used / n * 1e6)
                fig.reference.append(monitor_cpu / n * 1e6)


def _record(n: int) -> tuple[list[nlmsg.Record], list[bytes], float]:
    """The namespace's links, the datagrams of n route adds, and ip monitor's CPU
    (seconds) for the same stream."""
    with netns("ifpx-stages") as ns:
        shape(ns)
        with Namespace(ns.name).inside():
            listener = nlsock.open_listener(512 << 20)
        listener.setblocking(False)
        monitor = Monitor(ns)
        try:
            base = cpu_seconds(monitor.proc.pid)
            monitor.expect(n)
            ns.batch([f"route add {route_prefix(i)} via 10.0.0.2" for i in range(n)])
            wait_for(lambda: n in monitor.marks, 60, what="ip monitor")
            used = cpu_seconds(monitor.proc.pid) - base
        finally:
            monitor.close()
        buf = nlsock.recv_buffer()
        datagrams = []
        while True:
            try:
                datagrams.append(nlsock.recv(listener, buf))
            except BlockingIOError:
                break
        listener.close()
        with Namespace(ns.name).inside():
            dumper = nlsock.Dumper()
            links = list(dumper.links())
            dumper.close()
    return links, datagrams, used


def _replay(
    links: list[nlmsg.Record], datagrams: list[bytes], form: str
) -> tuple[dict[str, float], int]:
    """CPU seconds per stage for the route datagrams, taken as the daemon takes a full
    read (up to its drain size per wake-up), published to one subscriber of ``form``;
    and how many records they held."""
    core = BridgeCore()
    core.apply_all(links)
    tap = core.link_by_name("tap0")
    assert tap is not None
    core.bind(0, tap)
    core.out.flat, core.out.grouped = form == "flat", form == "group"
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    sub = ctx.socket(zmq.SUB)
    try:
        pub.bind("inproc://stages")
        sub.setsockopt(zmq.RCVHWM, 0)
        sub.connect("inproc://stages")
        sub.setsockopt(zmq.SUBSCRIBE, b"route" if form == "flat" else b"fib")
        pub.recv()  # the subscription: from here on the PUB sends to it
        out = Publisher(pub, 1, Journal())
        spent = {"decode": 0.0, "core": 0.0, "publish": 0.0}
        count = 0
        clock = time.process_time
        gc.collect()
        gc.freeze()  # as the bridge does after its initial dump
        for i in range(0, len(datagrams), DRAIN):
            t0 = clock()
            records = [r for d in datagrams[i : i + DRAIN] for r in nlmsg.decode(d)]
            t1 = clock()
            count += len(records)
            events = core.apply_all(records)
            t2 = clock()
            out.publish(events)
            t3 = clock()
            spent["decode"] += t1 - t0
            spent["core"] += t2 - t1
            spent["publish"] += t3 - t2
            while sub.poll(0):
                sub.recv_multipart()
        gc.unfreeze()
    finally:
        sub.close(0)
        pub.close(0)
        ctx.term()
    spent["all stages"] = sum(spent.values())
    return spent, count


def decode_options(figs: dict[str, Figure], events: int = 256) -> None:
    """A subscriber's cost per route event, by the ways pydantic validates a message."""
    for form in ("flat", "group"):
        _decode_form(form, events, figs)


def _decode_form(form: str, events: int, figs: dict[str, Figure]) -> None:
    """One form's figures (see :func:`decode_options`)."""
    msg = _message(form, events)
    payload = codec.pack_payload(msg.__dict__)
    doc = msgpack.unpackb(payload, raw=False)
    as_json = msg.model_dump_json().encode()
    adapter: TypeAdapter[list[ev.Event]] = TypeAdapter(list[ev.Event])
    options: list[tuple[str, Callable[[], object], str]] = [
        ("msgpack unpack alone", lambda: msgpack.unpackb(payload, raw=False), "-"),
        ("validate_python of the message (strict; what a subscriber runs)",
         lambda: Message.model_validate(doc), "-"),
        ("one TypeAdapter over the events alone", lambda: adapter.validate_python(
            doc["events"]), "-"),
        ("validate_json of the same message as JSON (a wire we do not have)",
         lambda: Message.model_validate_json(as_json), "-"),
        ("unpack + validate (decode_payload, as a subscriber runs it)",
         lambda: codec.decode_payload(payload), "<= 4"),
    ]  # fmt: skip
    for label, fn, target in options:
        fig = figure(figs, f"decode {form} {label}",
                     f"subscriber in process, routes {form}: {label}, per event", "us",
                     "", target)  # fmt: skip
        fig.values.append(_per_call(fn) / events * 1e6)
    size = figure(figs, f"decode {form} bytes", f"route event on the wire, routes {form}",
                  "bytes", "the same as JSON", "-")  # fmt: skip
    size.values.append(len(payload) / events)
    size.reference.append(len(as_json) / events)


def _per_call(fn: Callable[[], object], repeat: int = 7, number: int = 200) -> float:
    """Median CPU seconds per call over ``repeat`` rounds of ``number`` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(number):
            fn()
        times.append((time.process_time() - t0) / number)
    return statistics.median(times)


def _message(form: str, count: int) -> Message:
    """A message of ``count`` single-hop IPv4 route adds, as the churn scenario's."""
    hop = ev.NextHop(gateway="10.0.0.2", ifindex=2, port_id=0)
    batch: list[ev.Event] = []
    for i in range(count):
        dst, plen = route_prefix(i).split("/")
        if form == "flat":
            batch.append(ev.RouteAdd(proto=3, nexthops=[hop], dst=dst, prefixlen=int(plen)))
        else:
            batch.append(ev.GRouteAdd(proto=3, group=1, dst=dst, prefixlen=int(plen)))
    topic: Topic = "route" if form == "flat" else "fib"
    return Message(epoch=1, seq=1, tseq=1, ts=time.time(), topic=topic, events=batch)
