// C twin of programs/cgroup_logger.py (log_connect4): every IPv4 connect() into a ring buffer.
#include "twin.h"

struct connect_event {
    __u32 pid, uid;
    char comm[16];
    __be32 daddr[4];
    __be16 dport;
    __u16 family;
    __u8 protocol;
};

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 64 * 1024);
} events SEC(".maps");

SEC("cgroup/connect4")
int log_connect4(struct bpf_sock_addr *ctx)
{
    struct connect_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (e) {
        e->pid = bpf_get_current_pid_tgid() >> 32;
        e->uid = (__u32)bpf_get_current_uid_gid();
        bpf_get_current_comm(e->comm, sizeof(e->comm));
        e->dport = ctx->user_port;
        e->family = AF_INET;
        e->protocol = ctx->protocol;
        e->daddr[0] = ctx->user_ip4;
        e->daddr[1] = e->daddr[2] = e->daddr[3] = 0;
        bpf_ringbuf_submit(e, 0);
    }
    return 1;
}
