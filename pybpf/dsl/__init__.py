"""Write eBPF programs as Python functions (see pybpf.dsl.program)."""

import gc as _gc

# Importing the DSL (and the assembler, BTF and syscall layers under it) makes thousands of
# long-lived objects and no garbage; the cyclic collector would only rescan them, 3-4 ms of a
# cold start. It is paused for the imports and restored as it was.
_collecting = _gc.isenabled()
_gc.disable()
try:
    from pybpf.dsl import _netconst
    from pybpf.dsl._netconst import *  # noqa: F403  (ETH_P_*, IPPROTO_*, XDP_*, TC_ACT_*, SK_*)
    from pybpf.dsl.builder import Builder, Var
    from pybpf.dsl.headers import (
        ICMP,
        TCP,
        TCP_ACK,
        TCP_FIN,
        TCP_PSH,
        TCP_RST,
        TCP_SYN,
        TCP_URG,
        UDP,
        Ethernet,
        IPv4,
        IPv6,
        IPv6Ext,
        IPv6Frag,
        Vlan,
    )
    from pybpf.dsl.maps import (
        NO_PREALLOC,
        Array,
        CpuMap,
        DevMap,
        DevMapHash,
        Hash,
        LpmTrie,
        LruHash,
        LruPerCpuHash,
        MapDef,
        PerCpuArray,
        PerCpuHash,
        PerfEventArray,
        ProgArray,
        Queue,
        RingBuf,
        SockHash,
        SockMap,
        Stack,
        XskMap,
    )
    from pybpf.dsl.pointers import Ptr, computed
    from pybpf.dsl.program import (
        Built,
        Kind,
        ProgramBuilder,
        ProgramDef,
        cgroup_skb,
        cgroup_sock_addr,
        sk_msg,
        sock_ops,
        socket_filter,
        subprog,
        tc,
        tracepoint,
        xdp,
    )
    from pybpf.dsl.values import Cond, DSLError, Value
    from pybpf.types import Struct, be16, be32, be64, s8, s16, s32, s64, u8, u16, u32, u64
finally:
    if _collecting:
        _gc.enable()

__all__ = [
    "Array", "Builder", "Built", "Cond", "CpuMap", "DSLError", "DevMap", "DevMapHash", "Ethernet",
    "Hash", "ICMP", "IPv4", "IPv6", "IPv6Ext", "IPv6Frag", "Kind", "LpmTrie", "LruHash",
    "LruPerCpuHash", "MapDef", "NO_PREALLOC", "PerCpuArray", "PerCpuHash", "PerfEventArray",
    "ProgArray", "ProgramBuilder", "ProgramDef", "Ptr", "Queue", "RingBuf", "SockHash", "SockMap",
    "Stack", "Struct", "TCP", "TCP_ACK", "TCP_FIN", "TCP_PSH", "TCP_RST", "TCP_SYN", "TCP_URG",
    "UDP", "Value", "Var", "Vlan", "XskMap", "be16", "be32", "be64", "cgroup_sock_addr",
    "cgroup_skb", "computed", "s8", "s16", "s32", "s64", "sk_msg", "sock_ops", "socket_filter",
    "subprog", "tc", "tracepoint", "u8", "u16", "u32", "u64", "xdp",
] + [name for name in vars(_netconst) if name.isupper()]
