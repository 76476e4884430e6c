"""6. Header rewriting: destination NAT for TCP and UDP over IPv4, with the reverse for replies.

One map of rules serves both directions: ``(service address, port, protocol,
FORWARD)`` -> backend and ``(backend address, port, protocol, REVERSE)`` ->
service.  The forward program rewrites the destination of packets to a
service; the reverse program rewrites the source of the backend's replies,
so the client only ever sees the service address and a real TCP connection
works end to end.

Two variants of the same rewrite:

* **TC** (``tc_dnat`` on the backend side's ingress, ``tc_unnat`` on its
  egress): the new address and port are written through direct packet
  access, then ``bpf_l4_csum_replace`` (with BPF_F_PSEUDO_HDR for the
  address, which the TCP/UDP checksum covers through the pseudo-header) and
  ``bpf_l3_csum_replace`` fix the checksums.  The helpers also handle
  packets whose checksum a NIC (or veth) would finish later (CHECKSUM_PARTIAL).
* **XDP** (``xdp_dnat`` on the backend side, ``xdp_unnat`` on the client
  side; XDP sees only received frames): the checksums are updated in the
  program with RFC 1624's incremental arithmetic, HC' = ~(~HC + ~m + m').
  This needs complete checksums in the frame, which real NICs deliver; the
  demo turns veth transmit checksum offload off so the sender computes them.

A UDP checksum of 0 means "none" and stays 0; a computed 0 is sent as 0xffff.
"""

from __future__ import annotations

import contextlib
import fcntl
import struct

from programs.tool import Attached, Tool, ToolError
from pybpf.dsl import (
    ETH_P_IP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    TC_ACT_OK,
    TCP,
    UDP,
    XDP_PASS,
    Array,
    Ethernet,
    Hash,
    IPv4,
    Struct,
    tc,
    u8,
    u16,
    u32,
    u64,
    xdp,
)
from pybpf.types import be16, be32

TYPE_CHECKING = False  # as typing's: importing typing costs ~5 ms (with re) at start-up
if TYPE_CHECKING:
    import argparse

    from pybpf.sandbox import Sandbox

FORWARD, REVERSE = 0, 1
ETH_LEN = Ethernet.size
IP_CHECK = ETH_LEN + 10                    # offsetof(struct iphdr, check) in the frame
L4_CHECK = {IPPROTO_TCP: 16, IPPROTO_UDP: 6}
BPF_F_PSEUDO_HDR, BPF_F_MARK_MANGLED_0 = 0x10, 0x20


class NatKey(Struct):
    """What a packet is matched on: its destination (FORWARD) or source (REVERSE)."""

    addr: be32
    port: be16
    proto: u8
    direction: u8


class NatTarget(Struct):
    """What the matched address and port become."""

    addr: be32
    port: be16
    pad: u16


nat = Hash(NatKey, NatTarget, max_entries=1024)
rewritten = Array(u32, u64, max_entries=2)      # packets rewritten per direction


# -- the rewrite, shared by all four programs ------------------------------------------------

def _csum_replace(p, check, old, new, bits: int):
    """RFC 1624 eq. 3 in host order: the checksum after a ``bits``-bit field went old -> new."""
    s = (~check.cast(u32) & 0xFFFF) + (new & 0xFFFF) + (~old & 0xFFFF)
    if bits == 32:
        s = s + (new >> 16) + ((~old >> 16) & 0xFFFF)
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _rewrite(p, proto: int, L4, direction: int, helpers: bool, verdict: int) -> None:
    """Match and rewrite one TCP or UDP packet (the IPv4 header is read again here)."""
    ip = p.packet.header(IPv4, at=ETH_LEN)
    l4 = p.packet.header(L4, after=ip)
    forward = direction == FORWARD
    key = p.stack(NatKey, addr=ip.daddr if forward else ip.saddr,
                  port=l4.dest if forward else l4.source, proto=proto, direction=direction)
    with nat.lookup(key) as to:
        new_addr, new_port = to.addr, to.port
        with rewritten.lookup(p.const(direction, u32)) as n:
            n.atomic_add(1)
        if forward:
            ip.daddr, l4.dest = new_addr, new_port
        else:
            ip.saddr, l4.source = new_addr, new_port
        old_addr, old_port = key.addr, key.port
        if helpers:
            # the packet is written; the helpers fix the sums (and invalidate packet pointers)
            l4_check = ETH_LEN + ip.header_length + L4_CHECK[proto]
            zero_ok = BPF_F_MARK_MANGLED_0 if proto == IPPROTO_UDP else 0
            p.call("l4_csum_replace", p.ctx, l4_check, old_addr, new_addr,
                   BPF_F_PSEUDO_HDR | zero_ok | 4)
            p.call("l4_csum_replace", p.ctx, l4_check, old_port, new_port, zero_ok | 2)
            p.call("l3_csum_replace", p.ctx, IP_CHECK, old_addr, new_addr, 4)
        else:
            ip.check = _csum_replace(p, ip.check.host(), old_addr.host(), new_addr.host(), 32)
            l4_sum = _csum_replace(p, l4.check.host(), old_addr.host(), new_addr.host(), 32)
            l4_sum = _csum_replace(p, l4_sum, old_port.host(), new_port.host(), 16)
            if proto == IPPROTO_UDP:
                with p.if_(l4.check != 0):             # 0: the sender sent no checksum
                    with p.if_(l4_sum == 0):
                        l4.check = 0xFFFF
                    with p.else_():
                        l4.check = l4_sum
            else:
                l4.check = l4_sum
        p.return_(verdict)


def _nat_program(direction: int, helpers: bool):
    verdict = TC_ACT_OK if helpers else XDP_PASS

    def body(p):
        eth = p.packet.header(Ethernet)
        with p.if_(eth.proto != ETH_P_IP):
            p.return_(verdict)
        protocol = p.packet.header(IPv4, after=eth).protocol
        with p.if_(protocol == IPPROTO_TCP):
            _rewrite(p, IPPROTO_TCP, TCP, direction, helpers, verdict)
        with p.if_(protocol == IPPROTO_UDP):
            _rewrite(p, IPPROTO_UDP, UDP, direction, helpers, verdict)
        p.return_(verdict)

    return body


tc_dnat = tc(name="tc_dnat")(_nat_program(FORWARD, helpers=True))
tc_dnat.__doc__ = "TC: service destination -> backend (checksums by helpers)."
tc_unnat = tc(name="tc_unnat")(_nat_program(REVERSE, helpers=True))
tc_unnat.__doc__ = "TC: backend source of replies -> service (checksums by helpers)."
xdp_dnat = xdp(name="xdp_dnat")(_nat_program(FORWARD, helpers=False))
xdp_dnat.__doc__ = "XDP: service destination -> backend (RFC 1624 incremental checksums)."
xdp_unnat = xdp(name="xdp_unnat")(_nat_program(REVERSE, helpers=False))
xdp_unnat.__doc__ = "XDP: backend source of replies -> service (RFC 1624 checksums)."


# -- userspace ------------------------------------------------------------------------------

def _ip(text: str) -> int:
    import ipaddress
    return int(ipaddress.IPv4Address(text))


class Nat(Attached):
    """The forward and reverse programs loaded with one rule map, attached as ``variant``.

    tc:  both on ``backend_if`` (forward at ingress, reverse at egress).
    xdp: forward on ``backend_if``, reverse on ``client_if`` (XDP sees only received frames).
    Interfaces are (namespace or None, ifname) pairs; attaching happens inside the namespace.
    """

    def __init__(self, variant: str, backend_if, client_if=None):
        from pybpf.syscall.attach import attach_tc, attach_xdp
        if variant not in ("tc", "xdp"):
            raise ToolError(f"variant {variant!r} is not tc or xdp")
        if variant == "xdp" and client_if is None:
            raise ToolError("the XDP variant needs the client-side interface for replies")
        super().__init__()
        try:
            fwd_def, rev_def = (tc_dnat, tc_unnat) if variant == "tc" else (xdp_dnat, xdp_unnat)
            fwd = self._stack.enter_context(fwd_def.load())
            self.rules, self.counters = fwd["nat"], fwd["rewritten"]
            rev = self._stack.enter_context(rev_def.load(
                maps={"nat": self.rules, "rewritten": self.counters}))
            if variant == "tc":
                self._attach(backend_if, lambda i: attach_tc(fwd, i, "ingress"))
                self._attach(backend_if, lambda i: attach_tc(rev, i, "egress"))
            else:
                self._attach(backend_if, lambda i: attach_xdp(fwd, i))
                self._attach(client_if, lambda i: attach_xdp(rev, i))
        except BaseException:
            self._stack.close()
            raise

    def _attach(self, where, fn) -> None:
        ns, ifname = where
        with ns.entered() if ns is not None else contextlib.nullcontext():
            self._stack.enter_context(fn(ifname))

    def add(self, proto: int, service: tuple[str, int], backend: tuple[str, int]) -> None:
        """Rewrite ``service`` (address, port) to ``backend`` for ``proto``, and replies back."""
        self.rules[NatKey(addr=_ip(service[0]), port=service[1], proto=proto,
                          direction=FORWARD)] = NatTarget(addr=_ip(backend[0]), port=backend[1])
        self.rules[NatKey(addr=_ip(backend[0]), port=backend[1], proto=proto,
                          direction=REVERSE)] = NatTarget(addr=_ip(service[0]), port=service[1])

    def counts(self) -> tuple[int, int]:
        """(packets rewritten forward, replies rewritten back)."""
        return self.counters[FORWARD], self.counters[REVERSE]


# -- the sandbox: client -- veth -- backend, with a service address routed to the backend ----

SIOCETHTOOL, ETHTOOL_STXCSUM = 0x8946, 0x17


def tx_checksum_off(ns, ifname: str) -> None:
    """ETHTOOL_STXCSUM 0 on a veth of ``ns``: its packets leave with complete checksums."""
    import ctypes
    import socket
    value = ctypes.create_string_buffer(struct.pack("II", ETHTOOL_STXCSUM, 0))
    ifreq = struct.pack("16sP", ifname.encode(), ctypes.addressof(value))
    with ns.entered(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s, SIOCETHTOOL, ifreq)


def checksum_errors(ns) -> dict[str, int]:
    """InCsumErrors of TCP and UDP in ``ns`` (/proc/net/snmp read from inside)."""
    with ns.entered(), open("/proc/thread-self/net/snmp") as f:
        lines = [line.split() for line in f]
    out = {}
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        if names[0] in ("Tcp:", "Udp:"):
            out[names[0][:-1].lower()] = int(values[names.index("InCsumErrors")])
    return out


class Lab:
    """client ns --veth-- backend ns; SERVICE is routed from the client to the backend."""

    SERVICE = "192.0.2.10"     # TEST-NET-1: exists only as a rule in the NAT map

    def __init__(self, sb: Sandbox):
        self.client, self.backend = sb.veth_pair(ipv6=False)
        self.client.ns.add_route(f"{self.SERVICE}/32", gateway=self.backend.ipv4)
        for end in (self.client, self.backend):
            tx_checksum_off(end.ns, end.ifname)


class Echo:
    """TCP and UDP echo servers in ``ns`` on ``addr``, answered from a thread."""

    def __init__(self, ns, addr: str):
        import socket
        import threading
        with ns.entered():
            self.tcp = socket.create_server((addr, 0))
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind((addr, 0))
        self.tcp_port, self.udp_port = self.tcp.getsockname()[1], self.udp.getsockname()[1]
        self.peers: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        import select
        while not self._stop.is_set():
            for s in select.select([self.tcp, self.udp], [], [], 0.05)[0]:
                if s is self.udp:
                    data, peer = s.recvfrom(65536)
                    self.peers.append(("udp", peer))
                    s.sendto(data.upper(), peer)
                    continue
                conn, peer = s.accept()
                self.peers.append(("tcp", peer))
                with conn, contextlib.suppress(OSError):
                    conn.settimeout(2)
                    while data := conn.recv(65536):
                        conn.sendall(data.upper())

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.tcp.close()
        self.udp.close()

    def __enter__(self) -> Echo:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def talk(ns, service: str, tcp_port: int, udp_port: int, payload: bytes) -> dict:
    """From ``ns``: a TCP exchange and a UDP exchange with the service address."""
    import socket
    with ns.entered():
        tcp = socket.create_connection((service, tcp_port), timeout=2)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out = {}
    with tcp, udp:
        out["tcp_peer"] = tcp.getpeername()
        tcp.sendall(payload)
        tcp.shutdown(socket.SHUT_WR)       # the echo ends at our FIN: a full TCP lifecycle
        got = b""
        while chunk := tcp.recv(65536):
            got += chunk
        out["tcp_reply"] = got
        udp.settimeout(2)
        udp.sendto(payload[:1000], (service, udp_port))
        out["udp_reply"], out["udp_from"] = udp.recvfrom(65536)
    return out


def demo() -> None:
    from pybpf.sandbox import Sandbox
    payload = bytes(range(97, 123)) * 2000   # 52 kB: many segments each way
    for variant in ("tc", "xdp"):
        with Sandbox() as sb:
            lab = Lab(sb)
            with Echo(lab.backend.ns, lab.backend.ipv4) as echo, \
                    Nat(variant, (lab.backend.ns, lab.backend.ifname),
                        (lab.client.ns, lab.client.ifname)) as nat:
                nat.add(IPPROTO_TCP, (lab.SERVICE, 80), (lab.backend.ipv4, echo.tcp_port))
                nat.add(IPPROTO_UDP, (lab.SERVICE, 53), (lab.backend.ipv4, echo.udp_port))
                seen = talk(lab.client.ns, lab.SERVICE, 80, 53, payload)
                fwd, rev = nat.counts()
                errors = {**{f"client {k}": v for k, v in checksum_errors(lab.client.ns).items()},
                          **{f"backend {k}": v
                             for k, v in checksum_errors(lab.backend.ns).items()}}
            ok_tcp = seen["tcp_reply"] == payload.upper()
            ok_udp = seen["udp_reply"] == payload[:1000].upper()
            print(f"[{variant}] client {lab.client.ipv4} -> service {lab.SERVICE}:80/tcp, :53/udp"
                  f" = backend {lab.backend.ipv4}:{echo.tcp_port}/tcp, :{echo.udp_port}/udp")
            print(f"  tcp: {len(payload)} bytes echoed {'intact' if ok_tcp else 'WRONG'}, "
                  f"getpeername() = {seen['tcp_peer'][0]}:{seen['tcp_peer'][1]}")
            print(f"  udp: reply {'intact' if ok_udp else 'WRONG'} from "
                  f"{seen['udp_from'][0]}:{seen['udp_from'][1]}")
            print(f"  packets rewritten: {fwd} to the backend, {rev} replies back; "
                  f"checksum errors: {sum(errors.values())}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", choices=("tc", "xdp"), default="tc",
                        help="tc: helpers fix the checksums, one interface; xdp: RFC 1624 "
                             "arithmetic in the program, replies rewritten on --reply-iface")
    parser.add_argument("--iface", required=True,
                        help="where packets to the services arrive (tc: also where replies "
                             "leave: the backend-side interface, ingress and egress)")
    parser.add_argument("--reply-iface",
                        help="xdp: where the backends' replies arrive (e.g. a router's "
                             "backend-facing interface)")
    parser.add_argument("--rule", action="append", required=True,
                        metavar="PROTO:SERVICE:PORT=BACKEND:PORT",
                        help="e.g. tcp:192.0.2.10:80=10.0.0.5:8080 (repeat for more)")


def _parse_rule(text: str):
    import ipaddress
    try:
        left, right = text.split("=")
        proto, saddr, sport = left.split(":")
        baddr, bport = right.split(":")
        proto_n = {"tcp": IPPROTO_TCP, "udp": IPPROTO_UDP}[proto]
        ipaddress.IPv4Address(saddr), ipaddress.IPv4Address(baddr)
        return proto_n, (saddr, int(sport)), (baddr, int(bport))
    except (ValueError, KeyError):
        raise ToolError(f"rule {text!r} is not PROTO:SERVICE:PORT=BACKEND:PORT") from None


def run(args: argparse.Namespace) -> None:
    import socket
    import time
    rules = [_parse_rule(r) for r in args.rule]
    if args.variant == "xdp" and not args.reply_iface:
        raise ToolError("the XDP variant needs --reply-iface: XDP sees only received frames")
    if args.variant == "tc" and args.reply_iface:
        raise ToolError("--reply-iface is for the XDP variant (TC rewrites replies at egress)")
    for name in filter(None, (args.iface, args.reply_iface)):
        try:
            socket.if_nametoindex(name)
        except OSError:
            raise ToolError(f"no interface {name} in this network namespace") from None
    where = (f"{args.iface} (TC ingress and egress)" if args.variant == "tc"
             else f"{args.iface} (XDP), replies on {args.reply_iface} (XDP)")
    with Nat(args.variant, (None, args.iface), (None, args.reply_iface)) as nat:
        for rule in rules:
            nat.add(*rule)
        last = None
        with contextlib.suppress(KeyboardInterrupt):
            # ready (and Ctrl-C safe): tests and scripts wait for this line
            print(f"DNAT on {where}; Ctrl-C to stop", flush=True)
            while True:
                now = nat.counts()
                if now != last:
                    print(f"{now[0]} packets to backends, {now[1]} replies rewritten", flush=True)
                last = now
                time.sleep(1)


TOOL = Tool(
    name="dnat",
    summary="TC/XDP: destination NAT for TCP/UDP over IPv4, replies rewritten back, checksums fixed",
    programs=lambda: [tc_dnat, tc_unnat, xdp_dnat, xdp_unnat],
    demo=demo,
    add_arguments=add_arguments,
    run=run,
)
