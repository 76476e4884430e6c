"""Chapter 3: a TC packet logger: one ring buffer event per packet, at ingress and egress.

Each event carries the time, interface, direction and length, the
EtherType, IPv4/IPv6 addresses, the L4 protocol, TCP/UDP ports, TCP flags
and ICMP type/code. Headers are found by the parser library (VLAN tags,
IPv4 options, IPv6 extension headers); the event is built on the stack and
copied into the ring with ``bpf_ringbuf_output``. The program never decides
a packet's fate: it returns TC_ACT_UNSPEC (TCX_NEXT), so the programs and
filters after it still run.

    pybpf run tc-logger --iface eth1 [--direction ingress|egress|both]
"""

import struct
import time

from programs import parser
from programs.tool import Tool
from pybpf.dsl import (
    ETH_P_IP,
    ETH_P_IPV6,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    TC_ACT_UNSPEC,
    RingBuf,
    Struct,
    be32,
    tc,
    u8,
    u16,
    u32,
    u64,
)
from pybpf.types import Array as Words

INGRESS, EGRESS = 0, 1


class Event(Struct):
    """One packet as the logger saw it (host order except the address words)."""

    ts_ns: u64
    ifindex: u32
    len: u32
    direction: u8
    ip_proto: u8
    tcp_flags: u8
    icmp_type: u8
    eth_proto: u16
    sport: u16
    dport: u16
    icmp_code: u8
    ip_version: u8
    saddr: Words(be32, 4)   # IPv4: word 0
    daddr: Words(be32, 4)


events = RingBuf(256 * 1024)


def _log(p, direction: int) -> None:
    e = p.stack(Event, ifindex=p.ctx.ifindex, len=p.ctx.len, direction=direction)
    src = parser.Direct(p, on_short=TC_ACT_UNSPEC)   # short or malformed headers: no event
    l2 = parser.ethernet(p, src)
    e.eth_proto = l2.proto.host()
    with p.if_(l2.proto == ETH_P_IP):
        v4 = parser.ipv4(p, src, l2.l3_off)
        e.ip_version = 4
        e.saddr[0] = v4.ip.saddr
        e.daddr[0] = v4.ip.daddr
        _l4(p, src, e, v4, IPPROTO_ICMP)
    with p.else_():
        with p.if_(l2.proto == ETH_P_IPV6):
            ip6 = parser.ipv6_header(p, src, l2.l3_off)
            e.ip_version = 6
            for i in range(4):
                e.saddr[i] = ip6.saddr[i]
                e.daddr[i] = ip6.daddr[i]
            _l4(p, src, e, parser.ipv6(p, src, l2.l3_off, ip=ip6), IPPROTO_ICMPV6)
    e.ts_ns = p.call("ktime_get_ns")
    events.output(e)
    p.return_(TC_ACT_UNSPEC)


def _l4(p, src, e, l3, icmp_proto: int) -> None:
    proto = l3.proto
    e.ip_proto = proto
    with p.if_(~l3.is_later_fragment):   # later fragments carry no L4 header
        with p.if_((proto == IPPROTO_TCP) | (proto == IPPROTO_UDP)):
            ports = src.header(parser.UDP, l3.l4_off)   # ports are the first 4 bytes of both
            e.sport = ports.source.host()
            e.dport = ports.dest.host()
            with p.if_(proto == IPPROTO_TCP):
                e.tcp_flags = parser.tcp(p, src, l3.l4_off).hdr.flags
        with p.else_():
            with p.if_(proto == icmp_proto):
                ic = parser.icmp(p, src, l3.l4_off)
                e.icmp_type = ic.icmp_type
                e.icmp_code = ic.code


@tc(name="tc_log_ingress")
def tc_log_ingress(p):
    """Log every packet entering the interface."""
    _log(p, INGRESS)


@tc(name="tc_log_egress")
def tc_log_egress(p):
    """Log every packet leaving the interface."""
    _log(p, EGRESS)


# -- userspace ------------------------------------------------------------------------------------

FLAGS = ((0x02, "S"), (0x10, "."), (0x08, "P"), (0x01, "F"), (0x04, "R"), (0x20, "U"))
PROTOS = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6"}


def addresses(ev: Event) -> tuple[str, str]:
    import ipaddress
    if ev.ip_version == 4:
        return (str(ipaddress.IPv4Address(ev.saddr[0])), str(ipaddress.IPv4Address(ev.daddr[0])))
    if ev.ip_version == 6:
        pack = lambda ws: ipaddress.IPv6Address(b"".join(struct.pack(">I", w) for w in ws))  # noqa: E731
        return str(pack(ev.saddr)), str(pack(ev.daddr))
    return "", ""


def format_event(ev: Event, names: dict[int, str] | None = None) -> str:
    """One line: time, interface and direction, addresses, protocol details, length."""
    where = (names or {}).get(ev.ifindex, f"if{ev.ifindex}")
    head = f"{ev.ts_ns / 1e9:14.6f} {where} {'in ' if ev.direction == INGRESS else 'out'}"
    if not ev.ip_version:
        return f"{head} ethertype {ev.eth_proto:#06x} len {ev.len}"
    s, d = addresses(ev)
    proto = PROTOS.get(ev.ip_proto, f"proto {ev.ip_proto}")
    if ev.ip_proto in (6, 17):
        s, d = (f"[{s}]" if ":" in s else s) + f":{ev.sport}", (f"[{d}]" if ":" in d else d) + \
            f":{ev.dport}"
    extra = ""
    if ev.ip_proto == 6:
        extra = " [" + "".join(n for bit, n in FLAGS if ev.tcp_flags & bit) + "]"
    elif ev.ip_proto in (1, 58):
        extra = f" type {ev.icmp_type} code {ev.icmp_code}"
    return f"{head} {proto} {s} > {d}{extra} len {ev.len}"


class Logger:
    """Both programs loaded (sharing one ring), attached to one interface, and the reader."""

    def __init__(self, ifname: str, directions=("ingress", "egress")):
        from pybpf.syscall.attach import attach_tc
        from pybpf.syscall.events import RingBuffer
        self.loaded = []
        self.attachments = []
        try:
            ingress = tc_log_ingress.load()
            self.loaded.append(ingress)
            ring = ingress["events"]
            if "egress" in directions:
                self.loaded.append(tc_log_egress.load(maps={"events": ring}))
            progs = {"ingress": self.loaded[0], "egress": self.loaded[-1]}
            for d in directions:
                self.attachments.append(attach_tc(progs[d], ifname, d))
            self.ring = RingBuffer(ring, decode=Event)
        except BaseException:
            self.close()
            raise

    def poll(self, timeout: float = 0.1) -> list[Event]:
        return self.ring.poll(timeout)

    def close(self) -> None:
        for a in self.attachments:
            a.detach()
        if hasattr(self, "ring"):
            self.ring.close()
        for prog in self.loaded:
            prog.close()
        self.attachments, self.loaded = [], []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _icmp_echo(dst: str) -> None:
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
        body = struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"pybpf"
        padded = body + b"\0" * (len(body) % 2)
        csum = sum(struct.unpack(f"!{len(padded) // 2}H", padded))
        csum = (csum & 0xFFFF) + (csum >> 16)
        csum = ~((csum & 0xFFFF) + (csum >> 16)) & 0xFFFF
        s.sendto(body[:2] + struct.pack("!H", csum) + body[4:], (dst, 0))


def demo() -> None:
    import socket

    from pybpf.sandbox import Sandbox
    with Sandbox() as sb:
        left, right = sb.veth_pair()
        with right.ns.entered():
            logger = Logger(right.ifname)
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            lst = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        with logger, udp, lst:
            udp.bind((right.ipv4, 5353))
            lst.bind((right.ipv6, 8080))
            lst.listen(1)
            with left.ns.entered():
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                    c.sendto(b"hello over udp", (right.ipv4, 5353))
                    data, peer = udp.recvfrom(100)
                    udp.sendto(b"reply", peer)
                    c.recv(100)
                with socket.create_connection((right.ipv6, 8080), timeout=2) as c:
                    conn = lst.accept()[0]
                    c.sendall(b"GET /")
                    conn.recv(10)
                    conn.close()
                _icmp_echo(right.ipv4)
            time.sleep(0.1)
            names = {right.ifindex: right.ifname}
            print(f"  TC logger at ingress and egress of {right.ifname}: UDP exchange, "
                  "TCP over IPv6, one ICMP echo")
            for ev in logger.ring.drain():
                print("  " + format_event(ev, names))


def add_arguments(p) -> None:
    p.add_argument("--iface", required=True, help="interface to log (TC clsact/TCX)")
    p.add_argument("--direction", choices=("ingress", "egress", "both"), default="both")


def run(args) -> None:
    import socket
    directions = ("ingress", "egress") if args.direction == "both" else (args.direction,)
    names = {socket.if_nametoindex(args.iface): args.iface}
    with Logger(args.iface, directions) as logger:
        print(f"logging {args.direction} on {args.iface}; Ctrl-C to stop", flush=True)
        try:
            while True:
                for ev in logger.poll(0.5):
                    print(format_event(ev, names), flush=True)
        except KeyboardInterrupt:
            pass


TOOL = Tool(
    name="tc-logger",
    summary="TC: log packets (addresses, ports, protocol, TCP flags, length) through a ring buffer",
    programs=lambda: [tc_log_ingress, tc_log_egress],
    demo=demo,
    add_arguments=add_arguments,
    run=run,
)
