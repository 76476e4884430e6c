"""Chapter 8: a socket filter that passes only TCP SYNs (SYN set, ACK clear), IPv4 and IPv6.

Attached to a raw AF_PACKET socket, the socket then receives connection
attempts and nothing else. Socket filters cannot read the packet in place,
so the parser library runs over a ``Copied`` source (each header copied to
the stack with ``bpf_skb_load_bytes``); a packet socket's data starts at
the Ethernet header.

    pybpf run syn-filter --iface eth0      # prints every SYN seen on eth0
"""

from __future__ import annotations

import struct
import time

from programs import parser
from programs.tool import Tool
from pybpf.dsl import ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP, TCP, TCP_ACK, TCP_SYN, socket_filter, u32

TYPE_CHECKING = False  # as typing's: importing typing costs ~5 ms (with re) at start-up
if TYPE_CHECKING:
    import socket

KEEP, DROP = 0xFFFF, 0   # bytes of the packet the socket keeps
ETH_P_ALL = 0x0003


@socket_filter
def syn_filter(p):
    """Keep TCP segments with SYN and without ACK; drop everything else."""
    src = parser.Copied(p, on_short=DROP, on_bad=DROP)
    l2 = parser.ethernet(p, src, max_vlans=0)   # packet sockets see VLAN tags as skb metadata
    l4 = p.var(u32, 0)
    with p.if_(l2.proto == ETH_P_IP):
        v4 = parser.ipv4(p, src, l2.l3_off)
        with p.if_((v4.proto != IPPROTO_TCP) | v4.is_later_fragment):
            p.return_(DROP)
        l4.set(v4.l4_off)
    with p.else_():
        with p.if_(l2.proto != ETH_P_IPV6):
            p.return_(DROP)
        v6 = parser.ipv6(p, src, l2.l3_off)
        with p.if_((v6.proto != IPPROTO_TCP) | v6.is_later_fragment):
            p.return_(DROP)
        l4.set(v6.l4_off)
    flags = src.header(TCP, l4).flags
    with p.if_((flags & (TCP_SYN | TCP_ACK)) == TCP_SYN):
        p.return_(KEEP)
    p.return_(DROP)


# -- userspace ------------------------------------------------------------------------------------

def open_socket(ifname: str, prog) -> tuple[socket.socket, object]:
    """A raw AF_PACKET socket on ``ifname`` with the filter attached before any packet queues."""
    import socket

    from pybpf.syscall.attach import attach_socket_filter
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)   # protocol 0: receives nothing yet
    try:
        att = attach_socket_filter(prog, s)
        s.bind((ifname, ETH_P_ALL))
    except BaseException:
        s.close()
        raise
    return s, att


def describe(frame: bytes) -> str:
    """'src:port -> dst:port SYN' for a captured Ethernet frame."""
    import ipaddress
    etype = struct.unpack_from("!H", frame, 12)[0]
    if etype == 0x0800:
        ihl = (frame[14] & 0xF) * 4
        s, d = (ipaddress.IPv4Address(frame[26:30]), ipaddress.IPv4Address(frame[30:34]))
        l4 = 14 + ihl
    else:
        s, d = ipaddress.IPv6Address(frame[22:38]), ipaddress.IPv6Address(frame[38:54])
        l4 = 14 + 40   # (extension headers are rare on SYNs; the filter handles them)
    sport, dport = struct.unpack_from("!HH", frame, l4)
    flags = frame[l4 + 13]
    names = "".join(n for bit, n in ((2, "S"), (16, "A"), (1, "F"), (4, "R")) if flags & bit)
    fmt = "[{}]:{}" if etype != 0x0800 else "{}:{}"
    return f"{fmt.format(s, sport)} -> {fmt.format(d, dport)} flags={names}"


def receive_all(s: socket.socket, wait: float = 0.2) -> list[bytes]:
    out = []
    s.settimeout(wait)
    try:
        while True:
            out.append(s.recv(65535))
    except TimeoutError:
        return out


def demo() -> None:
    import socket

    from pybpf.sandbox import Sandbox
    with Sandbox() as sb:
        left, right = sb.veth_pair()
        with syn_filter.load() as prog:
            with right.ns.entered():
                raw, att = open_socket(right.ifname, prog)
                listeners = [socket.socket(fam, socket.SOCK_STREAM)
                             for fam in (socket.AF_INET, socket.AF_INET6)]
                udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with raw, att, udp, listeners[0], listeners[1]:
                listeners[0].bind((right.ipv4, 8080))
                listeners[1].bind((right.ipv6, 8443))
                udp.bind((right.ipv4, 5353))
                for lst in listeners:
                    lst.listen(8)
                sent = 0
                with left.ns.entered():
                    for addr in ((right.ipv4, 8080), (right.ipv4, 8080), (right.ipv6, 8443)):
                        with socket.create_connection(addr, timeout=2) as c:
                            c.sendall(b"data that the filter drops")
                            sent += 1
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                        for _ in range(5):
                            u.sendto(b"udp", (right.ipv4, 5353))
                for lst in listeners:
                    for _ in range(2):
                        lst.settimeout(0.2)
                        try:
                            lst.accept()[0].close()
                        except TimeoutError:
                            break
                time.sleep(0.05)
                frames = receive_all(raw)
                print(f"  raw AF_PACKET socket on {right.ifname} with the SYN filter; traffic: "
                      f"{sent} TCP connections with data, 5 UDP datagrams")
                print(f"  the socket received {len(frames)} frames:")
                for f in frames:
                    print(f"    {describe(f)}")


def add_arguments(p) -> None:
    p.add_argument("--iface", required=True, help="interface to watch (a raw AF_PACKET socket)")


def run(args) -> None:
    with syn_filter.load() as prog:
        raw, att = open_socket(args.iface, prog)
        with raw, att:
            print(f"SYNs on {args.iface}; Ctrl-C to stop", flush=True)
            try:
                while True:
                    frame = raw.recv(65535)
                    print(time.strftime("%H:%M:%S"), describe(frame), flush=True)
            except KeyboardInterrupt:
                pass


TOOL = Tool(
    name="syn-filter",
    summary="socket filter: a raw AF_PACKET socket that receives only TCP SYNs (IPv4/IPv6)",
    programs=lambda: [syn_filter],
    demo=demo,
    add_arguments=add_arguments,
    run=run,
)

