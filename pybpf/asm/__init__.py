"""The eBPF instruction set: model, codec, text syntax and program container."""

from pybpf.asm.alu import AddrSpaceCast, Alu, Arith, ByteOrder, Endian, Neg
from pybpf.asm.codec import decode, encode
from pybpf.asm.instruction import Instruction
from pybpf.asm.jump import (
    Call,
    CallKfunc,
    CallLocal,
    CallX,
    Exit,
    Goto,
    GotoLong,
    Jump,
    MayGoto,
)
from pybpf.asm.memory import (
    Atomic,
    AtomicKind,
    Load,
    LoadAbs,
    LoadAcquire,
    LoadBtfId,
    LoadFunc,
    LoadImm64,
    LoadInd,
    LoadMap,
    LoadSX,
    Store,
    StoreImm,
    StoreRelease,
)
from pybpf.asm.opcode import AluOp, AtomicOp, Class, JumpOp, Mode, Pseudo, Size, Source
from pybpf.asm.register import FP, R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10, Reg

__all__ = [
    "FP", "R0", "R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9", "R10",
    "AddrSpaceCast", "Alu", "AluOp", "Arith", "Atomic", "AtomicKind", "AtomicOp", "ByteOrder",
    "Call", "CallKfunc", "CallLocal", "CallX", "Class", "Endian", "Exit", "Goto", "GotoLong",
    "Instruction", "Jump", "JumpOp", "Load", "LoadAbs", "LoadAcquire", "LoadBtfId", "LoadFunc",
    "LoadImm64", "LoadInd", "LoadMap", "LoadSX", "MayGoto", "Mode", "Neg", "Pseudo", "Reg",
    "Size", "Source", "Store", "StoreImm", "StoreRelease", "decode", "encode",
]
