// C twin of programs/redirect.py (xdp_to_device): XDP_REDIRECT through a DEVMAP_HASH.
#include "redirect.h"

struct {
    __uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
    __uint(max_entries, 64);
    __type(key, __u32);      // ingress ifindex
    __type(value, __u32);    // egress ifindex
} devices SEC(".maps");

SEC("xdp")
int xdp_to_device(struct xdp_md *ctx)
{
    count();
    return bpf_redirect_map(&devices, ctx->ingress_ifindex, XDP_PASS);
}
