"""The builder: an explicit position in a function being written, passed as ``p``.

It owns the op list, virtual registers, typed arithmetic (C's conversions,
constants folded), explicit registers, the stack frame and labels; structured
control flow comes from ``pybpf.dsl.flow``. Every op records the user's
``file:line`` (the first stack frame outside pybpf), which becomes BTF line
info. ``finish()`` removes unreachable code, drops implied bounds checks
(``pybpf.dsl.ranges``) and repeated loads/arithmetic (``pybpf.dsl.cse``), checks that every
register is set before it is read and survives calls, allocates registers
(``pybpf.dsl.regalloc``) and returns real instructions after peepholes.
"""

from __future__ import annotations

import contextlib
import os
from sys import _getframe

from pybpf.asm import (
    Alu,
    Arith,
    Endian,
    Exit,
    Goto,
    Load,
    LoadImm64,
    LoadSX,
    Neg,
    Reg,
    Size,
    Store,
    StoreImm,
)
from pybpf.asm.program import SourcePos
from pybpf.dsl.cfg import Cfg
from pybpf.dsl.cse import cse_loads
from pybpf.dsl.flow import Flow
from pybpf.dsl.ir import ACCESS_SIZE, Mark, Op, VReg
from pybpf.dsl.jumps import drop_unreachable
from pybpf.dsl.optimize import optimize
from pybpf.dsl.ranges import drop_decided_jumps, drop_implied_checks
from pybpf.dsl.regalloc import Liveness, allocate
from pybpf.dsl.rewrite import remove_dead, set_membership, share_zero_stores
from pybpf.dsl.values import (
    _ARITH,
    DSLError,
    Value,
    _fold,
    _wrap,
    const_type,
    imm32,
    imm64,
    promote,
    swap,
)
from pybpf.types import Scalar, as_type, u64

STACK_LIMIT = 512
_PURE = (Alu, Load, LoadSX, LoadImm64, Endian, Neg)
_PURE_SET = frozenset(_PURE)  # for emit: a miss in the tuple compares all six
_BITWISE = frozenset(("and", "or", "xor"))
_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_S32 = (-(1 << 31), (1 << 31) - 1)
# Enum members read once: ``Arith.MOV`` looks the member up through the enum's
# metaclass (~80 ns on Python 3.11) against ~8 ns for a module-level name, and
# nearly every value the DSL computes emits a move.
_MOV, _AND = Arith.MOV, Arith.AND
_MOVSX8, _MOVSX16, _MOVSX32 = Arith.MOVSX8, Arith.MOVSX16, Arith.MOVSX32
_R10 = Reg.R10
_WIDEST_FIRST = ((8, Size.DW), (4, Size.W), (2, Size.H), (1, Size.B))  # the sizes zero() stores


def user_frame_pos() -> SourcePos | None:
    """The position of the innermost stack frame outside the pybpf package.

    Called for every op emitted (unless ``Builder.pin`` fixed the position),
    always from pybpf, so the walk starts at the caller's caller. Frames are
    told apart by their code's file name, a string with its hash cached (no
    ``id()`` call per frame): pybpf's files (and contextlib's) are in
    ``_INSIDE``, the others in ``_OUTSIDE``. The positions
    in an outside code object are cached by instruction offset (``f_lineno``
    decodes the line table) in ``_POSITIONS``, by ``id()`` of the code
    (hashing a code object hashes its contents); ``_CODES`` keeps those code
    objects alive, so no id is reused.
    """
    f = _getframe(2)
    while True:
        try:
            while (name := f.f_code.co_filename) in _INSIDE:
                f = f.f_back
        except AttributeError:  # f is None: no frame outside pybpf
            return None
        if name in _OUTSIDE:
            break
        _classify(name)  # then look at the same frame again
    code = f.f_code
    by_offset = _POSITIONS.get(id(code))
    if by_offset is None:
        _CODES.append(code)
        by_offset = _POSITIONS[id(code)] = {}
    pos = by_offset.get(f.f_lasti)
    if pos is None:
        pos = by_offset[f.f_lasti] = _line_pos(name, f.f_lineno)
    return pos


def _classify(filename: str) -> None:
    if filename.startswith(_PKG_DIR) or filename == contextlib.__file__:
        _INSIDE.add(filename)
    else:
        _OUTSIDE.add(filename)


def _line_pos(filename: str, lineno: int) -> SourcePos:
    """The SourcePos of a line, with its text and the column where the text starts."""
    pos = _POS.get((filename, lineno))
    if pos is None:
        text = source_line(filename, lineno)
        col = len(text) - len(text.lstrip()) + 1 if text else 0
        pos = _POS[filename, lineno] = SourcePos(filename, lineno, col, text)
    return pos


def source_line(filename: str, lineno: int) -> str:
    """Line ``lineno`` (1-based) of a source file without its newline; "" when unknown.

    A file is read once with ``open()`` and its lines kept: a build asks for
    hundreds of lines of the same few files. ``linecache`` (whose import of
    ``tokenize`` costs ~4 ms of a cold start) serves what is not a plain UTF-8
    file: IPython cells, zipimported modules, a ``coding:`` declaration. Like
    ``linecache.getline``, a file is not read again when it changes on disk.
    """
    lines = _LINES.get(filename)
    if lines is None:
        lines = _LINES[filename] = _read_lines(filename)
    if 1 <= lineno <= len(lines):
        return lines[lineno - 1]
    return ""


def _read_lines(filename: str) -> list[str]:
    try:
        with open(filename, "rb") as f:
            data = f.read()
        if b"coding" in b"\n".join(data.split(b"\n", 2)[:2]):
            raise ValueError("not necessarily UTF-8")
        # utf-8-sig's decoder, less the import of its codec module at a cold start
        text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
        import linecache
        return [line.rstrip("\n") for line in linecache.getlines(filename)]
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


_LINES: dict = {}  # file name -> its lines
_POS: dict = {}  # (file name, line) -> SourcePos
_INSIDE: set = set()  # the file names of pybpf's modules (and contextlib's)
_OUTSIDE: set = set()  # any other file name seen
_POSITIONS: dict = {}  # id() of a code object outside -> {instruction offset: SourcePos}
_CODES: list = []  # the code objects of _POSITIONS, kept alive


def function_pos(fn) -> SourcePos | None:
    """The ``def`` line of a Python function (after its decorators)."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    line = code.co_firstlineno
    while True:  # skip decorator lines to the def itself
        text = source_line(code.co_filename, line)
        if not text or not text.lstrip().startswith("@"):
            break
        line += 1
    return SourcePos(code.co_filename, line, len(text) - len(text.lstrip()) + 1, text)


class Builder(Flow):
    """Emits ops for one function; values, registers and the stack frame live here.

    Structured control flow (``if_``, ``range``, ``while_``, ``return_`` ...)
    comes from ``pybpf.dsl.flow.Flow``.
    """

    def __init__(self, name: str, origin=None):
        self.name = name
        self.ops: list = []
        self._next_vreg = 0
        self._next_label = 0
        self.frame = 0  # bytes of stack in use (grows down from r10)
        self.dead = False  # the current position cannot be reached (after return_)
        self.discard = 0  # > 0 while emitting into a branch folded away at build time
        self._pending_else: tuple | None = None
        self._last_joins: tuple = ()
        self._branch_states: dict = {}  # if_ end label -> packet states (before, after, dead)
        self.def_pos = function_pos(origin) if origin is not None else user_frame_pos()
        # the position of the ops emitted now when it is fixed: ops outside the user's code
        # (prologue, exits), or one DSL operation's several ops (pin())
        self.pinned: SourcePos | None = self.def_pos

    # -- positions and errors ---------------------------------------------------------

    def where(self) -> str | None:
        pos = user_frame_pos()
        return f"{pos.file}:{pos.line}" if pos else None

    def error(self, message: str) -> DSLError:
        return DSLError(message, self.where())

    def pin(self) -> SourcePos | None:
        """Give the ops emitted from now on the user's current position; returns the pin to restore.

        Each op otherwise walks the stack for its position (~0.7 us). A DSL
        operation that emits several ops calls no user code meanwhile, so
        they all have the position of the first: it pins it once, then puts
        back what it got (``outer = b.pin()`` ... ``finally: b.pinned = outer``).
        """
        outer = self.pinned
        if outer is None:
            self.pinned = user_frame_pos()
        return outer

    # -- raw emission ---------------------------------------------------------------

    def new_vreg(self, name: str = "") -> VReg:
        self._next_vreg += 1
        return VReg(self._next_vreg, name)

    def emit(self, cls, *, nargs: int = 0, **fields) -> Op | None:
        """Append one instruction at the current position."""
        if self.discard:
            return None
        if self.dead:
            raise self.error("unreachable code: this follows a return_ in the same block")
        if cls not in _PURE_SET:
            # Only side-effect-free ops (an elif_ condition being computed) may sit
            # between an if_ block and its else_: they end up on the else path.
            self._pending_else = None
        op = Op(cls, fields, self.pinned or user_frame_pos(), nargs)
        self.ops.append(op)
        if cls is Exit or cls is Goto:
            self.dead = True
        return op

    def label(self, hint: str = "L") -> str:
        self._next_label += 1
        return f"{self.name}.{hint}{self._next_label}"

    def mark(self, name: str) -> None:
        """Place label ``name`` here; code after it is reachable again."""
        if self.discard:
            return
        self.ops.append(Mark(name, self.pinned or user_frame_pos()))
        self.dead = False

    # -- values -----------------------------------------------------------------------

    def const(self, value: int, t: Scalar) -> Value:
        return Value(self, t, value)

    def coerce(self, value, like: Scalar) -> Value:
        """A Python int becomes a constant of a type fitting ``like``; Values pass through."""
        if isinstance(value, Value):
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"expected a DSL value or an int, got {value!r}")
        t = const_type(value, like)
        if t.big_endian:
            if not 0 <= value <= t._max:
                raise self.error(f"constant {value} does not fit {t}")
            return Value(self, t, swap(value, t.bits))  # network order at build time
        return Value(self, t, value)

    def reg(self, v: Value) -> VReg | Reg:
        """A register holding ``v`` (constants are materialised)."""
        if not v.is_const:
            return v.loc
        dst = self.new_vreg("k")
        self.load_const(dst, v.loc, v.type)
        return dst

    def load_const(self, dst, value: int, t: Scalar) -> None:
        """dst = value, in the fewest instructions (one slot if it fits s32)."""
        imm = imm64(value)
        if imm is not None:
            self.emit(Alu, op=_MOV, dst=dst, src=imm, width=64)
        elif t.bits <= 32 and 0 <= value <= 0xFFFFFFFF:
            self.emit(Alu, op=_MOV, dst=dst, src=value - (1 << 32), width=32)
        else:
            self.emit(LoadImm64, dst=dst, imm=value & 0xFFFFFFFFFFFFFFFF)

    def widen(self, v: Value, t: Scalar) -> Value:
        """``v`` as a register value valid in all 64 bits for type ``t``."""
        if v.is_const or t.bits < 64 or v.type.bits == 64 or not v.type.signed:
            return v
        dst = self.new_vreg("sx")
        self.emit(Alu, op=_MOVSX32, dst=dst, src=v.loc, width=64)
        return Value(self, t, dst)

    def convert(self, v: Value, t: Scalar) -> Value:
        """Run-time cast of a register value to ``t`` (C's conversion rules).

        Registers keep this invariant, which every op relies on: an unsigned
        value is zero-extended to 64 bits; a signed value narrower than 64 bits
        is valid (sign-extended) in the low 32 bits, the upper half undefined.
        """
        dst = self.new_vreg("cast")
        s = v.type
        if t.bits == 64:
            signx = s.signed and s.bits < 64
            self.emit(Alu, op=_MOVSX32 if signx else _MOV, dst=dst, src=v.loc, width=64)
        elif t.signed:
            if t.bits == 32 or (s.bits <= t.bits and (s.signed or s.bits < t.bits)):
                self.emit(Alu, op=_MOV, dst=dst, src=v.loc, width=64)
            else:
                op = _MOVSX8 if t.bits == 8 else _MOVSX16
                self.emit(Alu, op=op, dst=dst, src=v.loc, width=64)
        elif not s.signed and s.bits <= t.bits:
            self.emit(Alu, op=_MOV, dst=dst, src=v.loc, width=64)
        else:  # truncate (or drop the sign extension) to t.bits, zero-extending
            self.emit(Alu, op=_MOV, dst=dst, src=v.loc, width=32)
            if t.bits < 32:
                self.emit(Alu, op=_AND, dst=dst, src=(1 << t.bits) - 1, width=32)
        return Value(self, t, dst)

    def copy(self, v: Value, t: Scalar | None = None) -> Value:
        """A fresh register holding ``v`` (as type ``t``), for results that must not alias a Var."""
        t = t or v.type
        dst = self.new_vreg("copy")
        self.emit(Alu, op=_MOV, dst=dst, src=self.widen(v, t).loc, width=64)
        return Value(self, t, dst)

    def arith(self, op: str, a: Value, c: Value) -> Value:
        """``a op c`` with C's promotions (see pybpf.dsl.values); constants fold."""
        at, ct = a.type, c.type
        shift = op == "lsh" or op == "rsh"
        if at.big_endian or ct.big_endian:
            if op not in _BITWISE or (not a.is_const and not c.is_const and at != ct):
                raise self.error(f"arithmetic `{op}` on a big-endian value: use .host() first")
            t = at if at.big_endian else ct
        else:
            t = promote(at)
            if not shift:
                tc = promote(ct)
                if t.signed != tc.signed:
                    sgn, uns = (at, ct) if t.signed else (ct, at)
                    raise self.error(f"`{op}` mixes signed {sgn} and unsigned {uns}: "
                                     "cast one side with .cast()")
                if tc.bits > t.bits:
                    t = tc
        if a.is_const and c.is_const:
            cv = c.loc if shift else _wrap(c.loc, t)
            return Value(self, t, _fold(op, _wrap(a.loc, t), cv, t))
        bits = t.bits
        width = 64 if bits == 64 else 32
        if c.is_const:
            cv = c.loc & (bits - 1) if shift else _wrap(c.loc, t)
            if op in ("div", "mod") and cv == 0:  # the ISA's x/0 = 0, x%0 = x, at build time
                return Value(self, t, 0) if op == "div" else self.copy(a, t)
            if cv == 0 and op in ("add", "sub", "or", "xor", "lsh", "rsh"):
                return self.copy(a, t)
            c = Value(self, t if not shift else c.type, cv)
        elif a.is_const and op in ("add", "mul", "and", "or", "xor"):
            a, c = c, a  # commutative: the constant becomes the immediate
            c = Value(self, t, _wrap(c.loc, t))
        code = _ARITH[op][1 if t.signed else 0]
        dst = self.new_vreg(op)
        outer = self.pin()
        try:
            # (widen changes only 64-bit operations' operands)
            if a.is_const:
                self.load_const(dst, _wrap(a.loc, t), t)
            else:
                src = a.loc if width == 32 else self.widen(a, t).loc
                self.emit(Alu, op=_MOV, dst=dst, src=src, width=64)
            if c.is_const:
                src = imm64(c.loc) if width == 64 else imm32(c.loc)
                if src is None:
                    src = self.reg(c)
            else:
                src = c.loc if width == 32 or shift else self.widen(c, t).loc
            self.emit(Alu, op=code, dst=dst, src=src, width=width)
        finally:
            self.pinned = outer
        return Value(self, t, dst, _bound(op, a, c, t))

    # -- explicit registers (the low-level escape hatch) -----------------------------

    def register(self, r: Reg, t: Scalar = u64) -> Value:
        """The physical register ``r`` read as a value of type ``t``.

        Virtual registers never get clobbered: the allocator keeps values that
        live across a call in r6-r9 or on the stack. Physical registers named
        here or in ``insn()`` are the user's to manage; ``finish()`` refuses a
        read of r0-r5 after a call clobbered it, or of any register never set.
        """
        if not isinstance(r, Reg):
            raise self.error(f"register() needs a pybpf.asm.Reg, got {r!r}")
        return Value(self, t, r)

    def set_register(self, r: Reg, value) -> None:
        """``r = value`` for a physical register (e.g. an argument of ``insn(Call(...))``)."""
        v = self.coerce(value, u64)
        if v.is_const:
            self.load_const(r, v.loc, v.type)
        else:
            self.emit(Alu, op=_MOV, dst=r, src=self.widen(v, u64).loc, width=64)

    def insn(self, instruction) -> None:
        """Emit one ``pybpf.asm`` instruction as is (registers physical or virtual)."""
        from pybpf._record import fields as record_fields
        from pybpf.asm import Call
        from pybpf.asm.instruction import Instruction
        if not isinstance(instruction, Instruction):
            raise self.error(f"insn() needs a pybpf.asm instruction, got {instruction!r}")
        fields = {name: getattr(instruction, name) for name in record_fields(instruction)}
        nargs = 0
        if isinstance(instruction, Call):
            from pybpf.syscall._uapi import HELPER_PROTOS, HelperId
            try:
                name = HelperId(instruction.helper).name
                nargs = len([a for a in HELPER_PROTOS[name][1] if a[0] != "..."])
            except (ValueError, KeyError):
                nargs = 5
        self.emit(type(instruction), nargs=nargs, **fields)

    # -- variables and stack ------------------------------------------------------------

    def var(self, t: Scalar, init=None) -> Var:
        """A mutable scalar variable (assignable in branches and loops)."""
        t = as_type(t)
        if not isinstance(t, Scalar):
            raise self.error(f"p.var needs a scalar type, not {t!r}")
        outer = self.pin()  # the declaration and the initial value's ops
        try:
            v = Var(self, t, self.new_vreg(f"var_{t.name}_"))
            if init is not None:
                v.set(init)
        finally:
            self.pinned = outer
        return v

    def alloc(self, size: int, align: int = 8) -> int:
        """Reserve ``size`` bytes of stack; returns the offset from r10 (negative)."""
        self.frame = (self.frame + size + align - 1) // align * align
        if self.frame > STACK_LIMIT:
            raise self.error(f"stack overflow: {self.frame} bytes of stack in {self.name}, "
                             f"the limit is {STACK_LIMIT}")
        return -self.frame

    def zero(self, off: int, size: int) -> None:
        """Zero ``size`` bytes of stack at r10 + off with the widest aligned stores."""
        end = off + size
        outer = self.pin()
        try:
            while off < end:
                for n, sz in _WIDEST_FIRST:
                    if off % n == 0 and off + n <= end:
                        self.emit(StoreImm, dst=_R10, imm=0, off=off, size=sz)
                        off += n
                        break
        finally:
            self.pinned = outer

    def store_value(self, base, off: int, t: Scalar, value) -> None:
        """Store ``value`` (Value or int) as type ``t`` at base + off."""
        v = self.coerce(value, t)
        if t.big_endian and not v.type.big_endian:
            v = v.net(t.bits)
        size = ACCESS_SIZE[t.size]
        if not v.is_const:
            if t.bits == 64:  # a narrower signed value is only valid in its low 32 bits
                v = self.widen(v, t)
            self.emit(Store, dst=base, src=v.loc, off=off, size=size)
            return
        raw = v.loc & ((1 << t.bits) - 1)
        if t.bits < 64:  # the kernel stores the low bits of the imm
            imm = raw - (1 << 32) if raw > _S32[1] else raw
            self.emit(StoreImm, dst=base, imm=imm, off=off, size=size)
        elif imm64(raw) is not None:  # a u64 store sign-extends its s32 imm
            self.emit(StoreImm, dst=base, imm=imm64(raw), off=off, size=size)
        else:  # large values go through a register
            self.emit(Store, dst=base, src=self.reg(Value(self, u64, raw)), off=off, size=size)

    # -- finishing ------------------------------------------------------------------

    def check_end(self) -> None:
        """The end of the function's body must be unreachable (every path returned)."""
        if not self.dead:
            where = f"{self.def_pos.file}:{self.def_pos.line}" if self.def_pos else None
            raise DSLError(f"function {self.name!r} can reach its end without return_", where)

    def finish(self) -> list:
        """Instructions and labels after dead-code removal and register allocation."""
        self.check_end()
        # one control-flow graph serves the analyses while they leave the ops alone
        cfg = Cfg(self.ops)
        ops = drop_unreachable(self.ops, cfg)
        cfg = cfg.same(ops)
        ops = drop_implied_checks(ops, cfg)
        cfg = cfg.same(ops)
        ops = cse_loads(ops, cfg)
        ops = drop_decided_jumps(ops, cfg.same(ops))
        ops = share_zero_stores(ops, self.new_vreg)
        ops = set_membership(ops, self.new_vreg, self.label)
        ops, live = remove_dead(ops, _PURE)
        _check_defined(ops, self.entry_regs(), live)
        colours = allocate(ops, lambda: self.alloc(8), live)
        out = []
        keep = out.append
        colour = colours.get
        for op in ops:
            if type(op) is not Mark:
                if op.is_move:  # a move within one register is dropped before its rewrite
                    fields = op.fields
                    dst, src = fields["dst"], fields["src"]
                    if colour(dst, dst) is colour(src, src):  # Reg members are singletons
                        continue
                op.replace(colours)
            keep(op)
        return optimize(out, self.label)

    def entry_regs(self) -> frozenset:
        """Physical registers holding something at function entry (r1 = ctx, r10)."""
        return frozenset({Reg.R1, Reg.R10})


class Var(Value):
    """A mutable variable: one virtual register assigned in many places.

    Reading it before any ``set`` in the Python source is an error at that
    line; reading it on a run-time path where no ``set`` ran (set in only one
    branch) is reported by ``finish()``.
    """

    __slots__ = ("assigned", "_vreg", "declared")

    def __init__(self, b: Builder, t: Scalar, vreg: VReg):
        self._vreg = vreg
        self.assigned = False
        super().__init__(b, t, vreg)
        self.declared = b.pinned or user_frame_pos()  # a SourcePos, formatted only for an error

    @property  # type: ignore[override]
    def loc(self):
        if not self.assigned:
            pos = self.declared
            where = f" (declared at {pos.file}:{pos.line})" if pos else ""
            raise self.b.error(f"variable {self._vreg!r}{where} is read before it is set: give "
                               "p.var() an initial value or set() it first")
        return self._vreg

    @loc.setter
    def loc(self, value) -> None:
        self._vreg = value

    def set(self, value) -> None:
        """Assign ``value``, converted to the variable's type as C's assignment does."""
        b = self.b
        if isinstance(value, int) and not isinstance(value, bool) and not self.type.big_endian:
            v = Value(b, self.type, value)  # refuses ints that do not fit
        else:
            v = b.coerce(value, self.type)
        if v is self:
            return
        if v.type is not self.type and not v.type.big_endian and not self.type.big_endian:
            v = v.cast(self.type)
        if v.is_const:
            b.load_const(self._vreg, v.loc, self.type)
        else:
            b.emit(Alu, op=_MOV, dst=self._vreg, src=v.loc, width=64)
        self.assigned = True

    def _in_place(self, op: str, other) -> Var:
        result = self.b.arith(op, self, self.b.coerce(other, self.type))
        self.set(result)
        return self

    def __iadd__(self, o): return self._in_place("add", o)
    def __isub__(self, o): return self._in_place("sub", o)
    def __imul__(self, o): return self._in_place("mul", o)
    def __ifloordiv__(self, o): return self._in_place("div", o)
    def __imod__(self, o): return self._in_place("mod", o)
    def __iand__(self, o): return self._in_place("and", o)
    def __ior__(self, o): return self._in_place("or", o)
    def __ixor__(self, o): return self._in_place("xor", o)
    def __ilshift__(self, o): return self._in_place("lsh", o)
    def __irshift__(self, o): return self._in_place("rsh", o)


def _bound(op: str, a: Value, c: Value, t: Scalar) -> int | None:
    """An upper bound of ``a op c`` for unsigned ``t`` when it cannot wrap (range tracking)."""
    if t.signed:
        return None
    ha, hc = a.max, c.max
    if ha is None or hc is None:
        return None
    if op == "add":
        hi = ha + hc
    elif op == "mul":
        hi = ha * hc
    elif op == "and":
        hi = min(ha, hc)
    elif op in ("or", "xor"):
        hi = (1 << max(ha, hc).bit_length()) - 1
    elif op == "lsh" and c.is_const:
        hi = ha << (c.loc & (t.bits - 1))
    elif op == "rsh":
        hi = ha >> (c.loc & (t.bits - 1)) if c.is_const else ha
    elif op == "div":
        hi = ha
    elif op == "mod":
        hi = min(ha, hc - 1) if c.is_const and hc > 0 else ha
    else:
        return None
    return hi if hi <= t._max else None


def _check_defined(ops: list, entry: frozenset, live: Liveness) -> None:
    """Every register must be set on every path before it is read, and survive calls."""
    if not ops:
        return
    for i, op in enumerate(ops):  # r0-r5 read after a call destroyed them
        if not op.clobbers:
            continue
        lost = [r for r in op.clobbers if live.has(i, r) and r not in op.defs]
        if lost:
            r = lost[0]
            use = _next_use(ops, i, r)
            call = f"{op.source.file}:{op.source.line}" if op.source else "a call"
            raise DSLError(f"{r!r} is read here but the call at {call} clobbered it (r0-r5 do not "
                           "survive calls: keep the value in a DSL value or r6-r9)", _where(use))
    first = ops[0]
    live_in = (set(live.members(live.out[0])) - set(first.defs)) | set(first.uses)
    undefined = sorted((v for v in live_in if v not in entry),
                       key=lambda v: v.id if isinstance(v, VReg) else -1 - int(v))
    if not undefined:
        return
    v = undefined[0]
    use = _next_use(ops, -1, v)
    raise DSLError(f"{v!r} is read here but not set on every path that reaches this line "
                   "(set it before the if_, or in every branch)", _where(use))


def _next_use(ops: list, after: int, v):
    return next((op for op in ops[after + 1:] if v in op.uses), None)


def _where(op) -> str | None:
    return f"{op.source.file}:{op.source.line}" if op is not None and op.source else None

