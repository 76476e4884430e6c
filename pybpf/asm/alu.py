"""Arithmetic and logic: ``Alu``, ``Neg``, ``Endian`` and ``AddrSpaceCast``.

``width`` is 64 (BPF_ALU64, registers ``rN``) or 32 (BPF_ALU, registers
``wN``, result zero-extended into the upper half).
"""

from __future__ import annotations

import enum

from pybpf._enum import simple_enum
from pybpf._record import record
from pybpf.asm.instruction import (
    S32_MAX,
    S32_MIN,
    Instruction,
    check_choice,
    check_imm32,
    check_int,
    check_reg,
    fmt_imm,
)
from pybpf.asm.opcode import AluOp
from pybpf.asm.register import FP, Reg
from pybpf.errors import AsmError


@enum.unique
@simple_enum(enum.Enum)
class Arith:
    """A two-operand ALU operation; signed division and sign-extending moves are their own.

    Each value is (LLVM operator, wire AluOp, wire off).
    """

    __hash__ = object.__hash__  # members are singletons; Enum's hash runs Python code

    ADD = ("+=", AluOp.ADD, 0)
    SUB = ("-=", AluOp.SUB, 0)
    MUL = ("*=", AluOp.MUL, 0)
    DIV = ("/=", AluOp.DIV, 0)
    SDIV = ("s/=", AluOp.DIV, 1)
    MOD = ("%=", AluOp.MOD, 0)
    SMOD = ("s%=", AluOp.MOD, 1)
    OR = ("|=", AluOp.OR, 0)
    AND = ("&=", AluOp.AND, 0)
    XOR = ("^=", AluOp.XOR, 0)
    LSH = ("<<=", AluOp.LSH, 0)
    RSH = (">>=", AluOp.RSH, 0)
    ARSH = ("s>>=", AluOp.ARSH, 0)
    MOV = ("=", AluOp.MOV, 0)
    MOVSX8 = ("= (s8)", AluOp.MOV, 8)
    MOVSX16 = ("= (s16)", AluOp.MOV, 16)
    MOVSX32 = ("= (s32)", AluOp.MOV, 32)

    def __repr__(self) -> str:
        return f"Arith.{self.name}"

    @property
    def operator(self) -> str:
        return self.value[0]

    @property
    def wire(self) -> tuple[AluOp, int]:
        """The (AluOp, off) pair the kernel encodes this operation as."""
        return self.value[1], self.value[2]

    @property
    def sign_extends(self) -> bool:
        return self in _SIGN_EXTENDING


_SIGN_EXTENDING = frozenset((Arith.MOVSX8, Arith.MOVSX16, Arith.MOVSX32))
"""The MOVSX operations (a set: ``Arith.MOVSX8`` costs ~70 ns through the enum class)."""
_MOVSX32 = Arith.MOVSX32
ARITH_BY_WIRE = {a.wire: a for a in Arith}
# Shift counts are not range-checked here: RFC 9669 masks them (the verifier
# rejects counts >= width, the ISA does not).
_WIDTHS = (32, 64)
_SWAP_WIDTHS = (16, 32, 64)


def _reg_name(reg: int, width: int) -> str:
    return f"w{int(reg)}" if width == 32 else f"r{int(reg)}"


@record
class Alu(Instruction):
    """``dst op= src``: BPF_ALU/BPF_ALU64 with a register (BPF_X) or immediate (BPF_K) source."""

    op: Arith
    dst: Reg
    src: Reg | int
    width: int = 64

    def __post_init__(self):
        op, dst, src, width = self.op, self.dst, self.src, self.width
        if not isinstance(op, Arith):
            raise AsmError(f"op must be an Arith operation, got {op!r}")
        if width not in _WIDTHS:
            check_choice(self, "width", _WIDTHS, "ALU width")
        if type(dst) is not Reg or dst is FP:
            check_reg(self, "dst", writes=True)
        if type(src) is Reg:
            pass
        elif op in _SIGN_EXTENDING:
            raise AsmError(f"{op.name} needs a register source, got imm {src!r}")
        elif type(src) is not int or not S32_MIN <= src <= S32_MAX:
            check_imm32(self, "src", unsigned_ok=width == 32)
        if op is _MOVSX32 and width == 32:
            raise AsmError(f"MOVSX32 exists only in 64-bit form (r{int(self.dst)} = (s32)r...)")

    @property
    def is_imm(self) -> bool:
        return not isinstance(self.src, Reg)

    def __str__(self) -> str:
        d = _reg_name(self.dst, self.width)
        s = fmt_imm(self.src) if self.is_imm else _reg_name(self.src, self.width)
        if self.op.sign_extends:
            return f"{d} {self.op.operator}{s}"
        return f"{d} {self.op.operator} {s}"


@record
class Neg(Instruction):
    """``dst = -dst``: BPF_NEG (immediate form only; the register form is not valid)."""

    dst: Reg
    width: int = 64

    def __post_init__(self):
        check_choice(self, "width", _WIDTHS, "ALU width")
        check_reg(self, "dst", writes=True)

    def __str__(self) -> str:
        d = _reg_name(self.dst, self.width)
        return f"{d} = -{d}"


@enum.unique
@simple_enum(enum.Enum)
class ByteOrder:
    """Byte swap kind: to little endian, to big endian, or unconditional (BPF_END)."""

    __hash__ = object.__hash__  # members are singletons; Enum's hash runs Python code

    LE = "le"
    BE = "be"
    BSWAP = "bswap"

    def __repr__(self) -> str:
        return f"ByteOrder.{self.name}"


@record
class Endian(Instruction):
    """``dst = be16 dst`` and friends: BPF_END; converts and zero-extends the low ``bits``."""

    order: ByteOrder
    dst: Reg
    bits: int

    def __post_init__(self):
        if not isinstance(self.order, ByteOrder):
            raise AsmError(f"order must be a ByteOrder, got {self.order!r}")
        dst = self.dst
        if type(dst) is not Reg or dst is FP:
            check_reg(self, "dst", writes=True)
        if self.bits not in _SWAP_WIDTHS:
            check_choice(self, "bits", _SWAP_WIDTHS, "byte swap width")

    def __str__(self) -> str:
        return f"r{int(self.dst)} = {self.order.value}{self.bits} r{int(self.dst)}"


@record
class AddrSpaceCast(Instruction):
    """``dst = addr_space_cast(src, dst_as, src_as)``: arena pointer cast (BPF_MOV64, off 1)."""

    dst: Reg
    src: Reg
    dst_as: int
    src_as: int

    def __post_init__(self):
        check_reg(self, "dst", writes=True)
        check_reg(self, "src")
        check_int(self, "dst_as", (0, 0xFFFF), "u16 address space")
        check_int(self, "src_as", (0, 0xFFFF), "u16 address space")
        if (self.dst_as, self.src_as) not in ((0, 1), (1, 0)):
            # The kernel defines only the two arena casts (imm 1 and 0x10000).
            raise AsmError(f"addr_space_cast from address space {self.src_as} to {self.dst_as} "
                           "does not exist: only 1 -> 0 and 0 -> 1 (arena) are defined")

    def __str__(self) -> str:
        return f"r{int(self.dst)} = addr_space_cast(r{int(self.src)}, {self.dst_as}, {self.src_as})"
