// C twin of programs/xdp_blocker.py: IPv4/IPv6 source prefixes in LPM tries, drop counters.
#include "parse.h"

struct v4_key { __u32 prefixlen; __be32 addr; };
struct v6_key { __u32 prefixlen; __be32 addr[4]; };

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, 4096);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct v4_key);
    __type(value, __u64);
} blocked4 SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, 4096);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct v6_key);
    __type(value, __u64);
} blocked6 SEC(".maps");

SEC("xdp")
int xdp_blocker(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
    struct l2 l2;
    struct l3 l3;
    __u32 l4_off;
    __u64 *drops;

    if (parse_eth(data, data_end, &l2))
        return XDP_PASS;
    if (l2.proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = parse_ipv4(data, data_end, l2.l3_off, &l4_off);
        if (!ip)
            return XDP_PASS;
        struct v4_key key = { .prefixlen = 32, .addr = ip->saddr };
        drops = bpf_map_lookup_elem(&blocked4, &key);
    } else if (l2.proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = parse_ipv6(data, data_end, l2.l3_off, 0, &l3);
        if (!ip6)
            return XDP_PASS;
        struct v6_key key = { .prefixlen = 128 };
        for (int i = 0; i < 4; i++)
            key.addr[i] = ip6->saddr.in6_u.u6_addr32[i];
        drops = bpf_map_lookup_elem(&blocked6, &key);
    } else {
        return XDP_PASS;
    }
    if (drops) {
        __sync_fetch_and_add(drops, 1);
        return XDP_DROP;
    }
    return XDP_PASS;
}
