// C twin of programs/redirect.py (xdp_to_cpu): XDP_REDIRECT to the CPU in steer_to[0].
#include "redirect.h"

struct {
    __uint(type, BPF_MAP_TYPE_CPUMAP);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, struct bpf_cpumap_val);
} cpus SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} steer_to SEC(".maps");

SEC("xdp")
int xdp_to_cpu(struct xdp_md *ctx)
{
    __u32 zero = 0;
    __u32 *cpu = bpf_map_lookup_elem(&steer_to, &zero);
    if (cpu) {
        count();
        return bpf_redirect_map(&cpus, *cpu, XDP_PASS);
    }
    return XDP_PASS;
}
