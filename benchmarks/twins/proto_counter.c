// C twin of programs/proto_counter.py: per-CPU packet/byte counts per IP protocol.
#include "parse.h"

#define NON_IP 256
struct count { __u64 packets, bytes; };

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, NON_IP + 1);
    __type(key, __u32);
    __type(value, struct count);
} counts SEC(".maps");

SEC("xdp")
int proto_counter(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
    __u64 length = bpf_xdp_get_buff_len(ctx);
    struct l2 l2;
    struct l3 l3;
    __u32 l4_off, index = NON_IP;

    if (parse_eth(data, data_end, &l2))
        return XDP_PASS;
    if (l2.proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = parse_ipv4(data, data_end, l2.l3_off, &l4_off);
        if (!ip)
            return XDP_PASS;
        index = ip->protocol;
    } else if (l2.proto == bpf_htons(ETH_P_IPV6)) {
        if (!parse_ipv6(data, data_end, l2.l3_off, MAX_IPV6_EXT, &l3))
            return XDP_PASS;
        index = l3.proto;
    }
    struct count *c = bpf_map_lookup_elem(&counts, &index);
    if (c) {
        c->packets += 1;   // per-CPU slot: no other writer
        c->bytes += length;
    }
    return XDP_PASS;
}
