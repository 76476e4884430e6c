// C twin of programs/tc_logger.py (tc_log_ingress): one ring buffer event per packet.
#include "parse.h"

struct event {
    __u64 ts_ns;
    __u32 ifindex, len;
    __u8 direction, ip_proto, tcp_flags, icmp_type;
    __u16 eth_proto, sport, dport;
    __u8 icmp_code, ip_version;
    __be32 saddr[4], daddr[4];
};

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 256 * 1024);
} events SEC(".maps");

struct icmp_start { __u8 type, code; __be16 checksum; __be32 rest; };

static __always_inline int log_l4(void *data, void *data_end, struct event *e, struct l3 *l3,
                                  __u32 icmp_proto)
{
    e->ip_proto = l3->proto;
    if (l3->later_fragment)
        return 0;
    if (l3->proto == IPPROTO_TCP || l3->proto == IPPROTO_UDP) {
        struct udphdr *ports = data + l3->l4_off;   // the first 4 bytes of both
        if ((void *)(ports + 1) > data_end)
            return -1;
        e->sport = bpf_ntohs(ports->source);
        e->dport = bpf_ntohs(ports->dest);
        if (l3->proto == IPPROTO_TCP) {
            struct tcphdr *tcp = parse_tcp(data, data_end, l3->l4_off);
            if (!tcp)
                return -1;
            e->tcp_flags = ((__u8 *)tcp)[13];
        }
    } else if (l3->proto == icmp_proto) {
        struct icmp_start *ic = data + l3->l4_off;
        if ((void *)(ic + 1) > data_end)
            return -1;
        e->icmp_type = ic->type;
        e->icmp_code = ic->code;
    }
    return 0;
}

SEC("tc")
int tc_log_ingress(struct __sk_buff *skb)
{
    struct event e;
    __builtin_memset(&e, 0, sizeof(e));
    e.ifindex = skb->ifindex;
    e.len = skb->len;
    e.direction = 0;
    void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
    struct l2 l2;
    struct l3 l3;

    if (parse_eth(data, data_end, &l2))
        return TC_ACT_UNSPEC;
    e.eth_proto = bpf_ntohs(l2.proto);
    if (l2.proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = parse_ipv4(data, data_end, l2.l3_off, &l3.l4_off);
        if (!ip)
            return TC_ACT_UNSPEC;
        l3.proto = ip->protocol;
        l3.later_fragment = (ip->frag_off & bpf_htons(0x1fff)) != 0;
        e.ip_version = 4;
        e.saddr[0] = ip->saddr;
        e.daddr[0] = ip->daddr;
        if (log_l4(data, data_end, &e, &l3, IPPROTO_ICMP))
            return TC_ACT_UNSPEC;
    } else if (l2.proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = parse_ipv6(data, data_end, l2.l3_off, MAX_IPV6_EXT, &l3);
        if (!ip6)
            return TC_ACT_UNSPEC;
        e.ip_version = 6;
        for (int i = 0; i < 4; i++) {
            e.saddr[i] = ip6->saddr.in6_u.u6_addr32[i];
            e.daddr[i] = ip6->daddr.in6_u.u6_addr32[i];
        }
        if (log_l4(data, data_end, &e, &l3, IPPROTO_ICMPV6))
            return TC_ACT_UNSPEC;
    }
    e.ts_ns = bpf_ktime_get_ns();
    bpf_ringbuf_output(&events, &e, sizeof(e), 0);
    return TC_ACT_UNSPEC;
}
