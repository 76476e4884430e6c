// C twin of programs/cgroup_redirect.py (restore_getpeername4): a redirected socket's peer
// is shown as the service it connected to.
#include "cgroup_redirect.h"

SEC("cgroup/getpeername4")
int restore_getpeername4(struct bpf_sock_addr *ctx)
{
    __u64 cookie = bpf_get_socket_cookie(ctx);
    struct original *orig = bpf_map_lookup_elem(&originals, &cookie);
    if (orig && ctx->user_ip4 == orig->backend_addr && ctx->user_port == orig->backend_port) {
        ctx->user_ip4 = orig->addr;
        ctx->user_port = orig->port;
    }
    return 1;
}
