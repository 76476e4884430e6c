// C twin of programs/syn_filter.py: a socket filter keeping TCP SYNs (IPv4, IPv6), headers copied
// to the stack with bpf_skb_load_bytes as the parser's Copied source does.
#include "twin.h"

#define KEEP 0xffff
#define DROP 0
#define TH_SYN 0x02
#define TH_ACK 0x10

SEC("socket")
int syn_filter(struct __sk_buff *skb)
{
    struct ethhdr eth;
    __u32 l4;

    if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)))
        return DROP;
    if (eth.h_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr ip;
        __u8 last;
        if (bpf_skb_load_bytes(skb, sizeof(eth), &ip, sizeof(ip)))
            return DROP;
        __u8 ver_ihl = *(__u8 *)&ip;
        if ((ver_ihl & 0xf0) != 0x40)
            return DROP;
        __u32 hlen = (ver_ihl & 0xf) << 2;
        if (hlen < sizeof(ip))
            return DROP;
        l4 = sizeof(eth) + hlen;
        if (hlen > sizeof(ip) && bpf_skb_load_bytes(skb, l4 - 1, &last, 1))
            return DROP;
        if (ip.protocol != IPPROTO_TCP || (ip.frag_off & bpf_htons(0x1fff)))
            return DROP;
    } else if (eth.h_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr ip6;
        struct ipv6_opt_hdr ext;
        struct { __u8 nexthdr, reserved; __be16 frag_off; __be32 id; } frag;
        __u8 last;
        if (bpf_skb_load_bytes(skb, sizeof(eth), &ip6, sizeof(ip6)))
            return DROP;
        if ((bpf_ntohl(*(__be32 *)&ip6) >> 28) != 6)
            return DROP;
        __u32 nexthdr = ip6.nexthdr, frag_off = 0;
        l4 = sizeof(eth) + sizeof(ip6);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            if (nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
                nexthdr == IPPROTO_DSTOPTS) {
                if (bpf_skb_load_bytes(skb, l4, &ext, sizeof(ext)))
                    return DROP;
                nexthdr = ext.nexthdr;
                l4 += (ext.hdrlen + 1) << 3;
                if (bpf_skb_load_bytes(skb, l4 - 1, &last, 1))
                    return DROP;
            } else if (nexthdr == IPPROTO_FRAGMENT) {
                if (bpf_skb_load_bytes(skb, l4, &frag, sizeof(frag)))
                    return DROP;
                nexthdr = frag.nexthdr;
                frag_off = bpf_ntohs(frag.frag_off) & 0xfff8;
                l4 += sizeof(frag);
            } else {
                goto done;
            }
        }
        if (nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
            nexthdr == IPPROTO_DSTOPTS || nexthdr == IPPROTO_FRAGMENT)
            return DROP;
done:
        if (nexthdr != IPPROTO_TCP || frag_off != 0)
            return DROP;
    } else {
        return DROP;
    }
    struct tcphdr tcp;
    if (bpf_skb_load_bytes(skb, l4, &tcp, sizeof(tcp)))
        return DROP;
    __u8 flags = ((__u8 *)&tcp)[13];
    if ((flags & (TH_SYN | TH_ACK)) == TH_SYN)
        return KEEP;
    return DROP;
}
