// C twin of programs/dnat.py's forward rewrite: destination NAT for TCP/UDP over IPv4, checksums
// by helpers (TC) or by RFC 1624 incremental arithmetic (XDP). Included by tc_dnat.c/xdp_dnat.c.
#include "twin.h"

#define FORWARD 0
#define ETH_LEN 14
#define IP_CHECK (ETH_LEN + 10)

struct nat_key { __be32 addr; __be16 port; __u8 proto, direction; };
struct nat_target { __be32 addr; __be16 port; __u16 pad; };

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, struct nat_key);
    __type(value, struct nat_target);
} nat SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u64);
} rewritten SEC(".maps");

// RFC 1624 eq. 3 in host order: the checksum after a `bits`-bit field went old -> new
static __always_inline __u32 csum_replace(__u32 check, __u32 old, __u32 new, int bits)
{
    __u32 s = (~check & 0xffff) + (new & 0xffff) + (~old & 0xffff);
    if (bits == 32)
        s += (new >> 16) + ((~old >> 16) & 0xffff);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    return ~s & 0xffff;
}

// the L4 header's dest port is at offset 2 and its checksum at `check_off` for TCP and UDP
static __always_inline int rewrite(void *ctx, void *data, void *data_end, __u8 proto,
                                   __u32 l4_size, __u32 check_off, int helpers, int verdict)
{
    struct iphdr *ip = data + ETH_LEN;
    void *l4 = (void *)ip + ip->ihl * 4;
    if (l4 + l4_size > data_end)
        return verdict;
    __be16 *dest = l4 + 2, *l4_check = l4 + check_off;
    struct nat_key key = { .addr = ip->daddr, .port = *dest, .proto = proto,
                           .direction = FORWARD };
    struct nat_target *to = bpf_map_lookup_elem(&nat, &key);
    if (!to)
        return -1;   // not a service: the caller goes on
    __be32 new_addr = to->addr;
    __be16 new_port = to->port;
    __u32 dir = FORWARD;
    __u64 *n = bpf_map_lookup_elem(&rewritten, &dir);
    if (n)
        __sync_fetch_and_add(n, 1);
    ip->daddr = new_addr;
    *dest = new_port;
    __be32 old_addr = key.addr;
    __be16 old_port = key.port;
    if (helpers) {
        __u32 zero_ok = proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
        __u32 off = ETH_LEN + ip->ihl * 4 + check_off;
        bpf_l4_csum_replace(ctx, off, old_addr, new_addr, BPF_F_PSEUDO_HDR | zero_ok | 4);
        bpf_l4_csum_replace(ctx, off, old_port, new_port, zero_ok | 2);
        bpf_l3_csum_replace(ctx, IP_CHECK, old_addr, new_addr, 4);
    } else {
        ip->check = bpf_htons(csum_replace(bpf_ntohs(ip->check), bpf_ntohl(old_addr),
                                           bpf_ntohl(new_addr), 32));
        __u32 sum = csum_replace(bpf_ntohs(*l4_check), bpf_ntohl(old_addr),
                                 bpf_ntohl(new_addr), 32);
        sum = csum_replace(sum, bpf_ntohs(old_port), bpf_ntohs(new_port), 16);
        if (proto == IPPROTO_UDP) {
            if (*l4_check != 0)   // 0: the sender sent no checksum
                *l4_check = sum == 0 ? 0xffff : bpf_htons(sum);
        } else {
            *l4_check = bpf_htons(sum);
        }
    }
    return verdict;
}

static __always_inline int nat_program(void *ctx, void *data, void *data_end, int helpers,
                                       int verdict)
{
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return verdict;
    if (eth->h_proto != bpf_htons(ETH_P_IP))
        return verdict;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return verdict;
    int ret = -1;
    if (ip->protocol == IPPROTO_TCP)
        ret = rewrite(ctx, data, data_end, IPPROTO_TCP, sizeof(struct tcphdr),
                      offsetof(struct tcphdr, check), helpers, verdict);
    else if (ip->protocol == IPPROTO_UDP)
        ret = rewrite(ctx, data, data_end, IPPROTO_UDP, sizeof(struct udphdr),
                      offsetof(struct udphdr, check), helpers, verdict);
    return ret < 0 ? verdict : ret;
}
