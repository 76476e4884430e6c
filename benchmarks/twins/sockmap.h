// Maps shared by the sockmap_redirect twins (sock_ops and sk_msg).
#include "twin.h"

struct four_tuple { __be32 local_ip4, remote_ip4; __u32 local_port, remote_port; };
enum { ADDED, REDIRECTED, REDIRECTED_BYTES, PASSED };

struct {
    __uint(type, BPF_MAP_TYPE_SOCKHASH);
    __uint(max_entries, 1024);
    __type(key, struct four_tuple);
    __type(value, __u32);
} sockets SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 index, __u64 n)
{
    __u64 *c = bpf_map_lookup_elem(&counters, &index);
    if (c)
        __sync_fetch_and_add(c, n);
}
