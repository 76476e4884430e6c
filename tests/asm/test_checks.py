"""Operand checks at construction: the hot instructions' inline tests for the usual operands
(a Reg, an int in range, a label) must accept, coerce and reject exactly as the check_* helpers."""

from __future__ import annotations

import pytest

from pybpf.asm import (
    Alu,
    Arith,
    ByteOrder,
    Endian,
    Goto,
    Jump,
    JumpOp,
    Load,
    LoadSX,
    Reg,
    Size,
    Store,
    StoreImm,
)
from pybpf.asm.program import SourcePos
from pybpf.errors import AsmError

R1, R2, R10 = Reg.R1, Reg.R2, Reg.R10


@pytest.mark.parametrize("made, field, value", [
    (Alu(Arith.ADD, 3, 4), "dst", Reg.R3),                   # an int register becomes a Reg
    (Alu(Arith.ADD, R1, 4), "src", 4),                        # an int source is an immediate
    (Alu(Arith.ADD, R1, 0xFFFFFFFF, 32), "src", -1),          # u32 spelling of a 32-bit imm
    (Jump(JumpOp.JEQ, R1, 0x80000000, "out", 32), "src", -(1 << 31)),
    (Jump(JumpOp.JEQ, 1, R2, "out"), "dst", R1),
    (Load(2, 10, -8, 8), "size", Size.DW),                    # a byte count becomes a Size
    (Load(2, 10, -8, 8), "src", R10),
    (StoreImm(R10, 0xFFFFFFFF, -4, Size.W), "imm", -1),
    (Store(R10, R1, -(1 << 15), Size.DW), "off", -(1 << 15)),
])
def test_other_spellings_are_coerced(made, field, value):
    got = getattr(made, field)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("make, message", [
    (lambda: Alu(Arith.ADD, R10, 1), "r10 is the read-only frame pointer"),
    (lambda: Alu(Arith.ADD, 11, 1), "dst register 11 is not r0..r10"),
    (lambda: Alu(Arith.ADD, R1, 1 << 31), "does not fit s32"),
    (lambda: Alu(Arith.ADD, R1, True), "src must be an int, got True"),
    (lambda: Alu(Arith.ADD, R1, 1, 16), "width 16 is not a valid ALU width"),
    (lambda: Alu(Arith.MOVSX8, R1, 1), "MOVSX8 needs a register source"),
    (lambda: Alu(Arith.MOVSX32, R1, R2, 32), "MOVSX32 exists only in 64-bit form"),
    (lambda: Jump(JumpOp.JEQ, R1, 1, ""), "empty label name"),
    (lambda: Jump(JumpOp.JEQ, R1, 1, 1 << 15), "does not fit s16 jump offset"),
    (lambda: Jump(JumpOp.JEQ, R1, -(1 << 31) - 1, "out"), "does not fit s32"),
    (lambda: Goto(""), "empty label name"),
    (lambda: Goto(-(1 << 15) - 1), "use gotol"),
    (lambda: Load(R10, R1, 0, Size.W), "r10 is the read-only frame pointer"),
    (lambda: Load(R1, R2, 1 << 15, Size.W), "off 32768 does not fit s16"),
    (lambda: Load(R1, R2, False, Size.W), "off must be an int"),
    (lambda: Load(R1, R2, 0, 3), "size must be a Size or 1, 2, 4, 8 bytes"),
    (lambda: LoadSX(R1, R2, 0, Size.DW), "size DW is not allowed for LoadSX"),
    (lambda: Store(R1, "r2", 0, Size.W), "src register 'r2' is not r0..r10"),
    (lambda: StoreImm(R10, 1 << 31, 0, Size.DW), "does not fit s32"),
    (lambda: Endian(ByteOrder.BE, R10, 16), "r10 is the read-only frame pointer"),
    (lambda: Endian(ByteOrder.BE, R1, 8), "bits 8 is not a valid byte swap width"),
])
def test_bad_operands_are_named(make, message):
    with pytest.raises(AsmError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_source_pos_is_a_named_tuple_with_defaults():
    pos = SourcePos("prog.py", 12)
    assert pos == ("prog.py", 12, 0, "") and (pos.column, pos.text) == (0, "")
    assert str(pos) == "prog.py:12" and str(pos._replace(column=5)) == "prog.py:12:5"
    assert repr(pos) == "SourcePos(file='prog.py', line=12, column=0, text='')"
