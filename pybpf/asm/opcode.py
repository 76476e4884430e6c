"""The fields of an eBPF instruction, as the kernel encodes them.

Every instruction is one 64-bit slot (the 64-bit immediate load takes two)::

     msb                                                        lsb
    +------------------------+----------------+----+----+--------+
    |immediate (s32)         |offset (s16)    |src |dst |opcode  |
    +------------------------+----------------+----+----+--------+
     63                    32 31            16 15 12 11 8 7      0

The opcode byte is split three ways depending on its class::

    ALU/ALU64/JMP/JMP32:  | op (4 bits) | source (1 bit) | class (3 bits) |
    LD/LDX/ST/STX:        | mode (3)    | size (2)       | class (3)      |

Source: ``include/uapi/linux/bpf_common.h``, ``include/uapi/linux/bpf.h``
and RFC 9669. Only the codec (``pybpf.asm.codec``) should need these.
"""

from __future__ import annotations

import enum

from pybpf._enum import simple_enum


class _Field(enum.IntEnum):
    """Base of the opcode field enums: repr is ``Class.LD``, not ``<Class.LD: 0>``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self.name}"


_field = simple_enum(_Field)


@enum.unique
@_field
class Class:
    """Instruction class, opcode bits 0-2 (BPF_LD .. BPF_ALU64, bpf_common.h)."""

    LD = 0x00
    LDX = 0x01
    ST = 0x02
    STX = 0x03
    ALU = 0x04
    JMP = 0x05
    JMP32 = 0x06
    ALU64 = 0x07


@enum.unique
@_field
class Size:
    """Access size of loads and stores, opcode bits 3-4 (BPF_W, BPF_H, BPF_B, BPF_DW)."""

    W = 0x00
    H = 0x08
    B = 0x10
    DW = 0x18

    @property
    def bytes(self) -> int:
        return _SIZE_BYTES[self]

    @classmethod
    def of(cls, nbytes: int) -> Size:
        """The Size for an access of ``nbytes`` (1, 2, 4 or 8)."""
        return _BYTES_SIZE[nbytes]


_SIZE_BYTES = {Size.B: 1, Size.H: 2, Size.W: 4, Size.DW: 8}
_BYTES_SIZE = {v: k for k, v in _SIZE_BYTES.items()}


@enum.unique
@_field
class Mode:
    """Addressing mode of LD/LDX/ST/STX, opcode bits 5-7 (BPF_IMM .. BPF_MEMSX, BPF_ATOMIC)."""

    IMM = 0x00
    ABS = 0x20
    IND = 0x40
    MEM = 0x60
    MEMSX = 0x80
    ATOMIC = 0xC0


@enum.unique
@_field
class Source:
    """Operand source, opcode bit 3 of ALU/JMP (BPF_K: immediate, BPF_X: register)."""

    K = 0x00
    X = 0x08


@enum.unique
@_field
class AluOp:
    """ALU operation, opcode bits 4-7 of ALU/ALU64 (BPF_ADD .. BPF_END)."""

    ADD = 0x00
    SUB = 0x10
    MUL = 0x20
    DIV = 0x30
    OR = 0x40
    AND = 0x50
    LSH = 0x60
    RSH = 0x70
    NEG = 0x80
    MOD = 0x90
    XOR = 0xA0
    MOV = 0xB0
    ARSH = 0xC0
    END = 0xD0


@enum.unique
@_field
class JumpOp:
    """Jump operation, opcode bits 4-7 of JMP/JMP32 (BPF_JA .. BPF_JSLE, BPF_JCOND)."""

    JA = 0x00
    JEQ = 0x10
    JGT = 0x20
    JGE = 0x30
    JSET = 0x40
    JNE = 0x50
    JSGT = 0x60
    JSGE = 0x70
    CALL = 0x80
    EXIT = 0x90
    JLT = 0xA0
    JLE = 0xB0
    JSLT = 0xC0
    JSLE = 0xD0
    JCOND = 0xE0


@enum.unique
@_field
class AtomicOp:
    """Operation in the imm of BPF_STX | BPF_ATOMIC (BPF_ADD .. BPF_CMPXCHG, BPF_LOAD_ACQ).

    ``FETCH`` (0x01) is or-ed into ADD/OR/AND/XOR to return the old value;
    XCHG and CMPXCHG always carry it.
    """

    ADD = 0x00
    OR = 0x40
    AND = 0x50
    XOR = 0xA0
    XCHG = 0xE1
    CMPXCHG = 0xF1
    LOAD_ACQ = 0x100
    STORE_REL = 0x110


ATOMIC_FETCH = 0x01


@enum.unique
@_field
class Pseudo:
    """src_reg of a 64-bit immediate load (BPF_PSEUDO_MAP_FD .. BPF_PSEUDO_MAP_IDX_VALUE)."""

    NONE = 0
    MAP_FD = 1
    MAP_VALUE = 2
    BTF_ID = 3
    FUNC = 4
    MAP_IDX = 5
    MAP_IDX_VALUE = 6


@enum.unique
@_field
class CallKind:
    """src_reg of BPF_CALL: helper, bpf-to-bpf call, kfunc (BPF_PSEUDO_CALL, BPF_PSEUDO_KFUNC_CALL)."""

    HELPER = 0
    LOCAL = 1
    KFUNC = 2


@enum.unique
@_field
class Endianness:
    """Source bit of BPF_END: to little (BPF_TO_LE) or big endian (BPF_TO_BE)."""

    LE = 0x00
    BE = 0x08
