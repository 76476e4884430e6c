// Shared by the C twins of programs/cgroup_redirect.py: the rule and original-address maps.
#include "twin.h"

struct service { __be32 addr; __be16 port; __u16 pad; };
struct backend { __be32 addr; __be16 port; __u16 pad; __u64 hits; };
struct original {
    __be32 addr; __be16 port; __u16 pad;
    __be32 backend_addr; __be16 backend_port; __u16 pad2;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 256);
    __type(key, struct service);
    __type(value, struct backend);
} rules SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);      // socket cookie
    __type(value, struct original);
} originals SEC(".maps");
