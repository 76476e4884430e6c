"""Test scaffolding: load hand-encoded programs and create maps with bpf() directly.

Stands in for pybpf.asm and pybpf.syscall.programs/maps until those land; the
opcode values are those of the eBPF ISA (RFC 9669), written out here only for
the handful of instructions the attach and event tests need.
"""

from __future__ import annotations

import struct

from pybpf.syscall._ffi import address, ffi
from pybpf.syscall._uapi import AttachType, Cmd, MapType, ProgType
from pybpf.syscall.bpf import bpf, new_attr
from pybpf.syscall.objects import FdObject

# RFC 9669 opcode pieces used below
LD, LDX, ST, STX, ALU64, JMP = 0x00, 0x01, 0x02, 0x03, 0x07, 0x05
W, H, B, DW = 0x00, 0x08, 0x10, 0x18
IMM, ABS, MEM, ATOMIC = 0x00, 0x20, 0x60, 0xC0
K, X = 0x00, 0x08
ADD, MOV = 0x00, 0xB0
JEQ, JNE, CALL, EXIT = 0x10, 0x50, 0x80, 0x90


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One 8-byte instruction: opcode, dst/src nibbles, s16 offset, s32 immediate."""
    return struct.pack("<BBhi", code, dst | (src << 4), off, imm)


def mov_imm(dst, imm):
    return insn(ALU64 | MOV | K, dst, imm=imm)


def mov_reg(dst, src):
    return insn(ALU64 | MOV | X, dst, src)


def add_imm(dst, imm):
    return insn(ALU64 | ADD | K, dst, imm=imm)


def ld_map_fd(dst, fd):
    return insn(LD | IMM | DW, dst, 1, imm=fd) + insn(0)


def call(helper):
    return insn(JMP | CALL, imm=helper)


def exit_():
    return insn(JMP | EXIT)


def counter_then(map_fd: int, ret: int, prologue: bytes = b"", key: int = 0) -> bytes:
    """``prologue``; map[key] += 1 (atomically) in an ARRAY of u64; return ``ret``."""
    return (prologue
            + mov_reg(6, 1)
            + insn(ST | MEM | W, 10, off=-4, imm=key)
            + mov_reg(2, 10) + add_imm(2, -4)
            + ld_map_fd(1, map_fd)
            + call(1)                                   # bpf_map_lookup_elem
            + insn(JMP | JEQ | K, 0, off=2, imm=0)
            + mov_imm(1, 1)
            + insn(STX | ATOMIC | DW, 0, 1, off=0, imm=ADD)
            + mov_reg(1, 6)
            + mov_imm(0, ret) + exit_())


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
                 prologue: bytes = b"", attach_btf_id: int = 0) -> Prog:
    """A program of ``prog_type`` that counts its runs in ``m[0]`` and returns ``ret``."""
    return Prog(prog_type, counter_then(m.fd, ret, prologue), attach_type=attach_type,
                attach_btf_id=attach_btf_id)


# -- a few more instructions, and labels, for the event producers -------------------------

ALU = 0x04
AND, MUL = 0x50, 0x20
FETCH = 0x01


def alu_imm(op, dst, imm):
    return insn(ALU64 | op | K, dst, imm=imm)


def stx(size, dst, off, src):
    return insn(STX | MEM | size, dst, src, off=off)


def st_imm(size, dst, off, imm):
    return insn(ST | MEM | size, dst, off=off, imm=imm)


def link(items) -> bytes:
    """Resolve ("label", name) and ("jmp", opcode, dst, imm, name) items into bytes."""
    pos, labels = 0, {}
    for it in items:
        if isinstance(it, tuple) and it[0] == "label":
            labels[it[1]] = pos
        elif isinstance(it, tuple):
            pos += 1
        else:
            pos += len(it) // 8
    out, pos = [], 0
    for it in items:
        if isinstance(it, tuple) and it[0] == "label":
            continue
        if isinstance(it, tuple):
            _, op, dst, imm, name = it
            out.append(insn(op, dst, off=labels[name] - pos - 1, imm=imm))
            pos += 1
        else:
            out.append(it)
            pos += len(it) // 8
    return b"".join(out)


def helper(name: str) -> int:
    from pybpf.syscall._uapi import HelperId
    return int(HelperId[name])


RECORD_SIZE = 32  # struct { u64 seq; u64 cpu; u64 magic; u64 seq_x3; }
MAGIC = 0x5A5A


def _seq_prologue(seq_fd):
    """r7 = atomic_fetch_add(&seq[0], 1), or exit when the lookup fails."""
    return [mov_reg(6, 1), st_imm(W, 10, -4, 0), mov_reg(2, 10), add_imm(2, -4),
            ld_map_fd(1, seq_fd), call(helper("map_lookup_elem")),
            ("jmp", JMP | JEQ | K, 0, 0, "out"),
            mov_imm(1, 1), insn(STX | ATOMIC | DW, 0, 1, imm=ADD | FETCH), mov_reg(7, 1)]


def ringbuf_producer(seq: Map, ring: Map, discard_every: int = 0) -> Prog:
    """XDP program: reserve a 32-byte record {seq, cpu, MAGIC, seq*3}; submit (or discard)."""
    items = _seq_prologue(seq.fd) + [
        ld_map_fd(1, ring.fd), mov_imm(2, RECORD_SIZE), mov_imm(3, 0),
        call(helper("ringbuf_reserve")),
        ("jmp", JMP | JEQ | K, 0, 0, "out"),
        mov_reg(8, 0), stx(DW, 8, 0, 7),
        call(helper("get_smp_processor_id")), stx(DW, 8, 8, 0),
        st_imm(DW, 8, 16, MAGIC),
        mov_reg(1, 7), alu_imm(MUL, 1, 3), stx(DW, 8, 24, 1)]
    if discard_every:
        items += [mov_reg(1, 7), alu_imm(AND, 1, discard_every - 1),
                  ("jmp", JMP | JEQ | K, 1, 0, "discard")]
    items += [mov_reg(1, 8), mov_imm(2, 0), call(helper("ringbuf_submit")),
              ("jmp", JMP | 0x00, 0, 0, "out")]
    if discard_every:
        items += [("label", "discard"), mov_reg(1, 8), mov_imm(2, 0),
                  call(helper("ringbuf_discard"))]
    items += [("label", "out"), mov_imm(0, 2), exit_()]
    return Prog(ProgType.XDP, link(items), name="rb_producer")


def perf_producer(seq: Map, perf: Map) -> Prog:
    """XDP program: bpf_perf_event_output(ctx, perf, BPF_F_CURRENT_CPU, {seq,cpu,MAGIC,seq*3})."""
    items = _seq_prologue(seq.fd) + [
        stx(DW, 10, -40, 7),
        call(helper("get_smp_processor_id")), stx(DW, 10, -32, 0),
        st_imm(DW, 10, -24, MAGIC),
        mov_reg(1, 7), alu_imm(MUL, 1, 3), stx(DW, 10, -16, 1),
        mov_reg(1, 6), ld_map_fd(2, perf.fd),
        insn(ALU | MOV | K, 3, imm=-1),          # w3 = BPF_F_CURRENT_CPU (0xffffffff)
        mov_reg(4, 10), add_imm(4, -40), mov_imm(5, RECORD_SIZE),
        call(helper("perf_event_output")),
        ("label", "out"), mov_imm(0, 2), exit_()]
    return Prog(ProgType.XDP, link(items), name="perf_producer")


def ld_imm64(dst, value):
    """dst = value (64-bit immediate over two slots)."""
    lo, hi = value & 0xFFFFFFFF, (value >> 32) & 0xFFFFFFFF
    as_s32 = lambda v: v - (1 << 32) if v >= 1 << 31 else v  # noqa: E731
    return insn(LD | IMM | DW, dst, imm=as_s32(lo)) + insn(0, imm=as_s32(hi))
