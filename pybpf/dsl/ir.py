"""The DSL's intermediate form: asm instructions whose registers may be virtual.

An ``Op`` is an instruction class from ``pybpf.asm`` with its fields, where
any register field may hold a ``VReg`` until register allocation replaces it
with a real register. Each Op knows which registers it reads (``uses``),
writes (``defs``) and destroys (``clobbers``, e.g. r1-r5 across a call), which
is all the allocator needs. ``Mark`` ops are labels (no instruction).
"""

from __future__ import annotations

from typing import Any

from pybpf._record import field, record
from pybpf.asm import (
    Alu,
    Arith,
    Atomic,
    AtomicKind,
    Call,
    CallKfunc,
    CallLocal,
    CallX,
    Endian,
    Exit,
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
    Neg,
    Reg,
    Store,
    StoreImm,
    StoreRelease,
)
from pybpf.asm.program import SourcePos

CALLER_SAVED = (Reg.R1, Reg.R2, Reg.R3, Reg.R4, Reg.R5)
ARGS = CALLER_SAVED


class VReg:
    """A virtual register: a value that will live in some real register (or stack slot)."""

    __slots__ = ("id", "name")

    def __init__(self, id: int, name: str = ""):
        self.id = id
        self.name = name

    def __repr__(self) -> str:
        return f"%{self.name or 'v'}{self.id}"


Loc = Reg | VReg


@record(frozen=False, eq=False)
class Op:
    """One instruction before register allocation."""

    cls: type
    fields: dict[str, Any]
    source: SourcePos | None = None
    nargs: int = 0  # arguments a call reads from r1..r5
    uses: tuple[Loc, ...] = ()
    defs: tuple[Loc, ...] = ()
    clobbers: tuple[Reg, ...] = ()
    is_move: bool = False  # ``rX = rY`` (64-bit): the allocator may give both one register

    def __post_init__(self):
        self.uses, self.defs, self.clobbers = _dataflow(self)
        f = self.fields  # derived once: passes ask it of every op, and no pass changes it
        self.is_move = (self.cls is Alu and f["op"] is Arith.MOV and f["width"] == 64
                        and isinstance(f["src"], (Reg, VReg)))

    def replace(self, mapping: dict) -> None:
        """Substitute registers (VReg -> Reg or VReg -> VReg) in place.

        Every register an op reads or writes is one of its fields or a fixed
        physical register (never a key of ``mapping``), so ``uses`` and ``defs``
        take the same substitution instead of being derived again.
        """
        changed = False
        fields = self.fields
        for k, v in fields.items():
            if type(v) is VReg and v in mapping:
                fields[k] = mapping[v]
                changed = True
        if changed:
            get = mapping.get
            self.uses = tuple([get(r, r) for r in self.uses])
            self.defs = tuple([get(r, r) for r in self.defs])

    def build(self):
        """The real instruction (all registers must be physical by now)."""
        return self.cls(**self.fields)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.fields.items())
        return f"{self.cls.__name__}({inner})"


@record(frozen=False, eq=False)
class Mark:
    """A label position in the op list."""

    name: str
    source: SourcePos | None = None
    function: bool = False
    uses: tuple = ()
    defs: tuple = ()
    clobbers: tuple = ()


def _is_reg(v) -> bool:
    return isinstance(v, (Reg, VReg))


def is_imm(src) -> bool:
    """An immediate operand (an int that is not a register)."""
    return isinstance(src, int) and not isinstance(src, (Reg, VReg))


def _dataflow(op: Op):
    c, f = op.cls, op.fields
    if c is Alu:
        src = (f["src"],) if _is_reg(f["src"]) else ()
        if f["op"] in (Arith.MOV, Arith.MOVSX8, Arith.MOVSX16, Arith.MOVSX32):
            return src, (f["dst"],), ()
        return (f["dst"], *src), (f["dst"],), ()
    if c in (Neg, Endian):
        return (f["dst"],), (f["dst"],), ()
    if c in (Load, LoadSX, LoadAcquire):
        return (f["src"],), (f["dst"],), ()
    if c in (Store, StoreRelease):
        return (f["dst"], f["src"]), (), ()
    if c is StoreImm:
        return (f["dst"],), (), ()
    if c is Atomic:
        kind = f["op"]
        if kind is AtomicKind.CMPXCHG:
            return (f["dst"], f["src"], Reg.R0), (Reg.R0,), ()
        return (f["dst"], f["src"]), ((f["src"],) if kind.fetches else ()), ()
    if c in (LoadImm64, LoadMap, LoadFunc, LoadBtfId):
        return (), (f["dst"],), ()
    if c is Jump:
        src = (f["src"],) if _is_reg(f["src"]) else ()
        return (f["dst"], *src), (), ()
    if c in (Call, CallKfunc, CallLocal):
        return ARGS[:op.nargs], (Reg.R0,), CALLER_SAVED
    if c is CallX:
        return (f["dst"], *ARGS[:op.nargs]), (Reg.R0,), CALLER_SAVED
    if c is Exit:
        return (Reg.R0,), (), ()
    if c in (LoadAbs, LoadInd):
        src = (f["src"],) if c is LoadInd else ()
        return (Reg.R6, *src), (Reg.R0,), CALLER_SAVED
    return (), (), ()


@record(frozen=False, slots=False)
class Function:
    """The ops of one function, before allocation."""

    name: str
    ops: list = field(default_factory=list)
