"""Test scaffolding: programs written in LLVM's BPF syntax (pybpf.asm), bare maps.

The programs are assembled by ``pybpf.asm.llvm.assemble`` and loaded with bpf()
directly, so that these tests exercise the attach and event code without the
DSL.  Maps are referred to by name (``r1 = counts ll``) and bound to fds at
encoding; helpers are called by their uapi number (``call {H['map_lookup_elem']}``).
"""

from __future__ import annotations

import struct

from pybpf.asm.llvm import assemble
from pybpf.syscall._ffi import address, ffi
from pybpf.syscall._uapi import AttachType, Cmd, HelperId, MapType, ProgType
from pybpf.syscall.bpf import bpf, new_attr
from pybpf.syscall.objects import FdObject

#: helper name -> BPF_FUNC_* number, for ``call {H[...]}`` in program text
H = {h.name: int(h) for h in HelperId}


def asm(text: str, **maps: int) -> bytes:
    """Assemble LLVM-syntax ``text``; ``maps`` binds the map names it loads to fds."""
    return assemble(text, "kit.s").encode(maps=maps)


def counting(key: int = 0) -> str:
    """``counts[key] += 1`` (atomically) in an ARRAY of u64 named ``counts``; ctx kept in r6."""
    return f"""
        r6 = r1
        *(u32 *)(r10 - 4) = {key}
        r2 = r10
        r2 += -4
        r1 = counts ll
        call {H['map_lookup_elem']}
        if r0 == 0 goto counted
        r1 = 1
        lock *(u64 *)(r0 + 0) += r1
    counted:
        r1 = r6
    """


def counter_then(map_fd: int, ret: int, prologue: str = "", key: int = 0) -> bytes:
    """``prologue``; map[key] += 1 (atomically) in an ARRAY of u64; return ``ret``."""
    return asm(prologue + counting(key) + f"r0 = {ret}\nexit", counts=map_fd)


class Map(FdObject):
    """A bare map for tests."""

    kind = "map"

    def __init__(self, map_type: MapType, key_size: int, value_size: int, max_entries: int,
                 flags: int = 0):
        attr = new_attr()
        attr.map_type = map_type
        attr.key_size = key_size
        attr.value_size = value_size
        attr.max_entries = max_entries
        attr.map_flags = flags
        super().__init__(bpf(Cmd.MAP_CREATE, attr), map_type.name)
        self.key_size, self.value_size = key_size, value_size

    def lookup(self, key: bytes) -> bytes:
        k = ffi.from_buffer(bytearray(key))
        v = ffi.new("char[]", self.value_size)
        attr = new_attr()
        attr.map_fd = self.fd
        attr.key = address(k)
        attr.value = address(v)
        bpf(Cmd.MAP_LOOKUP_ELEM, attr)
        return bytes(ffi.buffer(v))

    def update(self, key: bytes, value: bytes) -> None:
        k = ffi.from_buffer(bytearray(key))
        v = ffi.from_buffer(bytearray(value))
        attr = new_attr()
        attr.map_fd = self.fd
        attr.key = address(k)
        attr.value = address(v)
        bpf(Cmd.MAP_UPDATE_ELEM, attr)

    def u64(self, index: int = 0) -> int:
        return struct.unpack("<Q", self.lookup(struct.pack("<I", index)))[0]


def counter_map(entries: int = 1) -> Map:
    return Map(MapType.ARRAY, 4, 8, entries)


class Prog(FdObject):
    """A loaded program for tests."""

    kind = "prog"

    def __init__(self, prog_type: ProgType, code: bytes, *,
                 attach_type: AttachType | None = None, attach_btf_id: int = 0,
                 name: str = "test"):
        log = ffi.new("char[]", 1 << 16)
        insns = ffi.from_buffer(bytearray(code))
        lic = ffi.new("char[]", b"GPL")
        attr = new_attr()
        attr.prog_type = prog_type
        attr.insn_cnt = len(code) // 8
        attr.insns = address(insns)
        attr.license = address(lic)
        attr.log_level = 1
        attr.log_size = 1 << 16
        attr.log_buf = address(log)
        attr.prog_name = name.encode()[:15]
        if attach_type is not None:
            attr.expected_attach_type = attach_type
        attr.attach_btf_id = attach_btf_id
        try:
            fd = bpf(Cmd.PROG_LOAD, attr)
        except OSError as e:
            e.add_note(ffi.string(log).decode(errors="replace"))
            raise
        super().__init__(fd, name)
        self.prog_type = prog_type


def counter_prog(prog_type: ProgType, m: Map, ret: int, *, attach_type=None,
                 prologue: str = "", attach_btf_id: int = 0) -> Prog:
    """A program of ``prog_type`` that counts its runs in ``m[0]`` and returns ``ret``."""
    return Prog(prog_type, counter_then(m.fd, ret, prologue), attach_type=attach_type,
                attach_btf_id=attach_btf_id)


# -- the event producers ------------------------------------------------------------------

RECORD_SIZE = 32  # struct { u64 seq; u64 cpu; u64 magic; u64 seq_x3; }
MAGIC = 0x5A5A

#: r6 = ctx; r7 = atomic_fetch_add(&seq[0], 1), or exit when the lookup fails
_SEQ = f"""
        r6 = r1
        *(u32 *)(r10 - 4) = 0
        r2 = r10
        r2 += -4
        r1 = seq ll
        call {H['map_lookup_elem']}
        if r0 == 0 goto out
        r1 = 1
        r1 = atomic_fetch_add((u64 *)(r0 + 0), r1)
        r7 = r1
"""


def ringbuf_producer(seq: Map, ring: Map, discard_every: int = 0) -> Prog:
    """XDP program: reserve a 32-byte record {seq, cpu, MAGIC, seq*3}; submit (or discard)."""
    check, discard = "", ""
    if discard_every:
        check = f"""
        r1 = r7
        r1 &= {discard_every - 1}
        if r1 == 0 goto discard
        """
        discard = f"""
    discard:
        r1 = r8
        r2 = 0
        call {H['ringbuf_discard']}
        """
    text = _SEQ + f"""
        r1 = ring ll
        r2 = {RECORD_SIZE}
        r3 = 0
        call {H['ringbuf_reserve']}
        if r0 == 0 goto out
        r8 = r0
        *(u64 *)(r8 + 0) = r7
        call {H['get_smp_processor_id']}
        *(u64 *)(r8 + 8) = r0
        *(u64 *)(r8 + 16) = {MAGIC}
        r1 = r7
        r1 *= 3
        *(u64 *)(r8 + 24) = r1
        {check}
        r1 = r8
        r2 = 0
        call {H['ringbuf_submit']}
        goto out
        {discard}
    out:
        r0 = 2
        exit
    """
    return Prog(ProgType.XDP, asm(text, seq=seq.fd, ring=ring.fd), name="rb_producer")


def perf_producer(seq: Map, perf: Map) -> Prog:
    """XDP program: bpf_perf_event_output(ctx, perf, BPF_F_CURRENT_CPU, {seq,cpu,MAGIC,seq*3})."""
    text = _SEQ + f"""
        *(u64 *)(r10 - 40) = r7
        call {H['get_smp_processor_id']}
        *(u64 *)(r10 - 32) = r0
        *(u64 *)(r10 - 24) = {MAGIC}
        r1 = r7
        r1 *= 3
        *(u64 *)(r10 - 16) = r1
        r1 = r6
        r2 = perf ll
        w3 = -1                       # BPF_F_CURRENT_CPU (0xffffffff)
        r4 = r10
        r4 += -40
        r5 = {RECORD_SIZE}
        call {H['perf_event_output']}
    out:
        r0 = 2
        exit
    """
    return Prog(ProgType.XDP, asm(text, seq=seq.fd, perf=perf.fd), name="perf_producer")
