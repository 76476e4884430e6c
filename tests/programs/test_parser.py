"""The parser library through its test program: crafted frames, every truncated length.

Each frame is built from layers whose end offsets are known, so the expected
record for a frame cut at any length is exact: the fields of the layers that
fit, zeros for the others, and the verdict SHORT until the last header fits.
"""

import errno
import ipaddress
import struct
from dataclasses import dataclass, field

import pytest

from programs import parser as P
from pybpf.dsl import ETH_P_IPV6, IPPROTO_TCP, xdp
from pybpf.errors import BPFError

pytestmark = pytest.mark.kernel

MAC = bytes.fromhex("020000000001020000000002")
SRC4, DST4 = "192.0.2.1", "198.51.100.7"
SRC6, DST6 = "2001:db8::1", "2001:db8:ffff::42"


@dataclass
class Frame:
    """A frame and, for each layer, where it ends and the fields it sets."""

    data: bytes = b""
    stages: list = field(default_factory=list)   # (end offset, {field: value})
    verdict: int = P.DONE

    def add(self, raw: bytes, fields: dict | None = None, end: int | None = None) -> None:
        self.data += raw
        if fields is not None:
            self.stages.append((len(self.data) if end is None else end, fields))

    def expected(self, length: int):
        """(verdict, Parsed fields) for the frame cut to ``length`` bytes."""
        rec = {f.name: 0 for f in P.Parsed.fields}
        rec["saddr"], rec["daddr"] = [0] * 4, [0] * 4
        for end, fields in self.stages:
            if length < end:
                return P.SHORT, rec
            rec.update(fields)
        return self.verdict, rec


def words(addr: str) -> list[int]:
    packed = ipaddress.ip_address(addr).packed
    out = list(struct.unpack(f">{len(packed) // 4}I", packed))
    return out + [0] * (4 - len(out))


def ethernet(f: Frame, ethertype: int, vlans=()) -> None:
    """Ethernet with 802.1ad/802.1Q tags ``vlans`` = [(tpid, tci)]."""
    raw = MAC
    tags = [t for t in vlans]
    protos = [tpid for tpid, _ in tags] + [ethertype]
    raw += struct.pack("!H", protos[0])
    for i, (_, tci) in enumerate(tags):
        raw += struct.pack("!HH", tci, protos[i + 1])
    tcis = [tci for _, tci in tags] + [0, 0]
    f.add(raw, {"layers": P.LAYER_ETH, "eth_proto": ethertype, "vlans": len(tags),
                "tci0": tcis[0], "tci1": tcis[1], "l3_off": len(raw)})


def ipv4(f: Frame, proto: int, options: bytes = b"", frag: int = 0, ihl: int | None = None,
         version: int = 4) -> None:
    ihl = ihl if ihl is not None else 5 + len(options) // 4
    raw = struct.pack("!BBHHHBBH4s4s", version << 4 | ihl, 0, 20 + len(options) + 40, 1, frag,
                      64, proto, 0, ipaddress.IPv4Address(SRC4).packed,
                      ipaddress.IPv4Address(DST4).packed) + options
    start = len(f.data)
    later = int(frag & 0x1FFF != 0)
    f.add(raw, {"layers": P.LAYER_ETH | P.LAYER_IPV4, "saddr": words(SRC4),
                "daddr": words(DST4), "ihl": ihl, "ip_proto": proto,
                "frag_off": (frag & 0x1FFF) * 8, "later_fragment": later,
                "l4_off": start + len(raw)})


def ipv6(f: Frame, exts: list[tuple[int, bytes]], proto: int, version: int = 6) -> None:
    """IPv6 then extension headers [(type, body)] (body padded so the header is 8n bytes)."""
    chain = [t for t, _ in exts] + [proto]
    raw = struct.pack("!IHBB", version << 28, 0, chain[0], 64)
    raw += ipaddress.IPv6Address(SRC6).packed + ipaddress.IPv6Address(DST6).packed
    f.add(raw, {"layers": P.LAYER_ETH | P.LAYER_IPV6, "saddr": words(SRC6),
                "daddr": words(DST6)})
    frag_off = later = 0
    for i, (kind, body) in enumerate(exts):
        if kind == 44:  # fragment header: body is (offset in bytes, more fragments)
            off, more = body
            f.add(struct.pack("!BBHI", chain[i + 1], 0, off | more, 0x1234))
            frag_off, later = off, int(off != 0)
        else:
            assert (len(body) + 2) % 8 == 0
            f.add(bytes([chain[i + 1], (len(body) + 2) // 8 - 1]) + body)
    f.stages.append((len(f.data), {"layers": P.LAYER_ETH | P.LAYER_IPV6 | P.LAYER_EXT,
                                   "ip_proto": proto, "ext_count": len(exts),
                                   "frag_off": frag_off, "later_fragment": later,
                                   "l4_off": len(f.data)}))


def layers_so_far(f: Frame) -> int:
    return max(s[1].get("layers", 0) for s in f.stages)


def tcp(f: Frame, flags: int = 0x02, options: bytes = b"", mss: int = 0, doff=None) -> None:
    doff = doff if doff is not None else 5 + len(options) // 4
    raw = struct.pack("!HHIIBBHHH", 43210, 443, 1, 0, doff << 4, flags, 1024, 0, 0) + options
    start = len(f.data)
    f.add(raw, {"layers": layers_so_far(f) | P.LAYER_TCP, "sport": 43210, "dport": 443,
                "tcp_flags": flags, "doff": doff, "mss": mss, "payload_off": start + len(raw)})


def udp(f: Frame) -> None:
    start = len(f.data)
    f.add(struct.pack("!HHHH", 5353, 53, 8, 0),
          {"layers": layers_so_far(f) | P.LAYER_UDP, "sport": 5353, "dport": 53,
           "payload_off": start + 8})


def icmp(f: Frame, kind: int) -> None:
    start = len(f.data)
    f.add(struct.pack("!BBHI", kind, 0, 0, 0),
          {"layers": layers_so_far(f) | P.LAYER_ICMP, "icmp_type": kind,
           "payload_off": start + 8})


MSS_OPTS = bytes([1, 1, 2, 4, 0x05, 0xB4, 1, 3, 3, 7, 0, 0])   # NOP NOP MSS=1460 NOP WS=7 EOL
WS_FIRST = bytes([3, 3, 7, 1, 2, 4, 0x23, 0x28])                # WS, NOP, MSS=9000
Q, AD = 0x8100, 0x88A8
HOP, ROUTING, FRAGMENT, DSTOPTS = 0, 43, 44, 60


def case(name):
    f = Frame()
    if name == "ipv4-tcp":
        ethernet(f, 0x0800)
        ipv4(f, 6)
        tcp(f)
    elif name == "vlan-ipv4-udp":
        ethernet(f, 0x0800, [(Q, 0x2064)])
        ipv4(f, 17)
        udp(f)
    elif name == "qinq-ipv4opts-tcpopts":
        ethernet(f, 0x0800, [(AD, 100), (Q, 0xE0C8)])
        ipv4(f, 6, options=bytes([0x94, 4, 0, 0, 1, 1, 1, 0]))   # router alert, NOPs, EOL
        tcp(f, 0x12, MSS_OPTS, mss=1460)
    elif name == "qinq-ipv6-tcp-ws-first":
        ethernet(f, 0x86DD, [(Q, 5), (Q, 6)])
        ipv6(f, [], 6)
        tcp(f, 0x02, WS_FIRST, mss=9000)
    elif name == "ipv6-tcp":
        ethernet(f, 0x86DD)
        ipv6(f, [], 6)
        tcp(f, 0x10)
    elif name == "ipv6-ext-udp":
        ethernet(f, 0x86DD)
        ipv6(f, [(HOP, bytes([5, 2, 0, 0, 1, 0])), (ROUTING, bytes(14)),
                 (DSTOPTS, bytes([1, 4, 0, 0, 0, 0]))], 17)
        udp(f)
    elif name == "ipv6-four-ext-icmp6":
        ethernet(f, 0x86DD)
        ipv6(f, [(HOP, bytes(6)), (DSTOPTS, bytes(14)), (ROUTING, bytes(6)),
                 (FRAGMENT, (0, 1))], 58)
        icmp(f, 128)
    elif name == "ipv6-first-fragment-tcp":
        ethernet(f, 0x86DD)
        ipv6(f, [(FRAGMENT, (0, 1))], 6)
        tcp(f)
    elif name == "ipv6-later-fragment":
        ethernet(f, 0x86DD)
        ipv6(f, [(FRAGMENT, (1448, 0))], 6)
        f.add(bytes(20))
    elif name == "ipv4-later-fragment":
        ethernet(f, 0x0800)
        ipv4(f, 17, frag=0x2000 | 185)
        f.add(bytes(8))
    elif name == "ipv4-icmp":
        ethernet(f, 0x0800, [(Q, 7)])
        ipv4(f, 1)
        icmp(f, 8)
    elif name == "arp":
        ethernet(f, 0x0806)
        f.add(bytes(28))
    else:
        raise KeyError(name)
    return f


CASES = ["ipv4-tcp", "vlan-ipv4-udp", "qinq-ipv4opts-tcpopts", "qinq-ipv6-tcp-ws-first",
         "ipv6-tcp", "ipv6-ext-udp", "ipv6-four-ext-icmp6", "ipv6-first-fragment-tcp",
         "ipv6-later-fragment", "ipv4-later-fragment", "ipv4-icmp", "arp"]


@pytest.fixture(scope="module")
def prog():
    with P.parse_test.load() as loaded:
        yield loaded


def run(prog, data: bytes):
    ret = prog.test_run(data).retval
    rec = prog["parsed"][0]
    got = {f.name: getattr(rec, f.name) for f in P.Parsed.fields}
    got["saddr"], got["daddr"] = list(got["saddr"]), list(got["daddr"])
    return ret, got


@pytest.mark.parametrize("name", CASES)
def test_whole_frame(prog, name):
    f = case(name)
    verdict, want = f.expected(len(f.data))
    assert verdict == P.DONE
    assert run(prog, f.data) == (verdict, want)


@pytest.mark.parametrize("name", CASES)
def test_every_truncated_length(prog, name):
    f = case(name)
    for length in range(14, len(f.data) + 1):
        assert run(prog, f.data[:length]) == f.expected(length), f"{name} cut to {length} bytes"


def test_frames_shorter_than_ethernet_are_refused_by_test_run(prog):
    for length in range(0, 14):
        with pytest.raises(BPFError) as info:
            prog.test_run(bytes(length))
        assert info.value.errno == errno.EINVAL


@pytest.mark.parametrize("mangle,verdict", [
    (lambda f: (ethernet(f, 0x0800), ipv4(f, 6, ihl=4), f.add(bytes(40))), P.BAD),
    (lambda f: (ethernet(f, 0x0800), ipv4(f, 6, version=6), f.add(bytes(40))), P.BAD),
    (lambda f: (ethernet(f, 0x86DD), ipv6(f, [], 6, version=4), f.add(bytes(40))), P.BAD),
    (lambda f: (ethernet(f, 0x0800), ipv4(f, 6), tcp(f, doff=4), f.add(bytes(20))), P.BAD),
    (lambda f: (ethernet(f, 0x86DD), ipv6(f, [(HOP, bytes(6))] * 5, 17), udp(f)), P.BAD),
    (lambda f: (ethernet(f, 0x0800), ipv4(f, 6, ihl=15), f.add(bytes(20))), P.SHORT),
])
def test_malformed(prog, mangle, verdict):
    f = Frame()
    mangle(f)
    assert run(prog, f.data)[0] == verdict


def test_three_vlan_tags_stop_after_two(prog):
    """A third tag is left unparsed: the EtherType reported is the third TPID."""
    f = Frame()
    ethernet(f, Q, [(AD, 1), (Q, 2)])
    f.add(struct.pack("!HH", 3, 0x0800) + bytes(40))
    ret, got = run(prog, f.data)
    assert (ret, got["layers"], got["eth_proto"], got["vlans"]) == (P.DONE, P.LAYER_ETH, Q, 2)


def tags_then_ipv6_tcp(max_vlans: int):
    """Up to ``max_vlans`` tags, then IPv6 with extension headers and TCP with options."""
    @xdp
    def after_tags(p):
        src = P.Direct(p, on_short=P.SHORT, on_bad=P.BAD)
        l2 = P.ethernet(p, src, max_vlans=max_vlans)
        with p.if_(l2.proto == ETH_P_IPV6):
            v6 = P.ipv6(p, src, l2.l3_off)
            with p.if_(v6.proto == IPPROTO_TCP):
                P.tcp(p, src, v6.l4_off, parse_mss=True)
        p.return_(P.DONE)
    return after_tags


def test_what_follows_the_tags_is_verified_once():
    """L3 after 0, 1 or 2 tags is one verifier state, not three: tags add little to the
    instructions the verifier processes (they once tripled them)."""
    processed = []
    for max_vlans in (0, 2):
        with tags_then_ipv6_tcp(max_vlans).load() as loaded:
            processed.append(loaded.program.info().verified_insns)
    untagged, tagged = processed
    assert tagged < 1.25 * untagged, processed


def test_tcp_options_without_mss(prog):
    f = Frame()
    ethernet(f, 0x0800)
    ipv4(f, 6)
    tcp(f, 0x02, bytes([1, 1, 4, 2]), mss=0)  # NOP NOP SACKOK
    assert run(prog, f.data) == f.expected(len(f.data))


def test_library_is_shared_not_copied():
    """The other tools import the parser's functions (chapter 5: a library)."""
    import importlib
    for mod in ("xdp_blocker", "proto_counter", "tc_logger", "syn_filter"):
        try:
            m = importlib.import_module(f"programs.{mod}")
        except ModuleNotFoundError:
            continue
        assert m.parser is P or getattr(m, "P", None) is P
