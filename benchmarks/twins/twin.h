// Shared by the C twins: what libbpf's bpf_helpers.h / bpf_endian.h provide (not installed
// here), declared from linux/bpf.h's own enums so no helper id is hand-copied.
#ifndef PYBPF_TWIN_H
#define PYBPF_TWIN_H
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <stddef.h>
#ifndef AF_INET
#define AF_INET 2
#endif

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#undef __always_inline   // linux/stddef.h's is a plain inline; bpf_helpers.h redefines it too
#define __always_inline inline __attribute__((always_inline))
#define bpf_htons(x) ((__be16)__builtin_bswap16(x))
#define bpf_ntohs(x) __builtin_bswap16(x)
#define bpf_htonl(x) ((__be32)__builtin_bswap32(x))
#define bpf_ntohl(x) __builtin_bswap32(x)

#define HELPER(ret, name, ...) \
    static ret (*bpf_##name)(__VA_ARGS__) = (void *)BPF_FUNC_##name
HELPER(void *, map_lookup_elem, void *map, const void *key);
HELPER(__u64, ktime_get_ns, void);
HELPER(__u64, get_current_pid_tgid, void);
HELPER(__u64, get_current_uid_gid, void);
HELPER(long, get_current_comm, void *buf, __u32 size);
HELPER(long, skb_load_bytes, const void *skb, __u32 off, void *to, __u32 len);
HELPER(long, l3_csum_replace, void *skb, __u32 off, __u64 from, __u64 to, __u64 flags);
HELPER(long, l4_csum_replace, void *skb, __u32 off, __u64 from, __u64 to, __u64 flags);
HELPER(long, xdp_get_buff_len, void *xdp);
HELPER(long, ringbuf_output, void *rb, void *data, __u64 size, __u64 flags);
HELPER(void *, ringbuf_reserve, void *rb, __u64 size, __u64 flags);
HELPER(void, ringbuf_submit, void *data, __u64 flags);
HELPER(long, sock_hash_update, void *ops, void *map, void *key, __u64 flags);
HELPER(long, msg_redirect_hash, void *msg, void *map, void *key, __u64 flags);
HELPER(long, map_update_elem, void *map, const void *key, const void *value, __u64 flags);
HELPER(__u64, get_socket_cookie, void *ctx);
HELPER(long, redirect, __u32 ifindex, __u64 flags);
HELPER(long, redirect_map, void *map, __u64 key, __u64 flags);

char _license[] SEC("license") = "GPL";
#endif
