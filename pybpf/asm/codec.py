"""Instructions to little-endian bytes and back.

This is the only module that knows the wire quirks: signed division and
sign-extending moves live in ``off``, a 64-bit immediate spends two slots
(the second holds the upper half), ``gotol`` keeps its offset in ``imm``,
pseudo sources live in ``src_reg``. A slot is handled as one u64::

    bits  0-7 opcode | 8-11 dst | 12-15 src | 16-31 off (s16) | 32-63 imm (s32)
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterable, Mapping

from pybpf.asm.alu import ARITH_BY_WIRE, AddrSpaceCast, Alu, Arith, ByteOrder, Endian, Neg
from pybpf.asm.instruction import Instruction, no_gc
from pybpf.asm.jump import (
    CONDITIONS,
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
from pybpf.asm.opcode import (
    ATOMIC_FETCH,
    AluOp,
    AtomicOp,
    CallKind,
    Class,
    Endianness,
    JumpOp,
    Mode,
    Pseudo,
    Size,
    Source,
)
from pybpf.asm.register import REGS, Reg
from pybpf.errors import AsmError, PyBPFError

_M32 = 0xFFFFFFFF
_LITTLE = sys.byteorder == "little"


def _slot(opcode: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> int:
    return opcode | dst << 8 | src << 12 | (off & 0xFFFF) << 16 | (imm & _M32) << 32


# --- encoding: one function per instruction class, each returning its slot(s) ---

# The hot encoders below inline _slot with precomputed opcode(+off) bases: they
# carry most programs, and the tables make them several times faster.
_ALU_BASE = {(a, w): (Class.ALU64 if w == 64 else Class.ALU) | a.wire[0] | (a.wire[1] << 16)
             for a in Arith for w in (32, 64)}
_JMP_BASE = {(op, w): (Class.JMP if w == 64 else Class.JMP32) | op
             for op in CONDITIONS for w in (32, 64)}
_LDX_BASE = {s: Class.LDX | Mode.MEM | s for s in Size}
_STX_BASE = {s: Class.STX | Mode.MEM | s for s in Size}
_ST_BASE = {s: Class.ST | Mode.MEM | s for s in Size}


def _alu(i: Alu):
    base, src = _ALU_BASE[i.op, i.width], i.src
    if type(src) is Reg:
        return base | Source.X | i.dst << 8 | src << 12
    return base | i.dst << 8 | (src & _M32) << 32


def _neg(i: Neg):
    return _slot((Class.ALU64 if i.width == 64 else Class.ALU) | AluOp.NEG, i.dst)


def _endian(i: Endian):
    if i.order == ByteOrder.BSWAP:
        return _slot(Class.ALU64 | AluOp.END, i.dst, 0, 0, i.bits)
    src = Endianness.BE if i.order == ByteOrder.BE else Endianness.LE
    return _slot(Class.ALU | AluOp.END | src, i.dst, 0, 0, i.bits)


def _addr_space_cast(i: AddrSpaceCast):
    return _slot(Class.ALU64 | AluOp.MOV | Source.X, i.dst, i.src, 1, i.dst_as << 16 | i.src_as)


def _jump(i: Jump):
    base, src, target = _JMP_BASE[i.op, i.width], i.src, i.target
    if type(target) is not int:
        _resolved(i)
    base |= i.dst << 8 | (target & 0xFFFF) << 16
    if type(src) is Reg:
        return base | Source.X | src << 12
    return base | (src & _M32) << 32


def _goto(i: Goto):
    return _slot(Class.JMP | JumpOp.JA, 0, 0, _resolved(i))


def _gotol(i: GotoLong):
    return _slot(Class.JMP32 | JumpOp.JA, 0, 0, 0, _resolved(i))


def _may_goto(i: MayGoto):
    return _slot(Class.JMP | JumpOp.JCOND, 0, 0, _resolved(i))


def _call(i: Call):
    return Class.JMP | JumpOp.CALL | i.helper << 32


def _call_local(i: CallLocal):
    return _slot(Class.JMP | JumpOp.CALL, 0, CallKind.LOCAL, 0, _resolved(i))


def _call_kfunc(i: CallKfunc):
    return _slot(Class.JMP | JumpOp.CALL, 0, CallKind.KFUNC, i.module, i.btf_id)


def _callx(i: CallX):
    return _slot(Class.JMP | JumpOp.CALL | Source.X, i.dst)


_EXIT = _slot(Class.JMP | JumpOp.EXIT)


def _exit(i: Exit):
    return _EXIT


def _load(i: Load):
    return _LDX_BASE[i.size] | i.dst << 8 | i.src << 12 | (i.off & 0xFFFF) << 16


def _load_sx(i: LoadSX):
    return _slot(Class.LDX | Mode.MEMSX | i.size, i.dst, i.src, i.off)


def _store(i: Store):
    return _STX_BASE[i.size] | i.dst << 8 | i.src << 12 | (i.off & 0xFFFF) << 16


def _store_imm(i: StoreImm):
    return _ST_BASE[i.size] | i.dst << 8 | (i.off & 0xFFFF) << 16 | (i.imm & _M32) << 32


_ATOMIC_IMM = {
    AtomicKind.ADD: AtomicOp.ADD, AtomicKind.OR: AtomicOp.OR,
    AtomicKind.AND: AtomicOp.AND, AtomicKind.XOR: AtomicOp.XOR,
    AtomicKind.FETCH_ADD: AtomicOp.ADD | ATOMIC_FETCH, AtomicKind.FETCH_OR: AtomicOp.OR | ATOMIC_FETCH,
    AtomicKind.FETCH_AND: AtomicOp.AND | ATOMIC_FETCH, AtomicKind.FETCH_XOR: AtomicOp.XOR | ATOMIC_FETCH,
    AtomicKind.XCHG: AtomicOp.XCHG, AtomicKind.CMPXCHG: AtomicOp.CMPXCHG,
}
_ATOMIC_KIND = {int(v): k for k, v in _ATOMIC_IMM.items()}


def _atomic(i: Atomic):
    return _slot(Class.STX | Mode.ATOMIC | i.size, i.dst, i.src, i.off, _ATOMIC_IMM[i.op])


def _load_acquire(i: LoadAcquire):
    return _slot(Class.STX | Mode.ATOMIC | i.size, i.dst, i.src, i.off, AtomicOp.LOAD_ACQ)


def _store_release(i: StoreRelease):
    return _slot(Class.STX | Mode.ATOMIC | i.size, i.dst, i.src, i.off, AtomicOp.STORE_REL)


_LDDW = Class.LD | Mode.IMM | Size.DW


def _imm64(dst, pseudo, lo, hi=0, off=0):
    return _slot(_LDDW, dst, pseudo, off, lo), _slot(0, 0, 0, 0, hi)


def _load_imm64(i: LoadImm64):
    v = i.imm & 0xFFFFFFFFFFFFFFFF
    return _imm64(i.dst, Pseudo.NONE, v & _M32, v >> 32)


def _load_map(i: LoadMap, maps: Mapping[str, int] | None = None):
    ref = i.map
    if isinstance(ref, str):
        if maps is None or ref not in maps:
            raise AsmError(f"map {ref!r} is not resolved: give its fd in maps={{...}} "
                           f"when encoding ({i})")
        ref = maps[ref]
    if i.value_offset is None:
        return _imm64(i.dst, Pseudo.MAP_IDX if i.by_index else Pseudo.MAP_FD, ref)
    pseudo = Pseudo.MAP_IDX_VALUE if i.by_index else Pseudo.MAP_VALUE
    return _imm64(i.dst, pseudo, ref, i.value_offset)


def _load_btf_id(i: LoadBtfId):
    return _imm64(i.dst, Pseudo.BTF_ID, i.btf_id, i.module)


def _load_func(i: LoadFunc):
    return _imm64(i.dst, Pseudo.FUNC, _resolved(i))


def _load_abs(i: LoadAbs):
    return _slot(Class.LD | Mode.ABS | i.size, 0, 0, 0, i.imm)


def _load_ind(i: LoadInd):
    return _slot(Class.LD | Mode.IND | i.size, 0, i.src, 0, i.imm)


def _resolved(i) -> int:
    if isinstance(i.target, str):
        raise AsmError(f"label {i.target!r} is not resolved in {i}: assemble it in a Program")
    return i.target


_ENCODERS = {
    Alu: _alu, Neg: _neg, Endian: _endian, AddrSpaceCast: _addr_space_cast,
    Jump: _jump, Goto: _goto, GotoLong: _gotol, MayGoto: _may_goto, Call: _call,
    CallLocal: _call_local, CallKfunc: _call_kfunc, CallX: _callx, Exit: _exit,
    Load: _load, LoadSX: _load_sx, Store: _store, StoreImm: _store_imm, Atomic: _atomic,
    LoadAcquire: _load_acquire, StoreRelease: _store_release, LoadImm64: _load_imm64,
    LoadMap: _load_map, LoadBtfId: _load_btf_id, LoadFunc: _load_func,
    LoadAbs: _load_abs, LoadInd: _load_ind,
}


def encode_slots(insns: Iterable[Instruction], maps: Mapping[str, int] | None = None) -> array:
    """Encode instructions into an array of u64 slots (map names resolved from ``maps``)."""
    encoders = _ENCODERS
    if maps:
        encoders = {**encoders, LoadMap: lambda i: _load_map(i, maps)}
    try:
        slots = [encoders[type(i)](i) for i in insns]
    except KeyError:
        bad = next(i for i in insns if type(i) not in encoders)
        raise AsmError(f"{bad!r} is not an instruction") from None
    try:
        return array("Q", slots)  # no 64-bit immediates: every item is one int
    except TypeError:
        out = array("Q")
        append, extend = out.append, out.extend
        for slot in slots:
            if type(slot) is int:
                append(slot)
            else:
                extend(slot)
        return out


def encode(insns: Iterable[Instruction] | Instruction, maps: Mapping[str, int] | None = None) -> bytes:
    """Little-endian bytes of one instruction or a sequence of them."""
    if isinstance(insns, Instruction):
        insns = (insns,)
    with no_gc():
        slots = encode_slots(insns, maps)
    if not _LITTLE:
        slots.byteswap()
    return slots.tobytes()


# --- decoding: a table of 256 opcodes, each to a function of the slot fields ---

_SLOT = struct.Struct("<BBhi")
_R = REGS + (None,) * 5  # 11..15: no such register


def _reg(n: int) -> Reg:
    r = _R[n]
    if r is None:
        raise AsmError(f"register r{n} does not exist (r0..r10)")
    return r
_SZ = {s.value: s for s in Size}


def decode(data: bytes | bytearray | memoryview) -> list[Instruction]:
    """Decode raw little-endian bytes into instructions.

    Raises AsmError (naming the slot index and bytes) for anything that is not
    a valid instruction; never any other exception.
    """
    with no_gc():
        return _decode(bytes(data))


def _decode(data: bytes) -> list[Instruction]:
    if len(data) % 8:
        raise AsmError(f"{len(data)} bytes is not a whole number of 8-byte instructions")
    fields = list(_SLOT.iter_unpack(data))
    out: list[Instruction] = []
    n = len(fields)
    i = 0
    while i < n:
        op, regs, off, imm = fields[i]
        dst, src = regs & 0xF, regs >> 4
        try:
            if op == _LDDW:
                if i + 1 >= n:
                    raise AsmError("64-bit immediate load is missing its second slot")
                op2, regs2, off2, imm2 = fields[i + 1]
                if op2 or regs2 or off2:
                    raise AsmError("second slot of a 64-bit immediate load must be zero "
                                   "except imm")
                out.append(_decode_imm64(dst, src, off, imm, imm2))
                i += 2
                continue
            out.append(_DECODERS[op & 0x07](op, dst, src, off, imm))
        except PyBPFError as e:
            raise AsmError(f"insn {i} ({data[i * 8:i * 8 + 8].hex(' ')}): {_bare(e)}") from None
        except (ValueError, KeyError) as e:
            raise AsmError(f"insn {i} ({data[i * 8:i * 8 + 8].hex(' ')}): invalid: {e}") from None
        i += 1
    return out


def _bare(e: Exception) -> str:
    return getattr(e, "message", None) or str(e)


def _unused(what: str, value: int, insn: str) -> None:
    if value:
        raise AsmError(f"{insn} must have {what} 0, got {value}")


def _decode_alu(op, dst, src, off, imm):
    cls, code, source = op & 0x07, op & 0xF0, op & 0x08
    width = 64 if cls == Class.ALU64 else 32
    if code == AluOp.NEG:
        for what, v in (("src", src), ("off", off), ("imm", imm)):
            _unused(what, v, "NEG")
        if source:
            raise AsmError("NEG has no register form")
        return Neg(_reg(dst), width)
    if code == AluOp.END:
        _unused("src", src, "byte swap")
        _unused("off", off, "byte swap")
        if cls == Class.ALU64:
            if source:
                raise AsmError("BSWAP has no BPF_X form")
            order = ByteOrder.BSWAP
        else:
            order = ByteOrder.BE if source else ByteOrder.LE
        return Endian(order, _reg(dst), imm)
    if code == AluOp.MOV and off == 1 and source and cls == Class.ALU64:
        return AddrSpaceCast(_reg(dst), _reg(src), (imm >> 16) & 0xFFFF, imm & 0xFFFF)
    arith = ARITH_BY_WIRE.get((AluOp(code), off))
    if arith is None:
        raise AsmError(f"ALU operation {AluOp(code).name} with off {off} does not exist")
    if source:
        _unused("imm", imm, arith.name + " with a register")
        return Alu(arith, _reg(dst), _reg(src), width)
    _unused("src", src, arith.name + " with an immediate")
    return Alu(arith, _reg(dst), imm, width)


def _decode_jmp(op, dst, src, off, imm):
    cls, code, source = op & 0x07, op & 0xF0, op & 0x08
    if code in CONDITIONS:
        width = 64 if cls == Class.JMP else 32
        if source:
            _unused("imm", imm, "a register jump")
            return Jump(JumpOp(code), _reg(dst), _reg(src), off, width)
        _unused("src", src, "an immediate jump")
        return Jump(JumpOp(code), _reg(dst), imm, off, width)
    if code == JumpOp.JA and not source:
        _unused("dst", dst, "goto")
        _unused("src", src, "goto")
        if cls == Class.JMP32:
            _unused("off", off, "gotol")
            return GotoLong(imm)
        _unused("imm", imm, "goto")
        return Goto(off)
    if cls == Class.JMP32:
        raise AsmError(f"{JumpOp(code).name} has no JMP32 form")
    if code == JumpOp.CALL:
        _unused("dst" if not source else "imm", dst if not source else imm, "call")
        if source:
            _unused("src", src, "callx")
            _unused("off", off, "callx")
            return CallX(_reg(dst))
        if src == CallKind.HELPER:
            _unused("off", off, "a helper call")
            return Call(imm)
        if src == CallKind.LOCAL:
            _unused("off", off, "a local call")
            return CallLocal(imm)
        if src == CallKind.KFUNC:
            return CallKfunc(imm, off)
        raise AsmError(f"call with src {src} (not helper 0, local 1 or kfunc 2)")
    if code == JumpOp.EXIT and not source:
        for what, v in (("dst", dst), ("src", src), ("off", off), ("imm", imm)):
            _unused(what, v, "exit")
        return Exit()
    if code == JumpOp.JCOND and not source:
        for what, v in (("dst", dst), ("src", src), ("imm", imm)):
            _unused(what, v, "may_goto")
        return MayGoto(off)
    raise AsmError(f"jump opcode {op:#04x} does not exist")


def _decode_ld(op, dst, src, off, imm):
    mode, size = op & 0xE0, _SZ[op & 0x18]
    if mode not in (Mode.ABS, Mode.IND) or size is Size.DW:
        raise AsmError(f"unknown opcode {op:#04x}")   # LD is LD_ABS, LD_IND and LDDW only
    _unused("off", off, "LD_ABS/LD_IND")
    _unused("dst", dst, "LD_ABS/LD_IND")
    if mode == Mode.ABS:
        _unused("src", src, "LD_ABS")
        return LoadAbs(size, imm)
    return LoadInd(size, _reg(src), imm)


def _decode_ldx(op, dst, src, off, imm):
    mode, size = op & 0xE0, _SZ[op & 0x18]
    _unused("imm", imm, "a load")
    if mode == Mode.MEM:
        return Load(_reg(dst), _reg(src), off, size)
    if mode == Mode.MEMSX:
        return LoadSX(_reg(dst), _reg(src), off, size)
    raise AsmError(f"LDX mode {mode:#04x} does not exist")


def _decode_st(op, dst, src, off, imm):
    if op & 0xE0 != Mode.MEM:
        raise AsmError(f"ST mode {op & 0xE0:#04x} does not exist")
    _unused("src", src, "a store of an immediate")
    return StoreImm(_reg(dst), imm, off, _SZ[op & 0x18])


def _decode_stx(op, dst, src, off, imm):
    mode, size = op & 0xE0, _SZ[op & 0x18]
    if mode == Mode.MEM:
        _unused("imm", imm, "a register store")
        return Store(_reg(dst), _reg(src), off, size)
    if mode != Mode.ATOMIC:
        raise AsmError(f"STX mode {mode:#04x} does not exist")
    if imm == AtomicOp.LOAD_ACQ:
        return LoadAcquire(_reg(dst), _reg(src), off, size)
    if imm == AtomicOp.STORE_REL:
        return StoreRelease(_reg(dst), _reg(src), off, size)
    kind = _ATOMIC_KIND.get(imm)
    if kind is None:
        raise AsmError(f"atomic operation {imm:#x} does not exist")
    return Atomic(kind, _reg(dst), _reg(src), off, size)


def _decode_imm64(dst, src, off, lo, hi):
    _unused("off", off, "a 64-bit immediate load")
    if src == Pseudo.NONE:
        return LoadImm64(_reg(dst), (hi & _M32) << 32 | (lo & _M32))
    if src == Pseudo.MAP_FD:
        _unused("upper imm", hi, "a map fd load")
        return LoadMap(_reg(dst), lo)
    if src == Pseudo.MAP_IDX:
        _unused("upper imm", hi, "a map index load")
        return LoadMap(_reg(dst), lo, by_index=True)
    if src == Pseudo.MAP_VALUE:
        return LoadMap(_reg(dst), lo, value_offset=hi)
    if src == Pseudo.MAP_IDX_VALUE:
        return LoadMap(_reg(dst), lo, value_offset=hi, by_index=True)
    if src == Pseudo.BTF_ID:
        return LoadBtfId(_reg(dst), lo, hi)
    if src == Pseudo.FUNC:
        _unused("upper imm", hi, "a function address load")
        return LoadFunc(_reg(dst), lo)
    raise AsmError(f"64-bit immediate load with unknown pseudo source {src}")


# Decoders by instruction class (opcode bits 0-2); each rejects the opcodes of its class
# that do not exist.
_DECODERS = {
    Class.LD: _decode_ld, Class.LDX: _decode_ldx, Class.ST: _decode_st, Class.STX: _decode_stx,
    Class.ALU: _decode_alu, Class.JMP: _decode_jmp, Class.JMP32: _decode_jmp,
    Class.ALU64: _decode_alu,
}
