"""Property tests of the codec: every valid instruction round-trips; any bytes decode or fail cleanly."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from pybpf.asm import (
    AddrSpaceCast,
    Alu,
    Arith,
    Atomic,
    AtomicKind,
    ByteOrder,
    Call,
    CallKfunc,
    CallLocal,
    CallX,
    Endian,
    Exit,
    Goto,
    GotoLong,
    Jump,
    Load,
    LoadAbs,
    LoadAcquire,
    LoadBtfId,
    LoadFunc,
    LoadImm64,
    LoadInd,
    LoadMap,
    LoadSX,
    MayGoto,
    Neg,
    Reg,
    Size,
    Store,
    StoreImm,
    StoreRelease,
    decode,
    encode,
)
from pybpf.asm.jump import CONDITIONS
from pybpf.errors import AsmError

S16 = st.integers(-(1 << 15), (1 << 15) - 1)
S32 = st.integers(-(1 << 31), (1 << 31) - 1)
U31 = st.integers(0, (1 << 31) - 1)
REG = st.sampled_from(list(Reg))
WREG = st.sampled_from([r for r in Reg if r != Reg.R10])  # writable
SIZE = st.sampled_from(list(Size))
WIDTH = st.sampled_from([32, 64])


@st.composite
def alu(draw):
    op = draw(st.sampled_from(list(Arith)))
    width = 64 if op == Arith.MOVSX32 else draw(WIDTH)
    src = draw(REG) if op.sign_extends else draw(st.one_of(REG, S32))
    return Alu(op, draw(WREG), src, width)


@st.composite
def atomic(draw):
    kind = draw(st.sampled_from(list(AtomicKind)))
    src = WREG if kind.fetches and kind != AtomicKind.CMPXCHG else REG
    return Atomic(kind, draw(REG), draw(src), draw(S16), draw(st.sampled_from([Size.W, Size.DW])))


def _edges(strategy, *values):
    """Bias a strategy toward its limits, where encoders go wrong."""
    return st.one_of(st.sampled_from(values), strategy)


OFF = _edges(S16, -(1 << 15), (1 << 15) - 1, -1, 0)
IMM = _edges(S32, -(1 << 31), (1 << 31) - 1, -1, 0)

INSTRUCTIONS = st.one_of(
    alu(),
    st.builds(Neg, WREG, WIDTH),
    st.builds(Endian, st.sampled_from(list(ByteOrder)), WREG, st.sampled_from([16, 32, 64])),
    st.builds(lambda d, s, to_arena: AddrSpaceCast(d, s, *((1, 0) if to_arena else (0, 1))),
              WREG, REG, st.booleans()),
    st.builds(Jump, st.sampled_from(list(CONDITIONS)), REG, st.one_of(REG, IMM), OFF, WIDTH),
    st.builds(Goto, OFF),
    st.builds(GotoLong, IMM),
    st.builds(MayGoto, OFF),
    st.builds(Call, U31),
    st.builds(CallLocal, IMM),
    st.builds(CallKfunc, U31, st.integers(0, (1 << 15) - 1)),
    st.builds(CallX, REG),
    st.builds(Exit),
    st.builds(Load, WREG, REG, OFF, SIZE),
    st.builds(LoadSX, WREG, REG, OFF, st.sampled_from([Size.B, Size.H, Size.W])),
    st.builds(Store, REG, REG, OFF, SIZE),
    st.builds(StoreImm, REG, IMM, OFF, SIZE),
    atomic(),
    st.builds(LoadAcquire, WREG, REG, OFF, SIZE),
    st.builds(StoreRelease, REG, REG, OFF, SIZE),
    st.builds(LoadImm64, WREG, st.integers(-(1 << 63), (1 << 64) - 1)),
    st.builds(LoadMap, WREG, U31, st.one_of(st.none(), U31), st.booleans()),
    st.builds(LoadBtfId, WREG, U31, U31),
    st.builds(LoadFunc, WREG, IMM),
    st.builds(LoadAbs, st.sampled_from([Size.B, Size.H, Size.W]), IMM),
    st.builds(LoadInd, st.sampled_from([Size.B, Size.H, Size.W]), REG, IMM),
)


@given(INSTRUCTIONS)
@settings(max_examples=1500)
def test_instruction_round_trips(insn):
    data = encode(insn)
    assert len(data) == 8 * insn.slots
    assert decode(data) == [insn]


@given(st.lists(INSTRUCTIONS, max_size=20))
def test_program_round_trips(program):
    assert decode(encode(program)) == program


@given(alu().filter(lambda i: i.width == 32 and i.is_imm))
def test_u32_spelling_of_alu32_imm_is_the_same_instruction(insn):
    assert Alu(insn.op, insn.dst, insn.src & 0xFFFFFFFF, 32) == insn


# Slots built from plausible fields find more decoder paths than uniform bytes.
VALID_OPCODES = sorted({encode(i)[0] for i in (
    Alu(op, Reg.R1, src, w) for op in Arith for w in (32, 64) for src in (Reg.R2, 1)
    if not (op.sign_extends and src == 1) and not (op == Arith.MOVSX32 and w == 32))}
    | {0x84, 0x87, 0xD4, 0xDC, 0xD7, 0x05, 0x06, 0xE5, 0x85, 0x8D, 0x95, 0x18, 0x00}
    | {cls | mode | size for cls, mode in ((0x00, 0x20), (0x00, 0x40), (0x01, 0x60), (0x01, 0x80),
                                          (0x02, 0x60), (0x03, 0x60), (0x03, 0xC0))
       for size in (0x00, 0x08, 0x10, 0x18)}
    | {cls | op | src for cls in (0x05, 0x06) for op in CONDITIONS for src in (0, 8)})


@st.composite
def slot(draw):
    opcode = draw(st.one_of(st.sampled_from(VALID_OPCODES), st.integers(0, 255)))
    regs = draw(st.one_of(st.integers(0, 0xAA).filter(lambda r: r & 0xF <= 10 and r >> 4 <= 10),
                          st.integers(0, 255)))
    off = draw(st.one_of(st.sampled_from([0, 1, 8, 16, 32, -1]), S16))
    imm = draw(st.one_of(st.sampled_from([0, 1, 16, 32, 64, 0xE1, 0xF1, 0x100, 0x110, 0x51, -1]),
                         S32))
    return struct.pack("<BBhi", opcode, regs, off, imm)


@given(st.one_of(st.binary(max_size=80), st.lists(slot(), max_size=6).map(b"".join)))
@settings(max_examples=3000)
def test_decoder_raises_only_asm_error_and_is_exact(data):
    try:
        program = decode(data)
    except AsmError:
        return
    # Whatever decodes is canonical: encoding it gives back exactly the same bytes.
    assert encode(program) == data
