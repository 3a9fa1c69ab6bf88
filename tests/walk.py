"""A kernel-differential random walk: ordinary iproute2 operations on bound proxies, and
after every settled step each replica compared with the kernel's own answers.

A seed makes a walk of steps; a step is one operator action, written down as the
commands it ran, so that a failing walk can be replayed and shrunk without the seed's
generator. After each step the bridge's snapshot must equal the kernel's view
(:func:`~ifpx.bridge.testing.kernelview.kernel_state`, filtered only by what
docs/semantics.md says is not published), then the Python replica and the C replica
must equal it, and for a set of probe flows the replica must forward as ``ip route
get`` says the kernel does.

Run long walks with ``make walk SEED=7 STEPS=1000`` (this file as a script); the
project's tests run a few hundred steps on fixed seeds (tests/test_walk_netns.py).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ifpx.bridge.testing.harness import BridgeProcess, Netns, netns
from ifpx.bridge.testing.kernelview import kernel_state
from ifpx.schemas import commands as c
from ifpx.schemas.state import State
from ifpx.subscribers import Flow, Subscriber
from ifpx.subscribers.replica import Route

sys.path.insert(0, str(Path(__file__).parent))
from ctools import CSubscriber, build, have_toolchain, state_of
from netutil import describe_difference

VETHS = 3
"""Ports 0..2 are veths p0..p2 (their peers q0..q2 give them carrier); port 3 is tap t3."""
TAP_PORT = 3
SETTLE = 12.0
"""Seconds a step may take to reach the bridge, and again to reach each replica."""

Step = list[str]
"""One operator action: ``ip`` command lines in the walk's namespace; ``@other LINE`` in
the second namespace; ``!carrier on|off`` opens or closes the tap; ``!restart`` restarts
the bridge."""


class Divergence(AssertionError):
    """A replica disagrees with the kernel after a settled step."""

    def __init__(self, step: int, check: str, detail: str) -> None:
        super().__init__(f"step {step}: {check}: {detail}")
        self.step = step
        self.check = check


# ---- the operations ---------------------------------------------------------------


@dataclass
class Names:
    """What the generator knows of the namespace, to make commands that mostly apply."""

    port: list[str] = field(default_factory=lambda: [f"p{i}" for i in range(VETHS)] + ["t3"])
    away: set[int] = field(default_factory=set)
    """Veth ports moved to the other namespace."""
    nhids: set[int] = field(default_factory=set)
    tables: tuple[str, ...] = ("", " table 10")


def _net(i: int) -> int:
    return i + 1


def _gw4(rng: random.Random, i: int) -> str:
    return f"10.{_net(i)}.0.{rng.choice((2, 3, 4))}"


def _gw6(rng: random.Random, i: int) -> str:
    return f"2001:db8:{_net(i)}::{rng.choice((2, 3, 4))}"


_DST4 = ("172.16.1.0/24", "172.16.2.0/24", "172.16.0.0/16", "172.16.2.128/25", "default")
_DST6 = ("2001:db8:f0::/48", "2001:db8:f1::/48", "2001:db8:f0:1::/64", "default")


def _hop4(rng: random.Random, n: Names, i: int) -> str:
    return f"nexthop via {_gw4(rng, i)} dev {n.port[i]} weight {rng.choice((1, 2, 3))}"


def _route4(rng: random.Random, n: Names) -> Step:
    verb = rng.choice(("add", "replace", "del", "append", "prepend", "replace"))
    dst = rng.choice(_DST4)
    where = rng.choice(n.tables) + rng.choice(("", " metric 10"))
    if verb == "del" and rng.random() < 0.5:
        return [f"route del {dst}{where}"]
    kind = rng.random()
    ports = rng.sample(range(TAP_PORT + 1), 2)
    if kind < 0.4:
        via = f"via {_gw4(rng, ports[0])} dev {n.port[ports[0]]}"
    elif kind < 0.6:
        via = f"dev {n.port[ports[0]]}"
    elif kind < 0.85:
        via = " ".join(_hop4(rng, n, i) for i in ports)
    elif n.nhids and kind < 0.93:
        via = f"nhid {rng.choice(sorted(n.nhids))}"
    else:  # (as many draws as the branch above: the rest of a seed's walk is unchanged)
        via = rng.choice(("blackhole", "unreachable", "prohibit"))
        return [f"route {verb} {via} {dst}{where}"]
    return [f"route {verb} {dst}{where} {via}"]


def _route6(rng: random.Random, n: Names) -> Step:
    verb = rng.choice(("add", "replace", "del", "add", "append"))
    dst = rng.choice(_DST6)
    where = rng.choice(n.tables) + rng.choice(("", " metric 10"))
    if verb == "del" and rng.random() < 0.5:
        return [f"-6 route del {dst}{where}"]
    ports = rng.sample(range(VETHS), 2)
    if rng.random() < 0.5:
        i = ports[0]
        via = f"via {_gw6(rng, i)} dev {n.port[i]}"
    else:
        via = " ".join(f"nexthop via {_gw6(rng, i)} dev {n.port[i]}" for i in ports)
    return [f"-6 route {verb} {dst}{where} {via}"]


def _nexthop(rng: random.Random, n: Names) -> Step:
    nhid = rng.choice((1, 2, 3, 4))
    if nhid in n.nhids and rng.random() < 0.4:
        n.nhids.discard(nhid)
        return [f"nexthop del id {nhid}"]
    n.nhids.add(nhid)
    if nhid == 4 and {1, 2} <= n.nhids:
        return [f"nexthop replace id 4 group 1/2,{rng.choice((1, 3))}"]
    i = rng.randrange(VETHS)
    return [f"nexthop replace id {nhid} via {_gw4(rng, i)} dev {n.port[i]}"]


def _addr(rng: random.Random, n: Names) -> Step:
    i = rng.randrange(TAP_PORT + 1)
    verb = rng.choice(("add", "del"))
    if rng.random() < 0.6:
        return [f"addr {verb} 10.{_net(i)}.{rng.choice((0, 1))}.{rng.choice((1, 9))}/24 "
                f"dev {n.port[i]}"]  # fmt: skip
    extra = " nodad" if verb == "add" else ""
    return [f"addr {verb} 2001:db8:{_net(i)}::{rng.choice((1, 9))}/64 dev {n.port[i]}{extra}"]


def _neigh(rng: random.Random, n: Names) -> Step:
    i = rng.randrange(TAP_PORT + 1)
    ip = (_gw4 if rng.random() < 0.6 else _gw6)(rng, i)
    if rng.random() < 0.3:
        return [f"neigh del {ip} dev {n.port[i]}"]
    mac = f"02:00:00:00:{i:02x}:{rng.randrange(256):02x}"
    nud = rng.choice(("permanent", "noarp", "reachable", "stale"))
    return [f"neigh replace {ip} lladdr {mac} dev {n.port[i]} nud {nud}"]


def _rule(rng: random.Random, _n: Names) -> Step:
    pref = rng.choice((100, 110, 120))
    if rng.random() < 0.4:
        return [f"rule del pref {pref}"]
    sel = rng.choice(("from 10.1.0.0/16", "fwmark 0x10", "to 172.16.2.0/24"))
    return [f"rule add pref {pref} {sel} lookup 10"]


def _link(rng: random.Random, n: Names) -> Step:
    i = rng.randrange(TAP_PORT + 1)
    dev = n.port[i]
    what = rng.random()
    if what < 0.35:
        return [f"link set {dev} {rng.choice(('up', 'down', 'up'))}"]
    if what < 0.55 and i < VETHS:
        return [f"link set q{i} {rng.choice(('up', 'down'))}"]  # carrier of p<i>
    if what < 0.75:
        return [f"link set {dev} mtu {rng.choice((1280, 1400, 1500, 9000))}"]
    return [f"link set {dev} address 02:00:00:00:{i:02x}:{rng.randrange(256):02x}"]


def _carrier(rng: random.Random, _n: Names) -> Step:
    return [f"!carrier {rng.choice(('on', 'off'))}"]


def _rename(rng: random.Random, n: Names) -> Step:
    i = rng.randrange(VETHS)
    if i in n.away:
        return []
    old = n.port[i]
    new = f"p{i}" if old != f"p{i}" else f"p{i}x"
    n.port[i] = new
    # A link is renamed only while down.
    return [f"link set {old} down", f"link set {old} name {new}", f"link set {new} up"]


def _recreate(rng: random.Random, n: Names) -> Step:
    i = rng.randrange(VETHS)
    if i in n.away:
        return []
    dev = n.port[i]
    n.port[i] = f"p{i}"
    return [f"link del {dev}", *_veth(i)]


def _veth(i: int) -> Step:
    return [
        f"link add p{i} type veth peer name q{i}",
        f"link set q{i} up",
        f"link set p{i} up",
        f"addr add 10.{_net(i)}.0.1/24 dev p{i}",
        f"addr add 2001:db8:{_net(i)}::1/64 dev p{i} nodad",
    ]


def _bridge_port(rng: random.Random, n: Names) -> Step:
    i = rng.randrange(TAP_PORT + 1)
    dev = n.port[i]
    what = rng.random()
    if what < 0.45:
        return ["link add br1 type bridge", "link set br1 up", f"link set {dev} master br1"]
    if what < 0.8:
        return [f"link set {dev} nomaster"]
    return ["link del br1"]


def _macvlan(rng: random.Random, n: Names) -> Step:
    i = rng.randrange(VETHS)
    if rng.random() < 0.5:
        return [f"link add mv{i} link {n.port[i]} type macvlan mode bridge", f"link set mv{i} up"]
    return [f"link del mv{i}"]


def _move(rng: random.Random, n: Names) -> Step:
    i = rng.randrange(VETHS)
    dev = n.port[i]
    if i in n.away:
        n.away.discard(i)
        return [f"@other link set {dev} netns {{ns}}", f"link set {dev} up",
                f"addr add 10.{_net(i)}.0.1/24 dev {dev}"]  # fmt: skip
    n.away.add(i)
    return [f"link set {dev} netns {{other}}"]


def _restart(_rng: random.Random, _n: Names) -> Step:
    return ["!restart"]


MENU: list[tuple[float, Callable[[random.Random, Names], Step]]] = [
    (10, _route4), (6, _route6), (3, _nexthop), (6, _addr), (4, _neigh), (3, _rule),
    (6, _link), (2, _carrier), (2, _rename), (1.5, _recreate), (2, _bridge_port),
    (1.5, _macvlan), (1.5, _move), (0.5, _restart),
]  # fmt: skip


def steps(seed: int, count: int) -> list[Step]:
    """The walk of ``seed``: ``count`` steps, each the commands of one action."""
    rng = random.Random(seed)
    names = Names()
    weights = [w for w, _ in MENU]
    made: list[Step] = []
    while len(made) < count:
        ((_w, op),) = rng.choices(MENU, weights)
        step = op(rng, names)
        if step:
            made.append(step)
    return made


# ---- the world a walk runs in -------------------------------------------------------


class World:
    """The namespaces, the bridge, the tap's opener and the two replicas of one walk."""

    def __init__(self, stack: ExitStack, tools: Path | None) -> None:
        self.ns: Netns = stack.enter_context(netns("ifpx-walk"))
        self.other: Netns = stack.enter_context(netns("ifpx-away"))
        for i in range(VETHS):
            for line in _veth(i):
                self.ns.cmd(line)
        self.ns.add_tap("t3")
        for line in ("link set t3 up", "addr add 10.4.0.1/24 dev t3"):
            self.ns.cmd(line)
        self.opener: subprocess.Popen[bytes] | None = None
        stack.callback(self._carrier, False)
        self._carrier(True)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ifpx-walk-")))
        self.bridge = BridgeProcess(self.ns, workdir, ["--heartbeat", "0.5"])
        self.bridge.start()
        stack.callback(self.bridge.stop)
        for port in range(TAP_PORT + 1):
            name = f"p{port}" if port < VETHS else "t3"
            assert isinstance(self.bridge.result(c.Bind(port_id=port, proxy=name)), c.BindResult)
        self.sub = stack.enter_context(Subscriber(self.bridge.events, self.bridge.control))
        self.sub.sync(timeout=20)
        self.csub: CSubscriber | None = None
        if tools is not None:
            self.csub = CSubscriber(
                tools / "ifpx_sub", workdir, self.bridge.events, self.bridge.control
            )
            stack.callback(self.csub.close)

    def _carrier(self, on: bool) -> None:
        """Open the tap (it gets carrier) or close it (it loses it, as when DPDK stops)."""
        if self.opener is not None:
            self.opener.kill()
            self.opener.wait(10)
            self.opener = None
        if on:
            self.opener = subprocess.Popen(
                ["ip", "netns", "exec", self.ns.name, sys.executable, "-c", _OPENER],
                stdout=subprocess.PIPE,
            )
            assert self.opener.stdout is not None
            self.opener.stdout.readline()  # "open": the tap has its reader

    def run(self, step: Step) -> None:
        """Carry out one step (commands the kernel refuses are part of the walk)."""
        for line in step:
            if line == "!restart":
                self.bridge.stop()
                self.bridge.start()
            elif line.startswith("!carrier"):
                self._carrier(line.endswith("on"))
            else:
                where = self.ns
                if line.startswith("@other "):
                    where, line = self.other, line.removeprefix("@other ")
                line = line.format(ns=self.ns.name, other=self.other.name)
                where.ip(*line.split(), check=False)

    def check(self, index: int) -> None:
        """Every replica equals the kernel, and forwards as the kernel does.

        Each comparison is of one moment: the kernel may still be moving when it first
        looks settled (it flags a link's hops ``linkdown`` up to a second after the carrier
        loss is reported), so the bridge, the kernel and the replicas are read again until
        they all agree, or :data:`SETTLE` runs out and the last disagreement is the
        divergence.
        """
        deadline = time.monotonic() + SETTLE
        while (failure := self._disagreement(index)) is not None:
            if time.monotonic() > deadline:
                raise failure
            time.sleep(0.05)

    def _disagreement(self, index: int) -> Divergence | None:
        snap = self.bridge.snapshot().state.canonical()
        kernel = kernel_state(self.ns.name, snap.bindings).canonical()
        if snap != kernel:
            return Divergence(index, "bridge", describe_difference(snap, kernel))
        self.sub.poll(max_events=100_000)
        got = self.sub.state.to_state().canonical()
        if got != snap:
            return Divergence(index, "python replica", describe_difference(got, snap))
        if self.csub is not None:
            cgot = state_of(self.csub.report())
            if cgot != snap:
                return Divergence(index, "c replica", describe_difference(cgot, snap))
        return _probe(self.ns, self.sub, snap, index)


_OPENER = r"""
import fcntl, os, struct, sys, time
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH", b"t3", 0x0002 | 0x1000 | 0x0100))
print("open", flush=True)
while True:
    time.sleep(3600)
"""
"""Holds the tap t3 open (TUNSETIFF: IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE) until killed."""


_PROBES = ("172.16.1.1", "172.16.2.1", "172.16.2.200", "172.16.9.1", "192.0.2.1",
           "10.1.0.7", "10.2.1.7", "2001:db8:f0::1", "2001:db8:f0:1::1", "2001:db8:f1::1",
           "2001:db8:2::7", "2001:db8:77::1")  # fmt: skip
_SELECTORS: tuple[tuple[list[str], dict[str, object]], ...] = (
    ([], {}),
    (["mark", "0x10"], {"fwmark": 0x10}),
    (["from", "10.1.0.1"], {"src": "10.1.0.1"}),
)


def _probe(ns: Netns, sub: Subscriber, want: State, index: int) -> Divergence | None:
    """For each probe flow the kernel forwards through a bound proxy (or drops), the
    replica forwards the same way: the kernel's chosen hop is one of the replica's live
    ones, or both drop. The first that does not, as a divergence."""
    port_of = {p.proxy: p.port_id for p in want.ports}
    for dst in _PROBES:
        for args, kw in _SELECTORS if ":" not in dst else _SELECTORS[:2]:
            kernel = _route_get(ns, [dst, *args])
            if kernel is None:
                continue  # an answer we do not model (a source the namespace lacks)
            found = sub.state.resolve(Flow(dst, **kw))  # type: ignore[arg-type]
            if kernel[0] != "unicast":
                # The kernel drops: so must the replica, by the same kind of route where
                # one says which (no route and an unreachable one look alike in IPv6).
                ours = "none" if found is None else found.type
                explicit = kernel[0] in ("blackhole", "prohibit")
                if ours == "unicast" or (explicit and ours != kernel[0]):
                    return Divergence(index, "route get", f"{dst} {args}: kernel {kernel}, "
                                     f"replica {found}")  # fmt: skip
                continue
            _kind, gateway, dev = kernel
            if dev not in port_of:
                continue  # through an interface no port is bound to: not published
            hops = [] if found is None else [(h[0], h[2]) for h in found.nexthops]
            if found is not None and _another_default(ns, found, gateway):
                continue  # the kernel's choice among default routes: not modelled
            if found is None or found.type != "unicast" or (gateway, port_of[dev]) not in hops:
                return Divergence(index, "route get", f"{dst} {args}: kernel via {gateway} dev "
                                 f"{dev}, replica {found}")  # fmt: skip
    return None


def _another_default(ns: Netns, found: Route, gateway: str | None) -> bool:
    """Whether the kernel forwards by another IPv4 default route of the one the replica
    found (same table and metric: ``ip route append default``). The kernel chooses
    among those by its neighbour state of their gateways (fib_select_default); the
    bridge publishes the first, as for any other destination."""
    if found.family != 4 or found.dst != "0.0.0.0/0":
        return False
    listed = subprocess.run(
        ["ip", "-n", ns.name, "-j", "-4", "route", "show", "default", "table", str(found.table)],
        capture_output=True, text=True, timeout=30, check=False,
    ).stdout  # fmt: skip
    return any(
        r.get("gateway") == gateway and int(r.get("metric", 0)) == found.metric
        for r in json.loads(listed or "[]")
    )


_DROPS = {
    "Invalid argument": "blackhole",
    "Network is unreachable": "none",
    "No route to host": "unreachable",
    "Permission denied": "prohibit",
}


def _route_get(ns: Netns, args: list[str]) -> tuple[str, str | None, str] | None:
    """(type, gateway, dev) of ``ip route get``; None for an answer that is not a route."""
    proc = subprocess.run(
        ["ip", "-n", ns.name, "-j", "route", "get", *args],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if proc.returncode:
        if "from" in args:
            return None  # a source address the namespace no longer has
        kind = _DROPS.get(proc.stderr.strip().removeprefix("RTNETLINK answers: "))
        return None if kind is None else (kind, None, "")
    (found,) = json.loads(proc.stdout)
    if found.get("type", "unicast") != "unicast":
        return (found["type"], None, "")
    return "unicast", found.get("gateway"), found.get("dev", "")


# ---- running, and shrinking what fails ----------------------------------------------


def c_tools(tmp: Path) -> Path | None:
    """The C subscriber's tools built into ``tmp``, or None without a toolchain."""
    if not have_toolchain("libzmq", "msgpack"):
        return None
    return build(tmp)


def walk(made: list[Step], tools: Path | None, log: Callable[[str], None] = print) -> None:
    """Run ``made`` in a fresh world, checking after every step (Divergence if not)."""
    with ExitStack() as stack:
        world = World(stack, tools)
        world.check(-1)
        for index, step in enumerate(made):
            world.run(step)
            world.check(index)
            log(f"step {index}: {' ; '.join(step)}")


def shrink(made: list[Step], tools: Path | None, budget: float = 600.0) -> list[Step]:
    """A shorter walk that still diverges: the steps after the failing one cut, then
    single steps dropped while it still fails (within ``budget`` seconds)."""

    def fails(candidate: list[Step]) -> int | None:
        try:
            walk(candidate, tools, log=lambda _s: None)
        except Divergence as exc:
            return exc.step
        return None

    end = fails(made)
    if end is None:
        return made
    made = made[: end + 1]
    deadline = time.monotonic() + budget
    i = len(made) - 2
    while i >= 0 and time.monotonic() < deadline:
        candidate = made[:i] + made[i + 1 :]
        at = fails(candidate)
        if at is not None:
            made = candidate[: at + 1]
            i = min(i, len(made) - 1)
        i -= 1
    return made


@contextmanager
def _tools(use_c: bool) -> Iterator[Path | None]:
    with tempfile.TemporaryDirectory(prefix="ifpx-walk-c-") as tmp:
        yield c_tools(Path(tmp)) if use_c else None


def main() -> int:
    """``make walk``: one seed's walk, and on a divergence a shrunk reproduction."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--no-c", action="store_true", help="check the Python replica only")
    parser.add_argument("--no-shrink", action="store_true")
    args = parser.parse_args()
    made = steps(args.seed, args.steps)
    with _tools(not args.no_c) as tools:
        try:
            walk(made, tools, log=lambda s: print(s, flush=True))
        except Divergence as exc:
            print(f"seed {args.seed}: {exc}", flush=True)
            if not args.no_shrink:
                small = shrink(made, tools)
                print(f"shrunk to {len(small)} steps:")
                for step in small:
                    print("  " + " ; ".join(step))
            return 1
    print(f"seed {args.seed}: {args.steps} steps, every check held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
