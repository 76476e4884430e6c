// Shared by the C twins of programs/redirect.py: the frame counter of every redirecting program.
#include "twin.h"

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} redirected SEC(".maps");

static __always_inline void count(void)
{
    __u32 zero = 0;
    __u64 *n = bpf_map_lookup_elem(&redirected, &zero);
    if (n)
        __sync_fetch_and_add(n, 1);
}
