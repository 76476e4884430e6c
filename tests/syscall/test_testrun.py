"""BPF_PROG_TEST_RUN per program type, with every option, on the real kernel.

Context layouts (struct __sk_buff, struct xdp_md, struct bpf_flow_keys) come from
the running kernel's BTF, not from hand-copied offsets.
"""

import errno
import os
import struct

import pytest

from pybpf.asm.llvm import assemble
from pybpf.btf.kernel import vmlinux
from pybpf.errors import BPFError
from pybpf.syscall import Map, load_program
from pybpf.syscall._uapi import (
    BPF_F_SLEEPABLE,
    BPF_F_TEST_RUN_ON_CPU,
    BPF_F_TEST_XDP_LIVE_FRAMES,
)
from pybpf.types import u32, u64

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("no_leaks")]

K = vmlinux()
SKB = K.struct("__sk_buff")
XDP_MD = K.struct("xdp_md")
FLOW_KEYS = K.struct("bpf_flow_keys")
XDP_ACTION = K.enum("xdp_action")
BPF_OK = K.enum("bpf_ret_code")["BPF_OK"]


def udp_packet(payload: bytes = b"hello") -> bytes:
    """Ethernet + IPv4 + UDP (checksums zero; nothing here checks them)."""
    eth = bytes(6) + bytes.fromhex("020000000001") + struct.pack("!H", 0x0800)
    total = 20 + 8 + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, 17, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    udp = struct.pack("!HHHH", 1234, 5678, 8 + len(payload), 0)
    return eth + ip + udp + payload


def skb_ctx(**fields) -> bytes:
    buf = bytearray(SKB.size)
    for name, value in fields.items():
        f = SKB.field(name)
        buf[f.offset:f.offset + f.size] = value.to_bytes(f.size, "little")
    return bytes(buf)


def skb_field(ctx: bytes, name: str) -> int:
    f = SKB.field(name)
    return int.from_bytes(ctx[f.offset:f.offset + f.size], "little")


# --- cgroup_skb: ctx in and out ------------------------------------------------------------

def test_cgroup_skb_ctx_in_and_out():
    # mark += 1; cb[0] = priority; return 1 (allow)
    prog = assemble(f"""
        r2 = *(u32 *)(r1 + {SKB.offsetof('mark')})
        r2 += 1
        *(u32 *)(r1 + {SKB.offsetof('mark')}) = w2
        r3 = *(u32 *)(r1 + {SKB.offsetof('priority')})
        *(u32 *)(r1 + {SKB.offsetof('cb')}) = w3
        r0 = 1
        exit""", "cgroup_skb.s")
    packet = udp_packet()
    with load_program("cgroup_skb", prog, expected_attach_type="cgroup_inet_ingress") as p:
        run = p.test_run(packet, ctx=skb_ctx(mark=41, priority=7), repeat=3)
    assert run.retval == 1
    assert len(run.ctx_out) == SKB.size
    # Each repetition reuses the skb, so the mark was incremented three times.
    assert skb_field(run.ctx_out, "mark") == 44
    assert skb_field(run.ctx_out, "priority") == 7 and skb_field(run.ctx_out, "cb") == 7
    # cgroup_skb sees the packet from the network header; the kernel zeroes the
    # Ethernet header it pushes back before copying data out.
    assert run.data_out[14:] == packet[14:] and run.data_out[:14] == bytes(14)


def test_skb_ctx_field_the_kernel_does_not_take():
    prog = assemble("r0 = 1\nexit")
    with load_program("cgroup_skb", prog) as p, pytest.raises(BPFError) as e:
        p.test_run(udp_packet(), ctx=skb_ctx(len=5))  # __sk_buff.len is not an input
    assert e.value.errno == errno.EINVAL and "must be zero" in str(e.value)


def test_sched_cls_ctx_out_size_given():
    prog = assemble(f"r0 = *(u32 *)(r1 + {SKB.offsetof('priority')})\nexit")
    with load_program("sched_cls", prog) as p:
        run = p.test_run(udp_packet(), ctx=skb_ctx(priority=3), ctx_out_size=SKB.size)
    assert run.retval == 3 and skb_field(run.ctx_out, "priority") == 3


# --- XDP: metadata through ctx_in, live frames with batch_size ----------------------------

def test_xdp_metadata_from_ctx_in():
    # r0 = *(u32 *)data_meta, if the 4 bytes of metadata are there
    prog = assemble(f"""
        r2 = *(u32 *)(r1 + {XDP_MD.offsetof('data_meta')})
        r3 = *(u32 *)(r1 + {XDP_MD.offsetof('data')})
        r4 = r2
        r4 += 4
        if r4 > r3 goto fail
        r0 = *(u32 *)(r2 + 0)
        exit
    fail:
        r0 = 0
        exit""", "xdp_meta.s")
    packet = udp_packet()
    meta = struct.pack("<I", XDP_ACTION["XDP_TX"])
    md = bytearray(XDP_MD.size)
    struct.pack_into("<II", md, XDP_MD.offsetof("data"), len(meta), len(meta) + len(packet))
    with load_program("xdp", prog) as p:
        run = p.test_run(meta + packet, ctx=bytes(md))
    assert run.retval == XDP_ACTION["XDP_TX"]
    assert run.data_out == meta + packet  # data_out starts at data_meta
    data, end = struct.unpack_from("<II", run.ctx_out, XDP_MD.offsetof("data"))
    assert (data, end) == (len(meta), len(meta) + len(packet))


COUNT_AND_DROP = """
    *(u32 *)(r10 - 4) = 0
    r1 = counts ll
    r2 = r10
    r2 += -4
    call 1
    if r0 == 0 goto out
    r1 = 1
    lock *(u64 *)(r0 + 0) += r1
out:
    r0 = {action}
    exit"""


def test_xdp_live_frames_batch_size():
    src = COUNT_AND_DROP.format(action=XDP_ACTION["XDP_DROP"])
    with Map.create("array", u32, u64, 1) as counts, \
            load_program("xdp", assemble(src, "live.s"), maps={"counts": counts.fd}) as p:
        run = p.test_run(udp_packet(), repeat=100, batch_size=16,
                         flags=BPF_F_TEST_XDP_LIVE_FRAMES)
        assert counts[0] == 100
        with pytest.raises(BPFError, match="batch_size 1000 is larger than this kernel") as e:
            p.test_run(udp_packet(), repeat=10, batch_size=1000,
                       flags=BPF_F_TEST_XDP_LIVE_FRAMES)
        assert e.value.errno == errno.E2BIG
    assert run.duration_ns >= 0


def test_batch_size_and_cpu_need_their_flags():
    with load_program("xdp", assemble("r0 = 2\nexit")) as p:
        with pytest.raises(ValueError, match="BPF_F_TEST_XDP_LIVE_FRAMES"):
            p.test_run(udp_packet(), batch_size=8)
        with pytest.raises(ValueError, match="BPF_F_TEST_RUN_ON_CPU"):
            p.test_run(udp_packet(), cpu=1)
        with pytest.raises(BPFError, match="xdp does not accept this input") as e:
            p.test_run(udp_packet(), flags=BPF_F_TEST_RUN_ON_CPU, cpu=0)
        assert e.value.errno == errno.EINVAL


# --- flow dissector: struct bpf_flow_keys comes back as data_out ---------------------------

FLOW_DISSECTOR = f"""
    r2 = *(u64 *)(r1 + {SKB.offsetof('flow_keys')})
    r3 = *(u32 *)(r1 + {SKB.offsetof('data')})
    r4 = *(u32 *)(r1 + {SKB.offsetof('data_end')})
    r5 = *(u16 *)(r2 + {FLOW_KEYS.offsetof('nhoff')})
    if r5 > 1500 goto drop  # bounded, or the verifier cannot prove r3 + 20 fits a packet
    r3 += r5
    r6 = r3
    r6 += 20
    if r6 > r4 goto drop
    r7 = *(u8 *)(r3 + 9)
    *(u8 *)(r2 + {FLOW_KEYS.offsetof('ip_proto')}) = w7
    r5 += 20
    *(u16 *)(r2 + {FLOW_KEYS.offsetof('thoff')}) = w5
    r0 = {BPF_OK}
    exit
drop:
    r0 = -1
    exit"""


def flow_key(keys: bytes, name: str, order: str = "little") -> int:
    f = FLOW_KEYS.field(name)
    return int.from_bytes(keys[f.offset:f.offset + f.size], order)


def test_flow_dissector_fills_flow_keys():
    with load_program("flow_dissector", assemble(FLOW_DISSECTOR, "flow.s"),
                      expected_attach_type="flow_dissector") as p:
        run = p.test_run(udp_packet(), repeat=10)
        assert run.retval == BPF_OK and len(run.data_out) == FLOW_KEYS.size
        keys = run.data_out
        assert flow_key(keys, "nhoff") == 14 and flow_key(keys, "thoff") == 34
        assert flow_key(keys, "ip_proto") == 17
        assert flow_key(keys, "n_proto", "big") == 0x0800  # set by the kernel

        # ctx_in is a struct bpf_flow_keys whose only input is flags; they reach the program.
        ctx = bytearray(FLOW_KEYS.size)
        struct.pack_into("<I", ctx, FLOW_KEYS.offsetof("flags"), 1)
        run = p.test_run(udp_packet(), ctx=bytes(ctx))
        assert flow_key(run.data_out, "flags") == 1 and run.ctx_out == bytes(ctx)

        ctx[FLOW_KEYS.offsetof("ip_proto")] = 6  # not an input: refused
        with pytest.raises(BPFError, match="flow_dissector does not accept"):
            p.test_run(udp_packet(), ctx=bytes(ctx))
        truncated = udp_packet()[:30]  # IPv4 header cut short: the program says drop
        assert p.test_run(truncated).retval == 0xFFFFFFFF


# --- raw tracepoint: ctx is the argument array; cpu with BPF_F_TEST_RUN_ON_CPU -------------

def test_raw_tracepoint_args():
    prog = assemble("""
        r2 = *(u64 *)(r1 + 0)
        r3 = *(u64 *)(r1 + 8)
        r2 += r3
        r0 = r2
        exit""", "raw_tp.s")
    with load_program("raw_tracepoint", prog) as p:
        run = p.test_run(ctx=struct.pack("<QQ", 40, 2))
        assert run.retval == 42 and run.data_out == b"" and run.ctx_out == b""
        with pytest.raises(BPFError, match="shorter than the offsets the program reads"):
            p.test_run(ctx=struct.pack("<Q", 40))  # the program reads 16 bytes
        with pytest.raises(ValueError, match="run once per test run"):
            p.test_run(ctx=bytes(16), repeat=5)
        with pytest.raises(ValueError, match="take no packet data"):
            p.test_run(b"data", ctx=bytes(16))


def test_raw_tracepoint_on_each_cpu():
    online = sorted(os.sched_getaffinity(0))
    with load_program("raw_tracepoint", assemble("call 8\nexit")) as p:  # get_smp_processor_id
        for cpu in online:
            assert p.test_run(flags=BPF_F_TEST_RUN_ON_CPU, cpu=cpu).retval == cpu
        with pytest.raises(BPFError, match="cpu 100000 does not exist or is offline") as e:
            p.test_run(flags=BPF_F_TEST_RUN_ON_CPU, cpu=100_000)
    assert e.value.errno == errno.ENXIO


# --- syscall programs: the ctx comes back as the program left it ---------------------------

def test_syscall_program_writes_its_ctx():
    prog = assemble("""
        r2 = *(u32 *)(r1 + 0)
        r3 = *(u32 *)(r1 + 4)
        r2 += r3
        *(u32 *)(r1 + 8) = w2
        r0 = 7
        exit""", "syscall.s")
    ctx = struct.pack("<III", 3, 4, 0)
    with load_program("syscall", prog, flags=BPF_F_SLEEPABLE) as p:
        run = p.test_run(ctx=ctx)
        assert run.retval == 7 and run.ctx_out == struct.pack("<III", 3, 4, 7)
        assert ctx == struct.pack("<III", 3, 4, 0)  # the caller's bytes are untouched
        with pytest.raises(BPFError, match="syscall does not accept"):
            p.test_run(ctx=ctx[:8])  # shorter than offset 12 the program touches


def test_small_output_buffers_grow_to_what_the_kernel_needs():
    prog = assemble("r0 = 2\nexit")
    packet = udp_packet(b"x" * 200)
    with load_program("xdp", prog) as p:
        run = p.test_run(packet, data_out_size=16)  # ENOSPC, data_size_out tells the size
        assert run.data_out == packet
    with load_program("sched_cls", prog) as p:
        run = p.test_run(packet, ctx=skb_ctx(mark=5), ctx_out_size=8)
        assert len(run.ctx_out) == SKB.size and skb_field(run.ctx_out, "mark") == 5
