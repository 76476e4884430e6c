"""The base of every instruction and the operand checks they share.

Instructions are immutable value objects. Each class is one semantic
operation (``Alu``, ``Load``, ``Atomic``, ``LoadMap`` ...); the kernel's
wire tricks (signedness in ``off``, two slots for a 64-bit immediate) are
known only to ``pybpf.asm.codec``. ``str()`` prints LLVM syntax, ``repr()``
the constructor call. Operands are checked when the instruction is built:
an error names the value, the limit and the instruction.

Instructions are also built by the hundred on the DSL's path, so the hot
classes test their usual operands inline first (a ``Reg`` that may be written,
an int in range, a label name: a few identity and range tests) and call the
``check_*`` helpers below only for the rest: those coerce the other accepted
spellings (an int register, a u32 immediate) or raise naming the value.
"""

from __future__ import annotations

import contextlib
import gc

from pybpf.asm.register import FP, REGS, Reg
from pybpf.errors import AsmError

TYPE_CHECKING = False  # as typing's: importing typing costs ~5 ms (with re) at start-up
if TYPE_CHECKING:
    from typing import ClassVar

Target = int | str
"""A jump or call target: a relative offset in slots, or a label name."""

S16 = (-(1 << 15), (1 << 15) - 1)
S32 = (-(1 << 31), (1 << 31) - 1)
S16_MIN, S16_MAX = S16
S32_MIN, S32_MAX = S32
U32 = (0, (1 << 32) - 1)
S64 = (-(1 << 63), (1 << 63) - 1)
U64 = (0, (1 << 64) - 1)


class Instruction:
    """Base of all instructions; ``slots`` is the number of 8-byte slots it takes."""

    __slots__ = ()
    slots: ClassVar[int] = 1

    def targets(self) -> tuple[Target, ...]:
        """Jump or call targets this instruction refers to (empty for most)."""
        return ()

    def with_target(self, target: int) -> Instruction:
        """A copy whose symbolic target is replaced by a relative offset."""
        raise AsmError(f"{self} has no target")


def check_reg(insn: Instruction, name: str, *, writes: bool = False) -> None:
    """Coerce the register field ``name`` to Reg; reject out-of-range values and r10 writes."""
    reg = getattr(insn, name)
    if type(reg) is not Reg:
        if isinstance(reg, bool) or not isinstance(reg, int) or not 0 <= reg <= 10:
            raise AsmError(f"{name} register {reg!r} is not r0..r10 in {type(insn).__name__}")
        reg = REGS[reg]
        object.__setattr__(insn, name, reg)
    if writes and reg is FP:
        raise AsmError(f"r10 is the read-only frame pointer; cannot write it in {insn}")


def check_int(insn: Instruction, name: str, limits: tuple[int, int], what: str) -> int:
    """Reject a non-int or out-of-range field, naming the value and the limit."""
    value = getattr(insn, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise AsmError(f"{name} must be an int, got {value!r} in {type(insn).__name__}")
    low, high = limits
    if not low <= value <= high:
        raise AsmError(f"{name} {value} does not fit {what} ({low}..{high}) in {insn}")
    return value


def check_target(insn: Instruction, name: str, limits: tuple[int, int], what: str,
                 hint: str = "") -> None:
    """A target is a label name or a relative offset that fits the field."""
    value = getattr(insn, name)
    if isinstance(value, str):
        if not value:
            raise AsmError(f"empty label name in {type(insn).__name__}")
        return
    try:
        check_int(insn, name, limits, what)
    except AsmError as e:
        raise AsmError(str(e) + hint) from None


def check_imm32(insn: Instruction, name: str, *, unsigned_ok: bool) -> None:
    """An imm is s32; where only 32 bits matter, u32 spellings are folded to s32."""
    if unsigned_ok:
        value = check_int(insn, name, (S32[0], U32[1]), "s32 or u32")
        if value > S32[1]:
            object.__setattr__(insn, name, value - (1 << 32))
    else:
        value = getattr(insn, name)
        if isinstance(value, int) and S32[1] < value <= U32[1]:
            raise AsmError(
                f"imm {value} does not fit s32 in {insn}: the kernel sign-extends it to 64 bits "
                f"({value - (1 << 32)}); use a 64-bit immediate load (`{_dst(insn)} = {value} ll`)")
        check_int(insn, name, S32, "s32")


def check_choice(insn: Instruction, name: str, choices, what: str) -> None:
    value = getattr(insn, name)
    if value not in choices:
        allowed = ", ".join(str(c) for c in choices)
        raise AsmError(f"{name} {value!r} is not a valid {what} (one of {allowed}) "
                       f"in {type(insn).__name__}")


def fmt_target(target: Target) -> str:
    """``+3``, ``-1`` or a label name."""
    if isinstance(target, str):
        return target
    return f"+{target}" if target >= 0 else str(target)


def fmt_offset(off: int) -> str:
    """``+ 8`` / ``- 8`` inside a memory operand."""
    return f"+ {off}" if off >= 0 else f"- {-off}"


def fmt_imm(value: int) -> str:
    return str(value)


def _dst(insn: Instruction) -> str:
    dst = getattr(insn, "dst", None)
    return f"r{int(dst)}" if isinstance(dst, int) else "rX"


@contextlib.contextmanager
def no_gc():
    """Pause the cyclic garbage collector while building many acyclic objects.

    Instructions hold no references to containers, so the collector only
    costs time here (it rescans the growing list of instructions again and
    again); it is restored even if building fails.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
