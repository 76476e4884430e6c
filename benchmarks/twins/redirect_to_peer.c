// C twin of programs/sockmap_redirect.py:redirect_to_peer (sk_msg).
#include "sockmap.h"

SEC("sk_msg")
int redirect_to_peer(struct sk_msg_md *msg)
{
    __u32 size = msg->size;
    struct four_tuple peer = {
        .local_ip4 = msg->remote_ip4, .remote_ip4 = msg->local_ip4,
        .local_port = bpf_ntohl(msg->remote_port), .remote_port = msg->local_port,
    };
    if (bpf_msg_redirect_hash(msg, &sockets, &peer, BPF_F_INGRESS) == SK_PASS) {
        count(REDIRECTED, 1);
        count(REDIRECTED_BYTES, size);
        return SK_PASS;
    }
    count(PASSED, 1);   // peer not in the map: the normal TCP path
    return SK_PASS;
}
