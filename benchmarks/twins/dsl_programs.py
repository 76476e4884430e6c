"""pybpf twins of the C programs in this folder (same logic, line for line)."""

from pybpf.dsl import (
    ETH_P_IP,
    XDP_DROP,
    XDP_PASS,
    Ethernet,
    IPv4,
    LpmTrie,
    Struct,
    be32,
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
    eth = p.packet.header(Ethernet)
    with p.if_(eth.proto != ETH_P_IP):
        p.return_(XDP_PASS)
    ip = p.packet.header(IPv4, at=Ethernet.size)
    key = p.stack(BlockKey, prefixlen=32, addr=ip.saddr)
    with blocked.lookup(key) as hits:
        hits.atomic_add(1)
        p.return_(XDP_DROP)
    p.return_(XDP_PASS)
