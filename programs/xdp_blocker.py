"""Chapter 4a: an XDP IP blocker with source prefixes in LPM tries and per-prefix drop counters.

``blocked4``/``blocked6`` map a source prefix to the number of packets it
had dropped; the program looks every IPv4/IPv6 source up (longest prefix
wins), counts and drops on a match, passes everything else (ARP, short and
malformed frames included). Prefixes are added and removed while the
program runs: the tries are plain maps userspace updates.

    pybpf run xdp-blocker --iface eth1 --block 10.0.0.0/8 --block 2001:db8::/32

then type ``block PREFIX`` / ``unblock PREFIX`` on stdin while it runs.
"""

from __future__ import annotations

import errno
import select
import sys
import time

from programs import parser
from programs.tool import Tool, ToolError
from pybpf.dsl import ETH_P_IP, ETH_P_IPV6, XDP_DROP, XDP_PASS, LpmTrie, Struct, be32, u32, u64, xdp
from pybpf.errors import BPFError
from pybpf.syscall import UpdateFlags
from pybpf.types import Array as Words

TYPE_CHECKING = False  # as typing's: importing typing costs ~5 ms (with re) at start-up
if TYPE_CHECKING:
    import socket


class V4Key(Struct):
    """LPM key: prefix length, then the IPv4 address (network order)."""

    prefixlen: u32
    addr: be32


class V6Key(Struct):
    """LPM key: prefix length, then the IPv6 address as four network-order words."""

    prefixlen: u32
    addr: Words(be32, 4)


blocked4 = LpmTrie(V4Key, u64, max_entries=4096)
blocked6 = LpmTrie(V6Key, u64, max_entries=4096)


@xdp
def xdp_blocker(p):
    """Drop (and count) packets whose source is in a blocked prefix."""
    src = parser.Direct(p, on_short=XDP_PASS)
    l2 = parser.ethernet(p, src)
    with p.if_(l2.proto == ETH_P_IP):
        ip = parser.ipv4(p, src, l2.l3_off).ip
        key = p.stack(V4Key, prefixlen=32, addr=ip.saddr)
        with blocked4.lookup(key) as drops:
            drops.atomic_add(1)
            p.return_(XDP_DROP)
    with p.else_():
        with p.if_(l2.proto == ETH_P_IPV6):
            ip6 = parser.ipv6(p, src, l2.l3_off, max_ext=0).ip
            key6 = p.stack(V6Key, prefixlen=128)
            for i in range(4):
                key6.addr[i] = ip6.saddr[i]
            with blocked6.lookup(key6) as drops:
                drops.atomic_add(1)
                p.return_(XDP_DROP)
    p.return_(XDP_PASS)


# -- userspace ------------------------------------------------------------------------------------

def _key(prefix: str):
    import ipaddress
    net = ipaddress.ip_network(prefix, strict=False)
    if net.version == 4:
        return "blocked4", V4Key(net.prefixlen, int(net.network_address))
    words = [int.from_bytes(net.network_address.packed[i:i + 4], "big") for i in range(0, 16, 4)]
    return "blocked6", V6Key(net.prefixlen, words)


def block(loaded, prefix: str) -> None:
    """Start dropping ``prefix`` (its counter starts at 0; an existing one keeps counting)."""
    name, key = _key(prefix)
    try:   # not `key in map`: an LPM lookup also matches a shorter prefix that contains it
        loaded[name].update(key, 0, flags=UpdateFlags.NOEXIST)
    except BPFError as e:
        if e.errno != errno.EEXIST:
            raise


def unblock(loaded, prefix: str) -> None:
    """Stop dropping ``prefix``."""
    name, key = _key(prefix)
    try:
        loaded[name].delete(key)
    except KeyError:
        raise ToolError(f"{prefix} is not blocked") from None


def counts(loaded) -> dict[str, int]:
    """{prefix: packets dropped} for every blocked prefix."""
    import ipaddress
    out = {}
    for key, n in loaded["blocked4"].items():
        out[f"{ipaddress.IPv4Address(key.addr)}/{key.prefixlen}"] = n
    for key, n in loaded["blocked6"].items():
        raw = b"".join(w.to_bytes(4, "big") for w in key.addr)
        out[f"{ipaddress.IPv6Address(raw)}/{key.prefixlen}"] = n
    return out


def _table(c: dict[str, int]) -> str:
    width = max((len(k) for k in c), default=6)
    return "\n".join(f"    {k:<{width}}  {n:>6} dropped" for k, n in sorted(c.items()))


# -- demo: a sandbox with a server behind a veth, one allowed and one blocked source -------------

def _send(ns, family, src: str, dst: str, port: int, n: int) -> None:
    import socket
    with ns.entered():
        s = socket.socket(family, socket.SOCK_DGRAM)
    with s:
        s.bind((src, 0))
        for i in range(n):
            s.sendto(b"hello %d" % i, (dst, port))


def _receive(server: socket.socket) -> int:
    got = 0
    while select.select([server], [], [], 0.2)[0]:
        server.recv(2048)
        got += 1
    return got


def demo() -> None:
    import socket

    from pybpf.sandbox import Sandbox
    from pybpf.syscall.attach import attach_xdp
    with Sandbox() as sb:
        left, right = sb.veth_pair()
        blocked_v4, blocked_v6 = "10.199.1.3", "fd00:199:1::8003"
        left.ns.add_address(left.ifname, blocked_v4 + "/24")
        left.ns.add_address(left.ifname, blocked_v6 + "/64")
        servers = {}
        with right.ns.entered():
            for fam, addr in ((socket.AF_INET, right.ipv4), (socket.AF_INET6, right.ipv6)):
                servers[fam] = socket.socket(fam, socket.SOCK_DGRAM)
                servers[fam].bind((addr, 0))
        with xdp_blocker.load() as prog:
            with right.ns.entered():
                att = attach_xdp(prog, right.ifname)
            with att:
                block(prog, "10.199.1.3/32")
                block(prog, "fd00:199:1::8000/113")
                block(prog, "192.0.2.0/24")
                print(f"  XDP blocker on {right.ifname} (server {right.ipv4}, {right.ipv6})")
                for fam, src, dst in ((socket.AF_INET, left.ipv4, right.ipv4),
                                      (socket.AF_INET, blocked_v4, right.ipv4),
                                      (socket.AF_INET6, left.ipv6, right.ipv6),
                                      (socket.AF_INET6, blocked_v6, right.ipv6)):
                    server = servers[fam]
                    _send(left.ns, fam, left.ipv4 if fam == socket.AF_INET else left.ipv6,
                          dst, server.getsockname()[1], 1)   # resolve neighbours first
                    _receive(server)
                    _send(left.ns, fam, src, dst, server.getsockname()[1], 10)
                    print(f"  10 datagrams from {src:<18} -> {_receive(server):2} arrived")
                print("  drop counters:")
                print(_table(counts(prog)))
                unblock(prog, "10.199.1.3/32")
                _send(left.ns, socket.AF_INET, blocked_v4, right.ipv4,
                      servers[socket.AF_INET].getsockname()[1], 5)
                print(f"  after unblock 10.199.1.3/32: 5 datagrams -> "
                      f"{_receive(servers[socket.AF_INET])} arrived")
        for s in servers.values():
            s.close()


# -- run on a real interface -------------------------------------------------------------------

def add_arguments(parser_) -> None:
    parser_.add_argument("--iface", required=True, help="interface to attach to (XDP ingress)")
    parser_.add_argument("--block", action="append", default=[], metavar="PREFIX",
                         help="source prefix to drop (repeatable; IPv4 or IPv6)")
    parser_.add_argument("--mode", choices=("skb", "driver"), default=None,
                         help="XDP mode (default: driver where supported)")
    parser_.add_argument("--interval", type=float, default=2.0, help="seconds between reports")


def run(args) -> None:
    from pybpf.syscall.attach import attach_xdp
    for prefix in args.block:
        _key(prefix)  # validate before touching the interface
    with xdp_blocker.load() as prog:
        for prefix in args.block:
            block(prog, prefix)
        with attach_xdp(prog, args.iface, mode=args.mode):
            print(f"blocking on {args.iface}; commands on stdin: block PREFIX | unblock PREFIX; "
                  "Ctrl-C to stop", flush=True)
            next_report = time.monotonic() + args.interval
            stdin_open = True
            try:
                while True:
                    wait = max(0.0, next_report - time.monotonic())
                    ready = select.select([sys.stdin] if stdin_open else [], [], [], wait)[0]
                    if ready:
                        line = sys.stdin.readline()
                        if not line:
                            stdin_open = False
                            continue
                        _command(prog, line)
                    if time.monotonic() >= next_report:
                        print(time.strftime("%H:%M:%S"), flush=True)
                        print(_table(counts(prog)) or "    (nothing blocked)", flush=True)
                        next_report += args.interval
            except KeyboardInterrupt:
                pass


def _command(prog, line: str) -> None:
    words = line.split()
    if len(words) != 2 or words[0] not in ("block", "unblock"):
        print("usage: block PREFIX | unblock PREFIX", flush=True)
        return
    try:
        (block if words[0] == "block" else unblock)(prog, words[1])
        print(f"{words[0]}ed {words[1]}", flush=True)
    except (ValueError, ToolError) as e:
        print(f"error: {e}", flush=True)


TOOL = Tool(
    name="xdp-blocker",
    summary="XDP: drop IPv4/IPv6 source prefixes (LPM tries) with per-prefix drop counters",
    programs=lambda: [xdp_blocker],
    demo=demo,
    add_arguments=add_arguments,
    run=run,
)

