// C twin of programs/dnat.py:xdp_dnat (RFC 1624 incremental checksums in the program).
#include "dnat.h"

SEC("xdp")
int xdp_dnat(struct xdp_md *ctx)
{
    return nat_program(ctx, (void *)(long)ctx->data, (void *)(long)ctx->data_end, 0, XDP_PASS);
}
