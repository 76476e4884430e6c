// The parser library of programs/parser.py in C, as a libbpf user would write it: Ethernet and
// up to two VLAN tags, IPv4 (version, ihl, options in the packet), IPv6 and its extension
// headers, TCP (doff, options in the packet). Direct packet access; every function returns 0,
// or -1 for a short or malformed packet (the programs use one verdict for both).
#ifndef PYBPF_TWIN_PARSE_H
#define PYBPF_TWIN_PARSE_H
#include "twin.h"

#ifndef MAX_VLANS
#define MAX_VLANS 2
#endif
#define MAX_IPV6_EXT 4

struct vlan_tag { __be16 tci; __be16 proto; };
struct l2 { __be16 proto; __u32 l3_off; };
struct l3 { __u32 proto; __u32 l4_off; __u32 later_fragment; };

static __always_inline int parse_eth(void *data, void *data_end, struct l2 *l2)
{
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return -1;
    l2->proto = eth->h_proto;
    l2->l3_off = sizeof(*eth);
#pragma unroll
    for (int i = 0; i < MAX_VLANS; i++) {
        if (l2->proto != bpf_htons(ETH_P_8021Q) && l2->proto != bpf_htons(ETH_P_8021AD))
            break;
        struct vlan_tag *tag = data + sizeof(*eth) + i * sizeof(*tag);
        if ((void *)(tag + 1) > data_end)
            return -1;
        l2->proto = tag->proto;
        l2->l3_off = sizeof(*eth) + (i + 1) * sizeof(*tag);
    }
    return 0;
}

static __always_inline struct iphdr *parse_ipv4(void *data, void *data_end, __u32 off,
                                                __u32 *l4_off)
{
    struct iphdr *ip = data + off;
    if ((void *)(ip + 1) > data_end)
        return 0;
    __u8 ver_ihl = *(__u8 *)ip;
    if ((ver_ihl & 0xf0) != 0x40)
        return 0;
    __u32 hlen = (ver_ihl & 0xf) << 2;
    if (hlen < sizeof(*ip))
        return 0;
    *l4_off = off + hlen;
    if (hlen > sizeof(*ip) && (void *)ip + hlen > data_end)   // options in the packet
        return 0;
    return ip;
}

static __always_inline struct ipv6hdr *parse_ipv6(void *data, void *data_end, __u32 off,
                                                  int max_ext, struct l3 *l3)
{
    struct ipv6hdr *ip = data + off;
    if ((void *)(ip + 1) > data_end)
        return 0;
    if ((bpf_ntohl(*(__be32 *)ip) >> 28) != 6)
        return 0;
    __u32 nexthdr = ip->nexthdr, l4 = off + sizeof(*ip), frag_off = 0;
#pragma unroll
    for (int i = 0; i < max_ext; i++) {
        if (nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
            nexthdr == IPPROTO_DSTOPTS) {
            struct ipv6_opt_hdr *ext = data + l4;
            if ((void *)(ext + 1) > data_end)
                return 0;
            nexthdr = ext->nexthdr;
            l4 += (ext->hdrlen + 1) << 3;
            if (data + l4 > data_end)
                return 0;
        } else if (nexthdr == IPPROTO_FRAGMENT) {
            struct frag_hdr { __u8 nexthdr, reserved; __be16 frag_off; __be32 id; } *frag =
                data + l4;
            if ((void *)(frag + 1) > data_end)
                return 0;
            nexthdr = frag->nexthdr;
            frag_off = bpf_ntohs(frag->frag_off) & 0xfff8;
            l4 += sizeof(*frag);
        } else {
            goto done;
        }
    }
    if (max_ext && (nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
                    nexthdr == IPPROTO_DSTOPTS || nexthdr == IPPROTO_FRAGMENT))
        return 0;   // a longer chain than we follow
done:
    l3->proto = nexthdr;
    l3->l4_off = l4;
    l3->later_fragment = frag_off != 0;
    return ip;
}

static __always_inline struct tcphdr *parse_tcp(void *data, void *data_end, __u32 off)
{
    struct tcphdr *tcp = data + off;
    if ((void *)(tcp + 1) > data_end)
        return 0;
    __u32 hlen = tcp->doff << 2;
    if (hlen < sizeof(*tcp))
        return 0;
    if (hlen > sizeof(*tcp) && (void *)tcp + hlen > data_end)   // options in the packet
        return 0;
    return tcp;
}
#endif
