"""Record raw rtnetlink dump datagrams from a scratch netns into tests/data (run as root).

python tests/record_rtnl.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ifpx.bridge.testing.harness import netns

SETUP = """
link set tp0 up
link set tp1 up
link set tp1 mtu 9000
link set tp0 address 02:00:00:00:00:10
addr add 10.0.0.1/24 dev tp0
addr add 10.1.0.1/24 dev tp1
addr add 2001:db8::1/64 dev tp0 nodad
route add 10.50.0.0/16 nexthop via 10.0.0.2 dev tp0 nexthop via 10.1.0.2 dev tp1 weight 3
route add 10.60.0.1 dev tp1 metric 5 table 100
route add default via 10.0.0.3 proto static
route add 10.70.0.0/16 via inet6 2001:db8::5 dev tp0
route add blackhole 10.99.0.0/16
-6 route add 2001:db8:5::/48 nexthop via 2001:db8::2 dev tp0 nexthop via 2001:db8::3 dev tp0
neigh add 10.0.0.9 lladdr 02:00:00:00:00:09 dev tp0
neigh add 10.0.0.10 dev tp0 nud incomplete
-6 neigh add 2001:db8::9 lladdr 02:00:00:00:00:0a dev tp0 nud stale
"""


def main() -> None:
    out = Path(__file__).parent / "data" / "rtnl-dump.bin"
    with netns("ifpx-rec") as ns:
        ns.add_tap("tp0")
        ns.add_tap("tp1")
        for line in SETUP.strip().splitlines():
            ns.cmd(line)
        script = (
            "import sys, socket\n"
            "from ifpx.bridge import nlmsg, nlrequest\n"
            "s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0); s.bind((0, 0))\n"
            "blob = b''\n"
            "for seq, req in enumerate([nlrequest.dump_links(1), nlrequest.dump_addrs(2),"
            " nlrequest.dump_routes(3, socket.AF_INET), nlrequest.dump_routes(4, socket.AF_INET6),"
            " nlrequest.dump_neighs(5)]):\n"
            "    s.send(req)\n"
            "    while True:\n"
            "        d = s.recv(1 << 20); blob += len(d).to_bytes(4, 'little') + d\n"
            "        if any(isinstance(r, nlmsg.Done) for r in nlmsg.decode(d)): break\n"
            "sys.stdout.buffer.write(blob)\n"
        )
        blob = subprocess.run(
            ["ip", "netns", "exec", ns.name, sys.executable, "-c", script],
            check=True,
            capture_output=True,
            timeout=60,
        ).stdout
    out.write_bytes(blob)
    print(f"wrote {len(blob)} bytes to {out}")


if __name__ == "__main__":
    main()
