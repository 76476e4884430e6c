// C twin of programs/redirect.py (tc_redirect): to the egress of the paired interface.
#include "redirect.h"

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 64);
    __type(key, __u32);      // ingress ifindex
    __type(value, __u32);    // egress ifindex
} ports SEC(".maps");

SEC("tc")
int tc_redirect(struct __sk_buff *skb)
{
    __u32 ifindex = skb->ifindex;
    __u32 *out = bpf_map_lookup_elem(&ports, &ifindex);
    if (out) {
        count();
        return bpf_redirect(*out, 0);
    }
    return TC_ACT_OK;
}
