"""The DSL's intermediate form: asm instructions whose registers may be virtual.

An ``Op`` is an instruction class from ``pybpf.asm`` with its fields, where
any register field may hold a ``VReg`` until register allocation replaces it
with a real register. Each Op knows which registers it reads (``uses``),
writes (``defs``) and destroys (``clobbers``, e.g. r1-r5 across a call), which
is all the allocator needs. ``Mark`` ops are labels (no instruction).
"""

from __future__ import annotations

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
    Size,
    Store,
    StoreImm,
    StoreRelease,
)
from pybpf.asm.program import SourcePos

CALLER_SAVED = (Reg.R1, Reg.R2, Reg.R3, Reg.R4, Reg.R5)
ARGS = CALLER_SAVED
# The Size of an access of n bytes, for the loads and stores the DSL emits
# (``Size.of`` through the enum class costs ~0.2 us).
ACCESS_SIZE = {n: Size.of(n) for n in (1, 2, 4, 8)}


class VReg:
    """A virtual register: a value that will live in some real register (or stack slot)."""

    __slots__ = ("id", "name")

    def __init__(self, id: int, name: str = ""):
        self.id = id
        self.name = name

    def __repr__(self) -> str:
        return f"%{self.name or 'v'}{self.id}"


Loc = Reg | VReg


class Op:
    """One instruction before register allocation.

    A plain class rather than a record: the builder makes one per emitted
    instruction and the passes make more, so construction is one short
    ``__init__`` that reads the registers from the class's row of ``_DATAFLOW``.
    """

    __slots__ = ("cls", "fields", "source", "nargs", "uses", "defs", "clobbers", "is_move")

    def __init__(self, cls: type, fields: dict[str, object], source: SourcePos | None = None,
                 nargs: int = 0):
        self.cls = cls
        self.fields = fields
        self.source = source
        self.nargs = nargs  # arguments a call reads from r1..r5
        flow = _DATAFLOW.get(cls)
        self.uses, self.defs, self.clobbers = flow(fields, nargs) if flow else _NOTHING
        # ``rX = rY`` (64-bit): the allocator may give both one register. Derived
        # once: passes ask it of every op, and no pass changes an op's operator or source.
        self.is_move = (cls is Alu and fields["op"] is _MOV and fields["width"] == 64
                        and type(fields["src"]) in _REGS)

    def replace(self, mapping: dict) -> None:
        """Substitute registers (VReg -> Reg or VReg -> VReg) in place.

        ``uses`` and ``defs`` are derived again from the new fields: one call of
        the class's ``_DATAFLOW`` row (~0.15 us) costs less than mapping the two
        tuples through ``mapping`` (~0.4 us), and gives the same registers.
        """
        changed = False
        fields = self.fields
        for k, v in fields.items():
            if type(v) is VReg and v in mapping:
                fields[k] = mapping[v]
                changed = True
        if changed:
            self.uses, self.defs, self.clobbers = _DATAFLOW[self.cls](fields, self.nargs)

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


def is_imm(src) -> bool:
    """An immediate operand (an int that is not a register)."""
    return isinstance(src, int) and not isinstance(src, (Reg, VReg))


# (uses, defs, clobbers) of each instruction class, from its fields and the
# number of arguments a call reads; classes not listed touch no register.
_NOTHING = ((), (), ())
_REGS = (Reg, VReg)
_MOVES = frozenset((Arith.MOV, Arith.MOVSX8, Arith.MOVSX16, Arith.MOVSX32))
# Enum members read once: ``Arith.MOV`` looks the member up through the enum's
# metaclass (~80 ns on Python 3.11), a module-level name ~8 ns, and these are
# read for every op made.
_MOV, _CMPXCHG = Arith.MOV, AtomicKind.CMPXCHG
_R0, _R6 = Reg.R0, Reg.R6
_R0_ONLY, _R6_ONLY = (_R0,), (_R6,)


def _alu(f, nargs):
    dst, src = f["dst"], f["src"]
    if f["op"] in _MOVES:
        return ((src,) if type(src) in _REGS else ()), (dst,), ()
    return ((dst, src) if type(src) in _REGS else (dst,)), (dst,), ()


def _in_place(f, nargs):
    return (f["dst"],), (f["dst"],), ()


def _load(f, nargs):
    return (f["src"],), (f["dst"],), ()


def _store(f, nargs):
    return (f["dst"], f["src"]), (), ()


def _store_imm(f, nargs):
    return (f["dst"],), (), ()


def _atomic(f, nargs):
    kind = f["op"]
    if kind is _CMPXCHG:
        return (f["dst"], f["src"], _R0), _R0_ONLY, ()
    return (f["dst"], f["src"]), ((f["src"],) if kind.fetches else ()), ()


def _load_imm(f, nargs):
    return (), (f["dst"],), ()


def _jump(f, nargs):
    dst, src = f["dst"], f["src"]
    return ((dst, src) if type(src) in _REGS else (dst,)), (), ()


def _call(f, nargs):
    return ARGS[:nargs], _R0_ONLY, CALLER_SAVED


def _callx(f, nargs):
    return (f["dst"], *ARGS[:nargs]), _R0_ONLY, CALLER_SAVED


def _exit(f, nargs):
    return _R0_ONLY, (), ()


def _load_abs(f, nargs):
    return _R6_ONLY, _R0_ONLY, CALLER_SAVED


def _load_ind(f, nargs):
    return (_R6, f["src"]), _R0_ONLY, CALLER_SAVED


_DATAFLOW = {
    Alu: _alu, Neg: _in_place, Endian: _in_place,
    Load: _load, LoadSX: _load, LoadAcquire: _load,
    Store: _store, StoreRelease: _store, StoreImm: _store_imm, Atomic: _atomic,
    LoadImm64: _load_imm, LoadMap: _load_imm, LoadFunc: _load_imm, LoadBtfId: _load_imm,
    Jump: _jump, Call: _call, CallKfunc: _call, CallLocal: _call, CallX: _callx,
    Exit: _exit, LoadAbs: _load_abs, LoadInd: _load_ind,
}


@record(frozen=False, slots=False)
class Function:
    """The ops of one function, before allocation."""

    name: str
    ops: list = field(default_factory=list)
