"""Representative DSL programs whose listings are kept as golden files (see test_golden.py)."""

from pybpf.dsl import (
    ETH_P_IP,
    IPPROTO_TCP,
    TCP,
    XDP_DROP,
    XDP_PASS,
    Array,
    Ethernet,
    IPv4,
    LpmTrie,
    RingBuf,
    Struct,
    be16,
    be32,
    subprog,
    u8,
    u32,
    u64,
    xdp,
)


class BlockKey(Struct):
    prefixlen: u32
    addr: be32


blocked = LpmTrie(BlockKey, u64, max_entries=1024)


@xdp
def ip_blocker(p):
    """The guide's first program (docs/dsl.md)."""
    eth = p.packet.header(Ethernet)
    with p.if_(eth.proto != ETH_P_IP):
        p.return_(XDP_PASS)
    ip = p.packet.header(IPv4, after=eth)
    key = p.stack(BlockKey, prefixlen=32, addr=ip.saddr)
    with blocked.lookup(key) as hits:
        hits.atomic_add(1)
        p.return_(XDP_DROP)
    p.return_(XDP_PASS)


class Option(Struct):
    kind: u8
    length: u8


class Mss(Struct):
    kind: u8
    length: u8
    value: be16


TCPOPT_EOL, TCPOPT_NOP, TCPOPT_MSS = 0, 1, 2
mss_seen = Array(u32, u64, max_entries=1)


@xdp
def tcp_mss(p):
    """IPv4 (with options) then TCP (with options): count SYNs by the MSS they announce."""
    eth = p.packet.header(Ethernet)
    with p.if_(eth.proto != ETH_P_IP):
        p.return_(XDP_PASS)
    ip = p.packet.header(IPv4, after=eth)
    with p.if_((ip.protocol != IPPROTO_TCP) | (ip.frag_off.host() & 0x3FFF != 0)):
        p.return_(XDP_PASS)
    tcp = p.packet.header(TCP, after=ip)
    with p.if_(~tcp.syn):
        p.return_(XDP_PASS)
    start = p.var(u32, 14 + ip.header_length + 20)
    end = p.var(u32, 14 + ip.header_length + tcp.header_length)
    mss = p.var(u32, 0)
    for _ in p.range(8):
        with p.if_(start >= end):
            p.break_()
        opt = p.packet.header(Option, at=start)
        with p.if_(opt.kind == TCPOPT_EOL):
            p.break_()
        with p.elif_(opt.kind == TCPOPT_NOP):
            start += 1
        with p.elif_(opt.kind == TCPOPT_MSS):
            m = p.packet.header(Mss, at=start)
            mss.set(m.value.host())
            p.break_()
        with p.else_():
            with p.if_(opt.length < 2):
                p.break_()
            start += opt.length
    with mss_seen.lookup(p.const(0, u32)) as seen:
        seen.set(mss)
    p.return_(XDP_PASS)


class Event(Struct):
    ts: u64
    saddr: be32
    daddr: be32
    length: u32
    proto: u8
    ttl: u8


events = RingBuf(1 << 16)


@subprog
def bucket(p, length):
    """A log2-ish size class of the packet length."""
    with p.if_(length < 128):
        p.return_(0)
    with p.elif_(length < 512):
        p.return_(1)
    p.return_(2)


@xdp
def flow_events(p):
    """One ring buffer record per IPv4 packet (a local function picks its size class)."""
    eth, ip = p.packet.headers(Ethernet, IPv4)
    with p.if_(eth.proto != ETH_P_IP):
        p.return_(XDP_PASS)
    length = ip.tot_len.host()
    with p.reserve(events, Event) as e:
        e.ts = p.call("ktime_get_ns")
        e.saddr = ip.saddr
        e.daddr = ip.daddr
        e.length = length + bucket(p, length) * 0x10000
        e.proto = ip.protocol
        e.ttl = ip.ttl
    p.return_(XDP_PASS)


PROGRAMS = {"ip_blocker": ip_blocker, "tcp_mss": tcp_mss, "flow_events": flow_events}
