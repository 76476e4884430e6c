"""The eleven eBPF registers.

r0 return value, r1-r5 arguments (clobbered by calls), r6-r9 callee-saved,
r10 the read-only frame pointer.
"""

from __future__ import annotations

import enum

from pybpf._enum import simple_enum


@enum.unique
@simple_enum(enum.IntEnum)
class Reg:
    """A register, r0 .. r10 (the 4-bit dst_reg/src_reg fields)."""

    R0 = 0
    R1 = 1
    R2 = 2
    R3 = 3
    R4 = 4
    R5 = 5
    R6 = 6
    R7 = 7
    R8 = 8
    R9 = 9
    R10 = 10

    def __repr__(self) -> str:
        return self.name

    def __str__(self) -> str:
        return f"r{self.value}"

    @property
    def w(self) -> str:
        """The 32-bit view's name in LLVM syntax (``w3``)."""
        return f"w{self.value}"


R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = Reg
REGS = tuple(Reg)
"""Reg by number without the cost of an enum call (``REGS[3] is R3``)."""
FP = Reg.R10
"""The frame pointer, read-only."""

CALLER_SAVED = (R1, R2, R3, R4, R5)
CALLEE_SAVED = (R6, R7, R8, R9)
