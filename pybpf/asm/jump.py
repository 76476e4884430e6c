"""Control flow: conditional jumps, gotos, calls and exit.

Targets are relative offsets in slots (``+3`` skips three slots) or label
names that ``pybpf.asm.Program`` resolves.
"""

from __future__ import annotations

from pybpf._record import record, replace
from pybpf.asm.instruction import (
    S16,
    S32,
    S32_MAX,
    S32_MIN,
    Instruction,
    Target,
    check_imm32,
    check_int,
    check_reg,
    check_target,
    fmt_target,
)
from pybpf.asm.opcode import JumpOp
from pybpf.asm.register import Reg
from pybpf.errors import AsmError

CONDITIONS = {
    JumpOp.JEQ: "==",
    JumpOp.JNE: "!=",
    JumpOp.JGT: ">",
    JumpOp.JGE: ">=",
    JumpOp.JLT: "<",
    JumpOp.JLE: "<=",
    JumpOp.JSGT: "s>",
    JumpOp.JSGE: "s>=",
    JumpOp.JSLT: "s<",
    JumpOp.JSLE: "s<=",
    JumpOp.JSET: "&",
}
"""Conditional jump operations and their LLVM operators."""

_GOTOL_HINT = "; use gotol (GotoLong) for a 32-bit offset"
_WIDTHS = (32, 64)


class _Targeted(Instruction):
    __slots__ = ()

    def targets(self):
        return (self.target,)

    def with_target(self, target: int):
        return replace(self, target=target)


@record
class Jump(_Targeted):
    """``if dst op src goto target``: BPF_JMP/BPF_JMP32 conditional jump (JEQ .. JSLE, JSET)."""

    op: JumpOp
    dst: Reg
    src: Reg | int
    target: Target
    width: int = 64

    def __post_init__(self):
        op, src, width = self.op, self.src, self.width
        if op not in CONDITIONS:
            raise AsmError(f"{op!r} is not a conditional jump (use one of "
                           f"{', '.join(o.name for o in CONDITIONS)})")
        if width not in _WIDTHS:
            raise AsmError(f"jump width must be 32 or 64, got {width!r}")
        if type(self.dst) is not Reg:
            check_reg(self, "dst")
        if type(src) is not Reg and (type(src) is not int or not S32_MIN <= src <= S32_MAX):
            check_imm32(self, "src", unsigned_ok=width == 32)
        target = self.target
        if type(target) is not str or not target:   # a label name has no range to check
            check_target(self, "target", S16, "s16 jump offset", _GOTOL_HINT)

    @property
    def is_imm(self) -> bool:
        return not isinstance(self.src, Reg)

    def __str__(self) -> str:
        p = "w" if self.width == 32 else "r"
        s = str(self.src) if self.is_imm else f"{p}{int(self.src)}"
        return f"if {p}{int(self.dst)} {CONDITIONS[self.op]} {s} goto {fmt_target(self.target)}"


@record
class Goto(_Targeted):
    """``goto target``: BPF_JA with a 16-bit offset."""

    target: Target

    def __post_init__(self):
        target = self.target
        if type(target) is not str or not target:   # a label name has no range to check
            check_target(self, "target", S16, "s16 jump offset", _GOTOL_HINT)

    def __str__(self) -> str:
        return f"goto {fmt_target(self.target)}"


@record
class GotoLong(_Targeted):
    """``gotol target``: BPF_JMP32 | BPF_JA with a 32-bit offset in imm (v4)."""

    target: Target

    def __post_init__(self):
        check_target(self, "target", S32, "s32 jump offset")

    def __str__(self) -> str:
        return f"gotol {fmt_target(self.target)}"


@record
class MayGoto(_Targeted):
    """``may_goto target``: BPF_JCOND; jumps once the verifier-bounded loop budget is spent."""

    target: Target

    def __post_init__(self):
        check_target(self, "target", S16, "s16 jump offset")

    def __str__(self) -> str:
        return f"may_goto {fmt_target(self.target)}"


@record
class Call(Instruction):
    """``call N``: call helper function number N (BPF_CALL, src 0)."""

    helper: int

    def __post_init__(self):
        check_int(self, "helper", (0, S32[1]), "helper id (0..2^31-1)")

    def __str__(self) -> str:
        return f"call {self.helper}"


@record
class CallLocal(_Targeted):
    """Call a bpf-to-bpf subprogram (BPF_CALL, src BPF_PSEUDO_CALL, imm relative offset)."""

    target: Target

    def __post_init__(self):
        check_target(self, "target", S32, "s32 call offset")

    def __str__(self) -> str:
        if isinstance(self.target, str):
            return f"call {self.target}"
        return f"call pc{fmt_target(self.target)}"


@record
class CallKfunc(Instruction):
    """Call a kernel function by BTF id (BPF_CALL, src BPF_PSEUDO_KFUNC_CALL).

    ``module`` is the index of the module BTF fd in the load's fd_array (0: vmlinux).
    """

    btf_id: int
    module: int = 0

    def __post_init__(self):
        check_int(self, "btf_id", (0, S32[1]), "BTF id")
        check_int(self, "module", (0, S16[1]), "s16 fd_array index")

    def __str__(self) -> str:
        if self.module:
            return f"call kfunc({self.btf_id}, {self.module})"
        return f"call kfunc({self.btf_id})"


@record
class CallX(Instruction):
    """``callx dst``: indirect call through a register (BPF_CALL | BPF_X)."""

    dst: Reg

    def __post_init__(self):
        check_reg(self, "dst")

    def __str__(self) -> str:
        return f"callx r{int(self.dst)}"


@record
class Exit(Instruction):
    """``exit``: return r0 to the caller (BPF_EXIT)."""

    def __str__(self) -> str:
        return "exit"
