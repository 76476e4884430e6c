// C twin of benchmarks/twins/dsl_programs.py:ip_blocker (same logic), for the clang comparison.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>

#define SEC(name) __attribute__((section(name), used))
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;

struct block_key { __u32 prefixlen; __u32 addr; };

struct {
    int (*type)[BPF_MAP_TYPE_LPM_TRIE];
    int (*max_entries)[1024];
    int (*map_flags)[BPF_F_NO_PREALLOC];
    struct block_key *key;
    __u64 *value;
} blocked SEC(".maps");

SEC("xdp")
int ip_blocker(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_PASS;
    if (eth->h_proto != __builtin_bswap16(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_PASS;
    struct block_key key = { .prefixlen = 32, .addr = ip->saddr };
    __u64 *hits = bpf_map_lookup_elem(&blocked, &key);
    if (hits) {
        __sync_fetch_and_add(hits, 1);
        return XDP_DROP;
    }
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
