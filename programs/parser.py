"""Chapter 5: a full packet parser, as a DSL library the other programs import.

Each function takes ``p`` (the program's builder) and a packet *source*,
emits the bounds checks the verifier needs, and returns pointers to the
parsed headers plus the offsets and values a caller wants next::

    src = Direct(p)                       # XDP/TC: direct packet access
    l2 = ethernet(p, src)                 # Ethernet + up to two VLAN tags (802.1Q/802.1ad)
    with p.if_(l2.proto == ETH_P_IP):
        v4 = ipv4(p, src, l2.l3_off)      # IPv4 with options (ihl), fragments
        with p.if_(v4.proto == IPPROTO_TCP):
            t = tcp(p, src, v4.l4_off)    # TCP with options (doff)

Sources decide how bytes are reached: ``Direct`` reads the packet in place
(``p.packet.header``, XDP and TC), ``Copied`` copies each header to the
stack with ``bpf_skb_load_bytes`` (socket filters, which have no direct
packet access). A packet that ends inside a header returns the source's
``on_short`` verdict; a malformed one (ihl < 5, doff < 5, an IPv6
extension chain longer than the parser follows) returns ``on_bad``.

Offsets are u32 variables; every header at a variable offset is bounded
(offset <= 0xFFFF) and checked against the packet end before any read.
The ``parser`` tool's program (``parse_test``) runs the whole parser and
exports every field into a map, so tests can check it with test_run.
"""


import ipaddress
import struct

from programs.tool import Tool
from pybpf._record import record
from pybpf.asm import Reg
from pybpf.dsl import (
    ETH_P_8021AD,
    ETH_P_8021Q,
    ETH_P_IP,
    ETH_P_IPV6,
    IPPROTO_DSTOPTS,
    IPPROTO_FRAGMENT,
    IPPROTO_HOPOPTS,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_ROUTING,
    IPPROTO_TCP,
    IPPROTO_UDP,
    TCP,
    UDP,
    XDP_ABORTED,
    XDP_DROP,
    XDP_PASS,
    Array,
    Ethernet,
    IPv4,
    IPv6,
    IPv6Ext,
    IPv6Frag,
    Ptr,
    Struct,
    Value,
    Vlan,
    be16,
    be32,
    u8,
    u32,
    xdp,
)
from pybpf.dsl.pointers import StackRegion
from pybpf.types import Array as Words

MAX_IPV6_EXT = 4  # extension headers followed before giving up (on_bad)
TCPOPT_EOL, TCPOPT_NOP, TCPOPT_MSS = 0, 1, 2
MAX_TCP_OPTIONS = 4  # options scanned for MSS (SYNs carry MSS first or after a few NOPs)


# -- packet sources ---------------------------------------------------------------------------

class _Source:
    """What both sources share: the verdicts for a short packet and for a malformed header."""

    def __init__(self, p, *, on_short=None, on_bad=None):
        self.p = p
        self.on_short = p.kind.default if on_short is None else on_short
        self.on_bad = self.on_short if on_bad is None else on_bad

    def bad(self) -> None:
        self.p.return_(self.on_bad)


class Direct(_Source):
    """Headers read in place (XDP, TC, cgroup skb): ``p.packet.header`` with its bounds check."""

    # Which IPv6 extension header the unrolled walk puts on the fall-through, the path the
    # verifier explores first and keeps the states of (later paths are pruned when a kept state
    # covers theirs). Here the offsets are added to packet pointers, so the verifier tracks
    # their ranges exactly: options first, whose lengths (8..2048 bytes each) give the widest
    # ranges, which cover those of the paths through fragment headers (8 bytes each) at the
    # joins of the walk. With the fragment first, tc_logger's verification processes 1637
    # instructions instead of 915.
    fragment_first = False

    def header(self, t, at) -> Ptr:
        """A pointer to a ``t`` at byte ``at`` (int or u32 value); short packet -> on_short."""
        return self.p.packet.header(t, at=at, on_short=self.on_short)

    def header_after(self, prev: Ptr, t, at) -> Ptr:
        """The ``t`` right after header ``prev``, at byte ``at``: a constant offset from ``prev``."""
        return self.p.packet.header(t, after=prev, on_short=self.on_short)

    def require(self, end) -> None:
        """The packet holds ``end`` bytes (the end of options that are skipped, not read)."""
        self.p.packet.require(end, on_short=self.on_short)


class Copied(_Source):
    """Headers copied to the stack with ``bpf_skb_load_bytes`` (socket filters, TC)."""

    # Offsets are helper arguments the verifier never needs exactly, so the paths through the
    # IPv6 extension headers differ in frag_off: unknown after a fragment header, 0 otherwise.
    # Unknown covers 0 and not the reverse: the fragment goes first (see Direct.fragment_first).
    fragment_first = True

    def __init__(self, p, *, on_short=None, on_bad=None):
        super().__init__(p, on_short=on_short, on_bad=on_bad)
        self._buffers: dict = {}

    def header(self, t, at) -> Ptr:
        p = self.p
        buf = self._buffers.get(t)
        if buf is None:  # one buffer per header type; the helper fills every byte
            buf = self._buffers[t] = Ptr(p, t, Reg.R10, p.alloc(t.size, 8), StackRegion())
        err = p.call("skb_load_bytes", p.ctx, at, buf, t.size)
        with p.if_(err != 0):
            p.return_(self.on_short)
        return buf

    def header_after(self, prev: Ptr, t, at) -> Ptr:
        """The ``t`` right after header ``prev``, at byte ``at``."""
        return self.header(t, at)

    def require(self, end) -> None:
        """The packet holds ``end`` bytes: compared with skb->len, nothing copied."""
        with self.p.if_(end > self.p.ctx.len):
            self.p.return_(self.on_short)


# -- layers -----------------------------------------------------------------------------------
# The results are plain holders compared by identity: their fields are DSL values, whose ==
# builds a condition.

@record(frozen=False, slots=False, eq=False)
class L2:
    """Ethernet and VLAN tags: the inner EtherType (be16) and where L3 starts."""

    eth: Ptr
    proto: Value    # be16: the EtherType after the VLAN tags
    l3_off: Value   # u32
    vlans: Value    # u32: 0, 1 or 2 tags
    tci: tuple      # (outer, inner) be16 TCIs, 0 when absent


def ethernet(p, src, *, max_vlans: int = 2) -> L2:
    """Ethernet, then up to ``max_vlans`` 802.1Q/802.1ad tags.

    L3 starts at byte 14, 18 or 22, but the offset is not written as those constants: the
    verifier would keep three states, none covering another, and check everything after the
    tags once per tag count. The tag size is read from the packet instead (``_tag_size``)
    and the first tag is read at ``size + 10``: L3's offset is then a range, 14..28 on the
    two-tag path the verifier explores first, whose state covers the other paths'. Read at
    variable offsets, the tags' bounds checks also leave alone the range the verifier knows
    for the packet start, which in that first state must be no longer than for an untagged
    frame (14 bytes).
    """
    eth = src.header(Ethernet, 0)
    proto = p.var(be16, eth.proto)
    off = p.var(u32, Ethernet.size)
    vlans = p.var(u32, 0)
    tcis = [p.var(be16, 0) for _ in range(max_vlans)]
    done = p.label("l2done")
    for i in range(max_vlans):
        p.branch((proto != ETH_P_8021Q) & (proto != ETH_P_8021AD), done, True)
        if i == 0:
            size = _tag_size(eth)
            tag = src.header(Vlan, size + (Ethernet.size - Vlan.size))
        else:
            tag = src.header_after(tag, Vlan, off)
        off.set(off + size)
        tcis[i].set(tag.tci)
        proto.set(tag.proto)
        vlans.set(i + 1)
    p.mark(done)
    return L2(eth, proto, off, vlans, tuple(tcis))


def _tag_size(eth: Ptr) -> Value:
    """Vlan.size (4), read from the packet: the outer TPID's first byte >> 5.

    Both TPIDs start with a byte in 0x80..0x9F (0x81 for 802.1Q, 0x88 for 802.1ad); the
    size serves a second tag too, since the outer TPID was one. Loaded apart from the
    EtherType just compared, it is a value the verifier can only bound (0..7).
    """
    return eth.proto.ptr.view(u8).value >> 5


assert ETH_P_8021Q >> 13 == ETH_P_8021AD >> 13 == Vlan.size


@record(frozen=False, slots=False, eq=False)
class L3:
    """An IPv4 or IPv6 header: the L4 protocol, where L4 starts, fragment state."""

    ip: Ptr
    proto: Value     # u32: IPPROTO_* of the payload (after IPv6 extension headers)
    l4_off: Value    # u32
    later_fragment: Value  # u32: 1 when this is a fragment other than the first (no L4 header)
    ext_count: Value | None = None   # IPv6: extension headers skipped
    frag_off: Value | None = None    # fragment offset in bytes (0 when not fragmented)

    @property
    def is_later_fragment(self):
        """A condition: a fragment other than the first (tests the offset, no flag variable)."""
        return self.frag_off != 0


class IPv4L3:
    """L3 for IPv4: the fields are read from the header when used (no code for unused ones)."""

    def __init__(self, p, ip: Ptr, l4_off: Value):
        self.p, self.ip, self.l4_off = p, ip, l4_off
        self.ext_count = None

    @property
    def proto(self) -> Value:
        return self.ip.protocol.cast(u32)

    @property
    def frag_off(self) -> Value:
        return (self.ip.frag_off.host() & 0x1FFF) << 3

    @property
    def later_fragment(self) -> Value:
        return _flag(self.p, self.is_later_fragment)

    @property
    def is_later_fragment(self):
        """A condition: a fragment other than the first (the offset bits, in network order)."""
        return (self.ip.frag_off & 0x1FFF) != 0


def ipv4(p, src, off) -> IPv4L3:
    """IPv4 at ``off``: version and ihl checked, options skipped (all of them in the packet)."""
    ip = src.header(IPv4, off)
    ver_ihl = ip.ver_ihl
    with p.if_((ver_ihl & 0xF0) != 0x40):
        src.bad()
    hlen = (ver_ihl & 0xF) << 2
    with p.if_(hlen < IPv4.size):
        src.bad()
    l4 = p.var(u32, off + hlen)
    with p.if_(hlen > IPv4.size):  # options: they must be in the packet too
        src.require(l4)
    return IPv4L3(p, ip, l4)


def _flag(p, cond) -> Value:
    """A u32 variable: 1 when ``cond`` holds, else 0."""
    v = p.var(u32, 0)
    with p.if_(cond):
        v.set(1)
    return v


def ipv6_header(p, src, off) -> Ptr:
    """The fixed IPv6 header at ``off``, its version checked (else on_bad)."""
    ip = src.header(IPv6, off)
    with p.if_((ip.view(u8).value >> 4) != 6):   # the version: the first byte's high nibble
        src.bad()
    return ip


def ipv6(p, src, off, *, max_ext: int = MAX_IPV6_EXT, ip: Ptr | None = None) -> L3:
    """IPv6 at ``off`` and up to ``max_ext`` extension headers (hop-by-hop, routing,
    fragment, destination options), unrolled; a longer chain returns on_bad.

    ``max_ext=0`` reads the fixed header only (``proto`` is then its nexthdr). ``ip`` is
    the fixed header if the caller has read it already with ``ipv6_header``, to copy fields
    (the addresses) before the walk: the verifier then checks the copies once, not once per
    path through the extension headers.
    """
    if ip is None:
        ip = ipv6_header(p, src, off)
    if not max_ext:
        zero = p.const(0, u32)
        return L3(ip, ip.nexthdr.cast(u32), off + IPv6.size, zero, zero, zero)
    nexthdr = p.var(u32, ip.nexthdr)
    l4 = p.var(u32, off + IPv6.size)
    count = p.var(u32, 0)
    frag_off = p.var(u32, 0)
    done = p.label("ext_done")

    def options() -> None:   # hop-by-hop, routing, destination options: 8 * (hdrlen + 1) bytes
        ext = src.header(IPv6Ext, l4)
        length = (ext.hdrlen.cast(u32) + 1) << 3
        nexthdr.set(ext.nexthdr)
        l4.set(l4 + length)
        src.require(l4)   # the whole header is in the packet

    def fragment() -> None:
        frag = src.header(IPv6Frag, l4)
        nexthdr.set(frag.nexthdr)
        frag_off.set(frag.frag_off.host() & 0xFFF8)   # offset in 8-byte units, already << 3
        l4.set(l4 + IPv6Frag.size)

    is_options = ((nexthdr == IPPROTO_HOPOPTS) | (nexthdr == IPPROTO_ROUTING)
                  | (nexthdr == IPPROTO_DSTOPTS))
    for _ in range(max_ext):
        # if/else nested by hand: an elif_ chain of three falls through (see test_dsl_gaps.py)
        if src.fragment_first:
            with p.if_(nexthdr == IPPROTO_FRAGMENT):
                fragment()
            with p.else_():
                p.branch(~is_options, done, True)
                options()
        else:
            with p.if_(is_options):
                options()
            with p.else_():
                p.branch(nexthdr != IPPROTO_FRAGMENT, done, True)
                fragment()
        count.set(count + 1)
    with p.if_(is_options | (nexthdr == IPPROTO_FRAGMENT)):
        src.bad()   # more extension headers than we follow
    p.mark(done)
    return L3(ip, nexthdr, l4, _flag(p, frag_off != 0), count, frag_off)


def _goto(p, label: str) -> None:
    from pybpf.asm import Goto
    p.emit(Goto, target=label)


class TcpOption(Struct):
    """The first four bytes of a TCP option (kind, length, a 16-bit value such as the MSS)."""

    kind: u8
    length: u8
    data: be16


@record(frozen=False, slots=False, eq=False)
class L4:
    """A TCP or UDP header and where its payload starts."""

    hdr: Ptr
    payload_off: Value   # u32
    mss: Value | None = None   # TCP: MSS option value (0 when absent)


def tcp(p, src, off, *, parse_mss: bool = False) -> L4:
    """TCP at ``off``: doff checked, options in the packet; optionally the MSS option."""
    t = src.header(TCP, off)
    hlen = (t.doff_res >> 4) << 2
    with p.if_(hlen < TCP.size):
        src.bad()
    payload = p.var(u32, off + hlen)
    with p.if_(hlen > TCP.size):
        src.require(payload)
    mss = None
    if parse_mss:
        mss = p.var(u32, 0)
        opt = p.var(u32, off + TCP.size)
        done = p.label("opts_done")
        for _ in range(MAX_TCP_OPTIONS):
            p.branch(opt >= payload, done, True)
            kind = src.header(u8, opt).value
            p.branch(kind == TCPOPT_EOL, done, True)
            with p.if_(kind == TCPOPT_NOP):
                opt.set(opt + 1)
            with p.else_():
                with p.if_(opt + 4 > payload):   # too short to hold an MSS: stop
                    _goto(p, done)
                o = src.header(TcpOption, opt)
                with p.if_(kind == TCPOPT_MSS):
                    mss.set(o.data.host())
                    _goto(p, done)
                length = o.length.cast(u32)
                with p.if_(length < 2):
                    _goto(p, done)   # malformed option: stop scanning
                opt.set(opt + length)
        p.mark(done)
    return L4(t, payload, mss)


def udp(p, src, off) -> L4:
    """UDP at ``off`` (8 bytes)."""
    u = src.header(UDP, off)
    return L4(u, off + UDP.size)


class Icmp(Struct):
    """ICMP/ICMPv6 header start; ``headers.ICMP``'s ``type`` field is shadowed by ``Ptr.type``."""

    icmp_type: u8
    code: u8
    checksum: be16
    rest: be32


def icmp(p, src, off) -> Ptr:
    """ICMP or ICMPv6 at ``off`` (icmp_type, code, checksum, 4 more bytes)."""
    return src.header(Icmp, off)


# -- the test program: every field into a map ----------------------------------------------------

LAYER_ETH, LAYER_IPV4, LAYER_IPV6, LAYER_EXT, LAYER_TCP, LAYER_UDP, LAYER_ICMP = (
    1 << i for i in range(7))


class Parsed(Struct):
    """What parse_test saw, host order except the addresses (raw network-order words)."""

    layers: u32       # LAYER_* bits of the layers fully parsed
    eth_proto: u32    # the EtherType after VLAN tags
    vlans: u32
    tci0: u32
    tci1: u32
    l3_off: u32
    saddr: Words(be32, 4)   # IPv4: word 0 only
    daddr: Words(be32, 4)
    ihl: u32
    ip_proto: u32     # L4 protocol (after IPv6 extension headers)
    ext_count: u32
    frag_off: u32
    later_fragment: u32
    l4_off: u32
    sport: u32
    dport: u32
    tcp_flags: u32
    doff: u32
    mss: u32
    payload_off: u32
    icmp_type: u32


parsed = Array(u32, Parsed, max_entries=1)
SHORT, BAD, DONE = XDP_DROP, XDP_ABORTED, XDP_PASS


@xdp
def parse_test(p):
    """Parse the frame, writing each layer's fields into parsed[0] as it completes."""
    zero = p.stack(u32, 0)
    with parsed.lookup(zero) as out:
        for f in Parsed.fields:   # start from zero: fields of layers not reached stay 0
            if f.type is u32:
                setattr(out, f.name, 0)
            else:
                for i in range(4):
                    getattr(out, f.name)[i] = 0
        src = Direct(p, on_short=SHORT, on_bad=BAD)
        l2 = ethernet(p, src)
        out.eth_proto = l2.proto.host()
        out.vlans = l2.vlans
        out.tci0 = l2.tci[0].host()
        out.tci1 = l2.tci[1].host()
        out.l3_off = l2.l3_off
        out.layers = LAYER_ETH
        with p.if_(l2.proto == ETH_P_IP):
            v4 = ipv4(p, src, l2.l3_off)
            out.saddr[0] = v4.ip.saddr
            out.daddr[0] = v4.ip.daddr
            out.ihl = v4.ip.ver_ihl & 0xF
            out.ip_proto = v4.proto
            out.frag_off = v4.frag_off
            out.later_fragment = v4.later_fragment
            out.l4_off = v4.l4_off
            out.layers = LAYER_ETH | LAYER_IPV4
            _l4(p, src, out, v4, LAYER_ETH | LAYER_IPV4, IPPROTO_ICMP)
        with p.elif_(l2.proto == ETH_P_IPV6):
            ip6 = ipv6_header(p, src, l2.l3_off)
            for i in range(4):
                out.saddr[i] = ip6.saddr[i]
                out.daddr[i] = ip6.daddr[i]
            out.layers = LAYER_ETH | LAYER_IPV6
            v6 = ipv6(p, src, l2.l3_off, ip=ip6)
            out.ip_proto = v6.proto
            out.ext_count = v6.ext_count
            out.frag_off = v6.frag_off
            out.later_fragment = v6.later_fragment
            out.l4_off = v6.l4_off
            out.layers = LAYER_ETH | LAYER_IPV6 | LAYER_EXT
            _l4(p, src, out, v6, LAYER_ETH | LAYER_IPV6 | LAYER_EXT, IPPROTO_ICMPV6)
        p.return_(DONE)
    p.return_(BAD)


def _l4(p, src, out, l3: L3, layers: int, icmp_proto: int) -> None:
    with p.if_(l3.later_fragment != 0):
        p.return_(DONE)
    with p.if_(l3.proto == IPPROTO_TCP):
        t = tcp(p, src, l3.l4_off, parse_mss=True)
        out.sport = t.hdr.source.host()
        out.dport = t.hdr.dest.host()
        out.tcp_flags = t.hdr.flags
        out.doff = t.hdr.doff_res >> 4
        out.mss = t.mss
        out.payload_off = t.payload_off
        out.layers = layers | LAYER_TCP
    with p.else_():   # nested by hand: an elif_ chain of three falls through
        with p.if_(l3.proto == IPPROTO_UDP):
            u = udp(p, src, l3.l4_off)
            out.sport = u.hdr.source.host()
            out.dport = u.hdr.dest.host()
            out.payload_off = u.payload_off
            out.layers = layers | LAYER_UDP
        with p.elif_(l3.proto == icmp_proto):
            ic = icmp(p, src, l3.l4_off)
            out.icmp_type = ic.icmp_type
            out.payload_off = l3.l4_off + Icmp.size
            out.layers = layers | LAYER_ICMP


# -- the tool -----------------------------------------------------------------------------------

def _frames():
    """A few crafted frames for the demo (see tests/programs/test_parser.py for many more)."""
    mac = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"
    v4 = (bytes([0x46, 0, 0, 52, 0, 1, 0x40, 0, 64, 6, 0, 0]) + bytes([10, 0, 0, 1, 10, 0, 0, 2])
          + b"\x01\x01\x01\x00")
    tcp_syn = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 0x60, 0x02, 65535, 0, 0) + \
        b"\x02\x04\x05\xb4"
    qinq = (mac + b"\x88\xa8" + struct.pack("!H", 100) + b"\x81\x00" + struct.pack("!H", 200)
            + b"\x08\x00" + v4 + tcp_syn)
    v6 = (bytes([0x60, 0, 0, 0]) + struct.pack("!HBB", 24, 0, 64)
          + ipaddress.IPv6Address("fd00::1").packed + ipaddress.IPv6Address("fd00::2").packed)
    hop = bytes([44, 0]) + b"\x01\x04\0\0\0\0"
    frag = bytes([17, 0]) + struct.pack("!HI", 0, 7)
    udp6 = mac + b"\x86\xdd" + v6 + hop + frag + struct.pack("!HHHH", 5353, 53, 8, 0)
    return [("QinQ + IPv4 options + TCP SYN with MSS", qinq),
            ("IPv6 + hop-by-hop + fragment + UDP", udp6),
            ("the same, cut to 60 bytes", udp6[:60])]


def describe(r: Parsed) -> str:
    """One line for a Parsed record."""
    names = ["eth", "ipv4", "ipv6", "ext", "tcp", "udp", "icmp"]
    layers = "+".join(n for i, n in enumerate(names) if r.layers >> i & 1)
    out = [f"layers={layers}", f"ethertype={r.eth_proto:#06x}"]
    if r.vlans:
        out.append("vlans=" + ",".join(str(t & 0xFFF) for t in (r.tci0, r.tci1)[:r.vlans]))
    if r.layers & LAYER_IPV4:
        out.append(f"{_addr4(r.saddr[0])} > {_addr4(r.daddr[0])} ihl={r.ihl}")
    if r.layers & LAYER_IPV6:
        out.append(f"{_addr6(r.saddr)} > {_addr6(r.daddr)}")
    if r.layers & LAYER_EXT:
        out.append(f"ext={r.ext_count}")
    if r.layers & (LAYER_TCP | LAYER_UDP):
        out.append(f"proto={r.ip_proto} ports {r.sport}>{r.dport}")
    if r.layers & LAYER_TCP:
        out.append(f"flags={r.tcp_flags:#04x} doff={r.doff} mss={r.mss}")
    return " ".join(out)


def _addr4(word: int) -> str:
    return str(ipaddress.IPv4Address(struct.pack(">I", word)))


def _addr6(words) -> str:
    return str(ipaddress.IPv6Address(b"".join(struct.pack(">I", w) for w in words)))


def demo() -> None:
    verdicts = {SHORT: "short", BAD: "malformed", DONE: "parsed"}
    with parse_test.load() as prog:
        for title, frame in _frames():
            ret = prog.test_run(frame).retval
            rec = prog["parsed"][0]
            print(f"  {title} ({len(frame)} bytes): {verdicts.get(ret, ret)}")
            print(f"    {describe(rec)}")


TOOL = Tool(
    name="parser",
    summary="full packet parser (Ethernet, QinQ, IPv4 options, IPv6 ext headers, TCP/UDP)",
    programs=lambda: [parse_test],
    demo=demo,
)
