// C twin of programs/bind_guard.py (guard_bind4): refuse bind() to ports in a hash map.
#include "twin.h"

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, __u16);      // port, host order
    __type(value, __u64);    // binds refused
} forbidden SEC(".maps");

SEC("cgroup/bind4")
int guard_bind4(struct bpf_sock_addr *ctx)
{
    __u16 port = bpf_ntohs(ctx->user_port);
    __u64 *refused = bpf_map_lookup_elem(&forbidden, &port);
    if (refused) {
        __sync_fetch_and_add(refused, 1);
        return 0;   // EPERM for bind()
    }
    return 1;
}
