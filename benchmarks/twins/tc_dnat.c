// C twin of programs/dnat.py:tc_dnat (checksums by bpf_l3/l4_csum_replace).
#include "dnat.h"

SEC("tc")
int tc_dnat(struct __sk_buff *skb)
{
    return nat_program(skb, (void *)(long)skb->data, (void *)(long)skb->data_end, 1, TC_ACT_OK);
}
