// C twin of programs/sockmap_redirect.py:track_established (sock_ops).
#include "sockmap.h"

SEC("sockops")
int track_established(struct bpf_sock_ops *ctx)
{
    __u32 op = ctx->op;
    if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB || op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) {
        if (ctx->family == AF_INET &&
            (ctx->remote_ip4 & bpf_htonl(0xff000000)) == bpf_htonl(0x7f000000)) {
            // remote_port holds the be16 port in its upper half: bswap32 gives host order
            struct four_tuple key = {
                .local_ip4 = ctx->local_ip4, .remote_ip4 = ctx->remote_ip4,
                .local_port = ctx->local_port, .remote_port = bpf_ntohl(ctx->remote_port),
            };
            if (bpf_sock_hash_update(ctx, &sockets, &key, BPF_NOEXIST) == 0)
                count(ADDED, 1);
        }
    }
    return 1;
}
