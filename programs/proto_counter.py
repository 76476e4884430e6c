"""Chapter 4b: an XDP protocol counter: per-CPU packet and byte counts per IP protocol.

``counts`` is a per-CPU array indexed by the IP protocol number (the L4
protocol after IPv6 extension headers, found by the parser library); each
CPU adds to its own slot without atomics, and userspace sums the CPUs.
Non-IP frames are counted at index 256. The program passes every packet.

    pybpf run proto-counter --iface eth1
"""

import select
import time

from programs import parser
from programs.tool import Tool
from pybpf.dsl import ETH_P_IP, ETH_P_IPV6, XDP_PASS, PerCpuArray, Struct, u32, u64, xdp

NON_IP = 256
NAMES = {0: "ipv6-hopopt", 1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 41: "ipv6-in-ip",
         47: "gre", 50: "esp", 51: "ah", 58: "icmpv6", 59: "ipv6-nonxt", 132: "sctp",
         NON_IP: "non-ip"}


class Count(Struct):
    """Packets and bytes (of the whole frame) seen by one CPU."""

    packets: u64
    bytes: u64


counts = PerCpuArray(u32, Count, max_entries=NON_IP + 1)


@xdp
def proto_counter(p):
    """Count the frame under its IP protocol (or NON_IP); always pass."""
    src = parser.Direct(p, on_short=XDP_PASS)
    length = p.call("xdp_get_buff_len", p.ctx)   # the DSL has no data_end - data (yet)
    l2 = parser.ethernet(p, src)
    index = p.var(u32, NON_IP)
    with p.if_(l2.proto == ETH_P_IP):
        index.set(parser.ipv4(p, src, l2.l3_off).proto)
    with p.else_():
        with p.if_(l2.proto == ETH_P_IPV6):
            index.set(parser.ipv6(p, src, l2.l3_off).proto)
    key = p.stack(u32, index)
    with counts.lookup(key) as c:
        c.packets = c.packets + 1          # per-CPU slot: no other writer, no atomics needed
        c.bytes = c.bytes + length
    p.return_(XDP_PASS)


# -- userspace ------------------------------------------------------------------------------------

def totals(loaded) -> dict[int, tuple[int, int]]:
    """{protocol: (packets, bytes)} summed over CPUs, for protocols seen at least once."""
    out = {}
    for proto, per_cpu in loaded["counts"].items():
        packets = sum(c.packets for c in per_cpu)
        if packets:
            out[proto] = (packets, sum(c.bytes for c in per_cpu))
    return out


def table(t: dict[int, tuple[int, int]]) -> str:
    lines = [f"    {'protocol':<14} {'packets':>8} {'bytes':>10}"]
    for proto, (n, b) in sorted(t.items()):
        lines.append(f"    {NAMES.get(proto, str(proto)):<14} {n:>8} {b:>10}")
    return "\n".join(lines)


def traffic(left, right, udp: int = 5, tcp: int = 1, udp6: int = 3) -> None:
    """Some UDP (IPv4 and IPv6) and a TCP exchange from left to right."""
    import socket
    with right.ns.entered():
        u4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with u4, u6, lst:
        u4.bind((right.ipv4, 0))
        u6.bind((right.ipv6, 0))
        lst.bind((right.ipv4, 0))
        lst.listen(4)
        with left.ns.entered():
            c4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            c6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            conns = [socket.create_connection(lst.getsockname(), timeout=2) for _ in range(tcp)]
        with c4, c6:
            for i in range(udp):
                c4.sendto(b"x" * i, u4.getsockname())
            for i in range(udp6):
                c6.sendto(b"y" * i, u6.getsockname()[:2])
            for c in conns:
                peer = lst.accept()[0]
                c.sendall(b"hello")
                peer.recv(10)
                c.close()
                peer.close()
        for s in (u4, u6):
            while select.select([s], [], [], 0.1)[0]:
                s.recv(100)


def demo() -> None:
    from pybpf.sandbox import Sandbox
    from pybpf.syscall.attach import attach_xdp
    with Sandbox() as sb:
        left, right = sb.veth_pair()
        with proto_counter.load() as prog:
            with right.ns.entered():
                att = attach_xdp(prog, right.ifname)
            with att:
                traffic(left, right, udp=5, tcp=2, udp6=3)
                time.sleep(0.1)
                print(f"  XDP on {right.ifname}: 5 UDP + 3 UDP/IPv6 datagrams, 2 TCP connections")
                print(table(totals(prog)))


def add_arguments(p) -> None:
    p.add_argument("--iface", required=True, help="interface to count on (XDP ingress)")
    p.add_argument("--mode", choices=("skb", "driver"), default=None)
    p.add_argument("--interval", type=float, default=2.0, help="seconds between reports")


def run(args) -> None:
    from pybpf.syscall.attach import attach_xdp
    with proto_counter.load() as prog, attach_xdp(prog, args.iface, mode=args.mode):
        print(f"counting on {args.iface}; Ctrl-C to stop", flush=True)
        try:
            while True:
                time.sleep(args.interval)
                print(time.strftime("%H:%M:%S"))
                print(table(totals(prog)), flush=True)
        except KeyboardInterrupt:
            pass


TOOL = Tool(
    name="proto-counter",
    summary="XDP: per-CPU packet/byte counts per IP protocol, summed in userspace",
    programs=lambda: [proto_counter],
    demo=demo,
    add_arguments=add_arguments,
    run=run,
)
