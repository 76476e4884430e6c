"""Network headers as pybpf structs, with their fixed sizes and derived fields.

Multi-byte fields are big-endian types (``be16``/``be32``): compare them with
plain constants (converted to network order at build time) or call
``.host()`` before arithmetic. Bit fields of the C headers are whole bytes
here, with ``computed`` accessors for the parts (``IPv4.ihl``, ``TCP.syn``).
``header_length`` gives a header's length in bytes, variable for IPv4 and
TCP (options), so ``p.packet.header(TCP, after=ip)`` knows where TCP starts.
"""

from __future__ import annotations

from pybpf.dsl.pointers import computed
from pybpf.types import Array, Bytes, Struct, be16, be32, u8

# TCP flag bits in the 14th byte of the header (RFC 9293 section 3.1).
TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK, TCP_URG, TCP_ECE, TCP_CWR = (1 << i for i in range(8))


class Ethernet(Struct):
    """struct ethhdr (14 bytes)."""

    dst: Bytes(6)
    src: Bytes(6)
    proto: be16


class Vlan(Struct):
    """An 802.1Q/802.1ad tag after the MAC addresses: TCI, then the inner EtherType."""

    tci: be16
    proto: be16


class IPv4(Struct):
    """struct iphdr without options (20 bytes); ``ihl`` counts 32-bit words."""

    ver_ihl: u8
    tos: u8
    tot_len: be16
    id: be16
    frag_off: be16
    ttl: u8
    protocol: u8
    check: be16
    saddr: be32
    daddr: be32

    version = computed(lambda h: h.ver_ihl >> 4)
    ihl = computed(lambda h: h.ver_ihl & 0xF)
    header_length = computed(lambda h: (h.ver_ihl & 0xF) << 2)


class IPv6(Struct):
    """struct ipv6hdr (40 bytes); extension headers follow ``nexthdr``."""

    ver_tc_flow: be32
    payload_len: be16
    nexthdr: u8
    hop_limit: u8
    saddr: Array(be32, 4)
    daddr: Array(be32, 4)


class IPv6Ext(Struct):
    """The start of an IPv6 extension header (hop-by-hop, routing, destination options)."""

    nexthdr: u8
    hdrlen: u8  # in 8-byte units, not counting the first 8 bytes

    header_length = computed(lambda h: (h.hdrlen.cast(u8) + 1) << 3)


class IPv6Frag(Struct):
    """The IPv6 fragment header (8 bytes)."""

    nexthdr: u8
    reserved: u8
    frag_off: be16
    identification: be32


class TCP(Struct):
    """struct tcphdr without options (20 bytes); ``doff`` counts 32-bit words."""

    source: be16
    dest: be16
    seq: be32
    ack_seq: be32
    doff_res: u8
    flags: u8
    window: be16
    check: be16
    urg_ptr: be16

    doff = computed(lambda h: h.doff_res >> 4)
    header_length = computed(lambda h: (h.doff_res >> 4) << 2)
    fin = computed(lambda h: h.flags.test(TCP_FIN))
    syn = computed(lambda h: h.flags.test(TCP_SYN))
    rst = computed(lambda h: h.flags.test(TCP_RST))
    psh = computed(lambda h: h.flags.test(TCP_PSH))
    ack = computed(lambda h: h.flags.test(TCP_ACK))
    urg = computed(lambda h: h.flags.test(TCP_URG))


class UDP(Struct):
    """struct udphdr (8 bytes)."""

    source: be16
    dest: be16
    len: be16
    check: be16


class ICMP(Struct):
    """struct icmphdr (8 bytes); ICMPv6 has the same first four bytes."""

    type: u8
    code: u8
    checksum: be16
    rest: be32


assert (Ethernet.size, Vlan.size, IPv4.size, IPv6.size, TCP.size, UDP.size, ICMP.size) == (
    14, 4, 20, 40, 20, 8, 8)
