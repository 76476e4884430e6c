"""Loads, stores, atomics, 64-bit immediates and legacy packet loads.

Argument order is the same everywhere: destination, source, offset, size.
For a store the destination is the base register of the memory written.
"""

from __future__ import annotations

import enum

from pybpf._enum import simple_enum
from pybpf._record import record, replace
from pybpf.asm.instruction import (
    S16,
    S16_MAX,
    S16_MIN,
    S32,
    S32_MAX,
    S32_MIN,
    S64,
    U64,
    Instruction,
    Target,
    check_imm32,
    check_int,
    check_reg,
    check_target,
    fmt_offset,
    fmt_target,
)
from pybpf.asm.opcode import Size
from pybpf.asm.register import FP, Reg
from pybpf.errors import AsmError

_UNSIGNED = {Size.B: "u8", Size.H: "u16", Size.W: "u32", Size.DW: "u64"}
_SIGNED = {Size.B: "s8", Size.H: "s16", Size.W: "s32"}
_ANY_SIZE = tuple(Size)
_UP_TO_W = (Size.B, Size.H, Size.W)
_W_OR_DW = (Size.W, Size.DW)


def _size(insn, allowed=_ANY_SIZE) -> None:
    value = insn.size
    if isinstance(value, int) and not isinstance(value, Size) and value in (1, 2, 4, 8):
        object.__setattr__(insn, "size", Size.of(value))  # accept a byte count
    elif not isinstance(value, Size):
        raise AsmError(f"size must be a Size or 1, 2, 4, 8 bytes, got {value!r}")
    if insn.size not in allowed:
        names = ", ".join(s.name for s in allowed)
        raise AsmError(f"size {insn.size.name} is not allowed for {type(insn).__name__} "
                       f"(allowed: {names})")


def _access(insn, *, writes_dst: bool, sizes=_ANY_SIZE) -> None:
    """The checks every register load/store shares: size, dst and src registers, s16 off."""
    size, dst, off = insn.size, insn.dst, insn.off
    if type(size) is not Size or size not in sizes:
        _size(insn, sizes)
    if type(dst) is not Reg or writes_dst and dst is FP:
        check_reg(insn, "dst", writes=writes_dst)
    if type(insn.src) is not Reg:
        check_reg(insn, "src")
    if type(off) is not int or not S16_MIN <= off <= S16_MAX:
        check_int(insn, "off", S16, "s16")


def _mem(base, off, size: Size, signed=False) -> str:
    kind = _SIGNED[size] if signed else _UNSIGNED[size]
    return f"*({kind} *)(r{int(base)} {fmt_offset(off)})"


@record
class Load(Instruction):
    """``dst = *(uN *)(src + off)``: BPF_LDX | BPF_MEM, zero-extending."""

    dst: Reg
    src: Reg
    off: int
    size: Size

    def __post_init__(self):
        _access(self, writes_dst=True)

    def __str__(self) -> str:
        return f"r{int(self.dst)} = {_mem(self.src, self.off, self.size)}"


@record
class LoadSX(Instruction):
    """``dst = *(sN *)(src + off)``: BPF_LDX | BPF_MEMSX, sign-extending (v4)."""

    dst: Reg
    src: Reg
    off: int
    size: Size

    def __post_init__(self):
        _access(self, writes_dst=True, sizes=_UP_TO_W)

    def __str__(self) -> str:
        return f"r{int(self.dst)} = {_mem(self.src, self.off, self.size, signed=True)}"


@record
class Store(Instruction):
    """``*(uN *)(dst + off) = src``: BPF_STX | BPF_MEM."""

    dst: Reg
    src: Reg
    off: int
    size: Size

    def __post_init__(self):
        _access(self, writes_dst=False)

    def __str__(self) -> str:
        reg = f"r{int(self.src)}" if self.size == Size.DW else f"w{int(self.src)}"
        return f"{_mem(self.dst, self.off, self.size)} = {reg}"


@record
class StoreImm(Instruction):
    """``*(uN *)(dst + off) = imm``: BPF_ST | BPF_MEM (a u64 store sign-extends the s32 imm)."""

    dst: Reg
    imm: int
    off: int
    size: Size

    def __post_init__(self):
        imm, off = self.imm, self.off
        if type(self.size) is not Size:
            _size(self)
        if type(self.dst) is not Reg:
            check_reg(self, "dst")
        if type(imm) is not int or not S32_MIN <= imm <= S32_MAX:
            check_imm32(self, "imm", unsigned_ok=self.size != Size.DW)
        if type(off) is not int or not S16_MIN <= off <= S16_MAX:
            check_int(self, "off", S16, "s16")

    def __str__(self) -> str:
        return f"{_mem(self.dst, self.off, self.size)} = {self.imm}"


@enum.unique
@simple_enum(enum.Enum)
class AtomicKind:
    """Read-modify-write atomics (BPF_STX | BPF_ATOMIC): plain, fetching, xchg and cmpxchg."""

    __hash__ = object.__hash__  # members are singletons; Enum's hash runs Python code

    ADD = "add"
    OR = "or"
    AND = "and"
    XOR = "xor"
    FETCH_ADD = "fetch_add"
    FETCH_OR = "fetch_or"
    FETCH_AND = "fetch_and"
    FETCH_XOR = "fetch_xor"
    XCHG = "xchg"
    CMPXCHG = "cmpxchg"

    def __repr__(self) -> str:
        return f"AtomicKind.{self.name}"

    @property
    def fetches(self) -> bool:
        return self not in (AtomicKind.ADD, AtomicKind.OR, AtomicKind.AND, AtomicKind.XOR)


_LOCK_OPS = {AtomicKind.ADD: "+=", AtomicKind.OR: "|=", AtomicKind.AND: "&=", AtomicKind.XOR: "^="}


@record
class Atomic(Instruction):
    """An atomic update of ``*(dst + off)`` with ``src`` (32 or 64 bits).

    Fetching forms return the old value in ``src``; CMPXCHG compares with r0
    and returns the old value in r0.
    """

    op: AtomicKind
    dst: Reg
    src: Reg
    off: int
    size: Size

    def __post_init__(self):
        if not isinstance(self.op, AtomicKind):
            raise AsmError(f"op must be an AtomicKind, got {self.op!r}")
        _size(self, _W_OR_DW)
        check_reg(self, "dst")
        check_reg(self, "src", writes=self.op.fetches and self.op != AtomicKind.CMPXCHG)
        check_int(self, "off", S16, "s16")

    def __str__(self) -> str:
        wide = self.size == Size.DW
        v = f"r{int(self.src)}" if wide else f"w{int(self.src)}"
        addr = f"r{int(self.dst)} {fmt_offset(self.off)}"
        if self.op in _LOCK_OPS:
            return f"lock {_mem(self.dst, self.off, self.size)} {_LOCK_OPS[self.op]} {v}"
        if self.op == AtomicKind.XCHG:
            return f"{v} = xchg_64({addr}, {v})" if wide else f"{v} = xchg32_32({addr}, {v})"
        if self.op == AtomicKind.CMPXCHG:
            if wide:
                return f"r0 = cmpxchg_64({addr}, r0, {v})"
            return f"w0 = cmpxchg32_32({addr}, w0, {v})"
        name = "atomic_" + self.op.value
        if wide:
            return f"{v} = {name}((u64 *)({addr}), {v})"
        return f"{v} = {name}((u32 *)({addr}), {v})"


@record
class LoadAcquire(Instruction):
    """``dst = load_acquire((uN *)(src + off))``: BPF_ATOMIC with BPF_LOAD_ACQ (kernel 6.15+)."""

    dst: Reg
    src: Reg
    off: int
    size: Size

    def __post_init__(self):
        _access(self, writes_dst=True)

    def __str__(self) -> str:
        p = "r" if self.size == Size.DW else "w"
        kind = _UNSIGNED[self.size]
        return f"{p}{int(self.dst)} = load_acquire(({kind} *)(r{int(self.src)} {fmt_offset(self.off)}))"


@record
class StoreRelease(Instruction):
    """``store_release((uN *)(dst + off), src)``: BPF_ATOMIC with BPF_STORE_REL (kernel 6.15+)."""

    dst: Reg
    src: Reg
    off: int
    size: Size

    def __post_init__(self):
        _access(self, writes_dst=False)

    def __str__(self) -> str:
        p = "r" if self.size == Size.DW else "w"
        kind = _UNSIGNED[self.size]
        return (f"store_release(({kind} *)(r{int(self.dst)} {fmt_offset(self.off)}), "
                f"{p}{int(self.src)})")


class _Imm64(Instruction):
    __slots__ = ()
    slots = 2


@record
class LoadImm64(_Imm64):
    """``dst = imm ll``: the 16-byte BPF_LD | BPF_IMM | BPF_DW with a plain 64-bit value."""

    dst: Reg
    imm: int

    def __post_init__(self):
        check_reg(self, "dst", writes=True)
        value = check_int(self, "imm", (S64[0], U64[1]), "64 bits")
        if value > S64[1]:
            object.__setattr__(self, "imm", value - (1 << 64))

    def __str__(self) -> str:
        v = self.imm
        text = str(v) if -0x10000 < v < 0x10000 else (hex(v) if v >= 0 else "-" + hex(-v))
        return f"r{int(self.dst)} = {text} ll"


@record
class LoadMap(_Imm64):
    """Load a map pointer, or a pointer into its value at ``value_offset`` (BPF_PSEUDO_MAP_*).

    ``map`` is a map fd (or fd_array index when ``by_index``), or a name the
    loader resolves. ``value_offset`` None loads the map itself (MAP_FD /
    MAP_IDX); an int loads the address of the value at that offset (MAP_VALUE
    / MAP_IDX_VALUE, used for global data).
    """

    dst: Reg
    map: int | str
    value_offset: int | None = None
    by_index: bool = False

    def __post_init__(self):
        check_reg(self, "dst", writes=True)
        if isinstance(self.map, str):
            if not self.map.isidentifier():
                raise AsmError(f"map name {self.map!r} is not an identifier")
            if self.by_index:
                raise AsmError("a map referenced by name cannot also be by_index")
        else:
            check_int(self, "map", (0, S32[1]), "map fd or index")
        if self.value_offset is not None:
            check_int(self, "value_offset", (0, S32[1]), "value offset")

    @property
    def is_symbolic(self) -> bool:
        return isinstance(self.map, str)

    def __str__(self) -> str:
        d = f"r{int(self.dst)}"
        if self.is_symbolic and self.value_offset is None:
            return f"{d} = {self.map} ll"
        pseudo = {(False, False): 1, (False, True): 2, (True, False): 5, (True, True): 6}[
            (self.by_index, self.value_offset is not None)]
        text = f"ld_pseudo {d}, {pseudo}, {self.map}"
        return text + f", {self.value_offset}" if self.value_offset else text


@record
class LoadBtfId(_Imm64):
    """Load the address of a kernel object by BTF id (BPF_PSEUDO_BTF_ID, typed ksym)."""

    dst: Reg
    btf_id: int
    module: int = 0

    def __post_init__(self):
        check_reg(self, "dst", writes=True)
        check_int(self, "btf_id", (0, S32[1]), "BTF id")
        check_int(self, "module", (0, S32[1]), "module BTF fd")

    def __str__(self) -> str:
        text = f"ld_pseudo r{int(self.dst)}, 3, {self.btf_id}"
        return text + f", {self.module}" if self.module else text


@record
class LoadFunc(_Imm64):
    """Load the address of a subprogram (BPF_PSEUDO_FUNC, e.g. a bpf_loop callback)."""

    dst: Reg
    target: Target

    def __post_init__(self):
        check_reg(self, "dst", writes=True)
        check_target(self, "target", S32, "s32 offset")

    def targets(self):
        return (self.target,)

    def with_target(self, target: int):
        return replace(self, target=target)

    def __str__(self) -> str:
        t = self.target if isinstance(self.target, str) else fmt_target(self.target)
        return f"ld_pseudo r{int(self.dst)}, 4, {t}"


@record
class LoadAbs(Instruction):
    """``r0 = *(uN *)skb[imm]``: legacy BPF_LD | BPF_ABS packet load (network byte order)."""

    size: Size
    imm: int

    def __post_init__(self):
        _size(self, _UP_TO_W)
        check_int(self, "imm", S32, "s32")

    def __str__(self) -> str:
        return f"r0 = *({_UNSIGNED[self.size]} *)skb[{self.imm}]"


@record
class LoadInd(Instruction):
    """``r0 = *(uN *)skb[src + imm]``: legacy BPF_LD | BPF_IND packet load."""

    size: Size
    src: Reg
    imm: int

    def __post_init__(self):
        _size(self, _UP_TO_W)
        check_reg(self, "src")
        check_int(self, "imm", S32, "s32")

    def __str__(self) -> str:
        # LLVM only knows imm 0 (``skb[r2]``); a non-zero imm is a pybpf extension.
        where = f"r{int(self.src)}" + (f" {fmt_offset(self.imm)}" if self.imm else "")
        return f"r0 = *({_UNSIGNED[self.size]} *)skb[{where}]"


