// C twin of programs/cgroup_redirect.py (redirect_connect4): a service's connect() goes to
// its backend; the original destination is kept per socket for getpeername().
#include "cgroup_redirect.h"

SEC("cgroup/connect4")
int redirect_connect4(struct bpf_sock_addr *ctx)
{
    struct service svc = { .addr = ctx->user_ip4, .port = ctx->user_port };
    struct backend *b = bpf_map_lookup_elem(&rules, &svc);
    if (b) {
        struct original saved = { .addr = svc.addr, .port = svc.port,
                                  .backend_addr = b->addr, .backend_port = b->port };
        ctx->user_ip4 = saved.backend_addr;
        ctx->user_port = saved.backend_port;
        __sync_fetch_and_add(&b->hits, 1);
        __u64 cookie = bpf_get_socket_cookie(ctx);
        bpf_map_update_elem(&originals, &cookie, &saved, BPF_ANY);
    }
    return 1;
}
