"""DSL values: typed scalars in virtual registers (or constants), and conditions.

Arithmetic follows C's promotion without C's surprises: operands narrower
than 32 bits are widened to 32, the result has the wider operand's width,
and signed-with-unsigned mixes are refused (cast one side explicitly).
Widths up to 32 bits use the 32-bit ALU and JMP32 (which zero-extend); 64-bit
values use the 64-bit forms. Big-endian values (be16/be32/be64) compare
with constants converted to network order at build time; arithmetic on them
needs ``.host()`` first. Constants fold in Python and never reach the
kernel as instructions of their own.
"""

from __future__ import annotations

from pybpf.asm import Alu, Arith, ByteOrder, Endian, JumpOp, Neg, Reg
from pybpf.dsl.ir import VReg
from pybpf.errors import PyBPFError
from pybpf.types import Scalar, be16, be32, be64, s32, s64, u16, u32, u64

TYPE_CHECKING = False  # as typing's: importing typing costs ~5 ms (with re) at start-up

if TYPE_CHECKING:
    from pybpf.dsl.builder import Builder


class DSLError(PyBPFError):
    """A mistake in a DSL program, reported when the program is built.

    ``where`` is the user's ``file:line`` that caused it.
    """

    def __init__(self, message: str, where: str | None = None):
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


def _wrap(value: int, t: Scalar) -> int:
    mask = (1 << t.bits) - 1
    value &= mask
    if t.signed and value >> (t.bits - 1):
        value -= 1 << t.bits
    return value


def promote(t: Scalar) -> Scalar:
    """The type arithmetic on ``t`` produces (at least 32 bits wide)."""
    if t.bits >= 32:
        return t
    return s32 if t.signed else u32


def swap(value: int, bits: int) -> int:
    """Byte-swap ``value`` of ``bits`` bits (htons/htonl at build time)."""
    return int.from_bytes((value & ((1 << bits) - 1)).to_bytes(bits // 8, "big"), "little")


_ARITH = {
    "add": (Arith.ADD, Arith.ADD), "sub": (Arith.SUB, Arith.SUB), "mul": (Arith.MUL, Arith.MUL),
    "div": (Arith.DIV, Arith.SDIV), "mod": (Arith.MOD, Arith.SMOD), "and": (Arith.AND, Arith.AND),
    "or": (Arith.OR, Arith.OR), "xor": (Arith.XOR, Arith.XOR), "lsh": (Arith.LSH, Arith.LSH),
    "rsh": (Arith.RSH, Arith.ARSH),
}
_BITWISE = ("and", "or", "xor")
_HOST = {16: u16, 32: u32, 64: u64}  # a big-endian type of so many bits -> its host-order one
_NET = {16: be16, 32: be32, 64: be64}
# Enum members read once (through the enum class each read costs ~80 ns).
_MOV, _BE = Arith.MOV, ByteOrder.BE


def _fold(op: str, a: int, b: int, t: Scalar) -> int:
    if op in ("div", "mod") and b == 0:
        return 0 if op == "div" else a  # the ISA's x/0 = 0, x%0 = x
    if op in ("lsh", "rsh"):
        b &= t.bits - 1
    if op == "div" and t.signed:
        q = abs(a) // abs(b)
        return _wrap(-q if (a < 0) != (b < 0) else q, t)
    if op == "mod" and t.signed:
        r = abs(a) % abs(b)
        return _wrap(-r if a < 0 else r, t)
    if op == "rsh" and not t.signed:
        return _wrap((a & ((1 << t.bits) - 1)) >> b, t)
    fn = {"add": int.__add__, "sub": int.__sub__, "mul": int.__mul__, "div": int.__floordiv__,
          "mod": int.__mod__, "and": int.__and__, "or": int.__or__, "xor": int.__xor__,
          "lsh": int.__lshift__, "rsh": int.__rshift__}[op]
    return _wrap(fn(a, b), t)


class Value:
    """A scalar rvalue of a pybpf type: a build-time constant or a virtual register.

    ``is_const`` says which, decided once here: ``loc`` is then an int, else a
    register (VReg or Reg).
    """

    __slots__ = ("b", "type", "loc", "hi", "is_const")

    def __init__(self, b: Builder, type: Scalar, loc: VReg | int, hi: int | None = None):
        self.b = b
        self.type = type
        self.is_const = const = isinstance(loc, int) and not isinstance(loc, Reg)  # an IntEnum
        self.loc = _const_in(loc, type, b) if const else loc
        self.hi = hi  # a proven upper bound of an unsigned register value, when known

    @property
    def max(self) -> int | None:
        """The largest value this can hold at run time, if known (unsigned values only)."""
        if self.is_const:
            return self.loc if self.loc >= 0 else None
        if self.type.signed or self.type.big_endian:
            return None
        return self.type._max if self.hi is None else min(self.hi, self.type._max)

    def __bool__(self):
        raise DSLError("a DSL value has no truth value at build time; compare it "
                       "(`x != 0`) inside p.if_(...)", self.b.where())

    def __repr__(self) -> str:
        return f"Value({self.type!r}, {self.loc!r})"

    # -- conversions --------------------------------------------------------------------

    def cast(self, t: Scalar) -> Value:
        """Reinterpret as ``t``: truncating, zero- or sign-extending as C would."""
        if t is self.type:
            return self
        if self.is_const:
            return Value(self.b, t, _wrap(self.loc, t))
        return self.b.convert(self, t)

    def host(self) -> Value:
        """A big-endian value in host order (bpf_ntohs/ntohl at run time, or at build time)."""
        if not self.type.big_endian:
            return self
        bits = self.type.bits
        host = _HOST[bits]
        return self._swapped(host, bits, "ntoh")

    def net(self, bits: int | None = None) -> Value:
        """This host-order value in network byte order (be16/be32/be64)."""
        if self.type.big_endian:
            return self
        bits = bits or max(16, self.type.bits)
        t = _NET[bits]
        return self._swapped(t, bits, "hton")

    def _swapped(self, t: Scalar, bits: int, name: str) -> Value:
        """This value's low ``bits`` byte-swapped, as ``t`` (folded when constant)."""
        if self.is_const:
            return Value(self.b, t, swap(self.loc, bits))
        b = self.b
        dst = b.new_vreg(name)
        outer = b.pin()
        try:
            b.emit(Alu, op=_MOV, dst=dst, src=self.loc, width=64)
            b.emit(Endian, order=_BE, dst=dst, bits=bits)
        finally:
            b.pinned = outer
        return Value(b, t, dst)

    # -- arithmetic ---------------------------------------------------------------------

    def _bin(self, op: str, other, reverse: bool = False) -> Value:
        other = self.b.coerce(other, self.type)
        a, c = (other, self) if reverse else (self, other)
        return self.b.arith(op, a, c)

    def __add__(self, o): return self._bin("add", o)
    def __radd__(self, o): return self._bin("add", o, True)
    def __sub__(self, o): return self._bin("sub", o)
    def __rsub__(self, o): return self._bin("sub", o, True)
    def __mul__(self, o): return self._bin("mul", o)
    def __rmul__(self, o): return self._bin("mul", o, True)
    def __floordiv__(self, o): return self._bin("div", o)
    def __rfloordiv__(self, o): return self._bin("div", o, True)
    def __mod__(self, o): return self._bin("mod", o)
    def __rmod__(self, o): return self._bin("mod", o, True)
    def __and__(self, o): return self._bin("and", o)
    def __rand__(self, o): return self._bin("and", o, True)
    def __or__(self, o): return self._bin("or", o)
    def __ror__(self, o): return self._bin("or", o, True)
    def __xor__(self, o): return self._bin("xor", o)
    def __rxor__(self, o): return self._bin("xor", o, True)
    def __lshift__(self, o): return self._bin("lsh", o)
    def __rlshift__(self, o): return self._bin("lsh", o, True)
    def __rshift__(self, o): return self._bin("rsh", o)
    def __rrshift__(self, o): return self._bin("rsh", o, True)

    def __neg__(self) -> Value:
        t = promote(self.type)
        if self.is_const:
            return Value(self.b, t, _wrap(-self.loc, t))
        dst = self.b.new_vreg("neg")
        v = self.b.widen(self, t)
        self.b.emit(Alu, op=Arith.MOV, dst=dst, src=v.loc, width=64)
        self.b.emit(Neg, dst=dst, width=64 if t.bits == 64 else 32)
        return Value(self.b, t, dst)

    def __invert__(self) -> Value:
        return self ^ -1 if self.type.signed else self ^ ((1 << promote(self.type).bits) - 1)

    def __truediv__(self, o):
        raise DSLError("use // for integer division (eBPF has no floating point)", self.b.where())

    # -- comparisons: unsigned or signed by the operands' types, or explicit ---------------

    def _cmp(self, op: str, other) -> Cond:
        return Cond.compare(self, op, other)

    def __eq__(self, o): return self._cmp("==", o)  # type: ignore[override]
    def __ne__(self, o): return self._cmp("!=", o)  # type: ignore[override]
    def __lt__(self, o): return self._cmp("<", o)
    def __le__(self, o): return self._cmp("<=", o)
    def __gt__(self, o): return self._cmp(">", o)
    def __ge__(self, o): return self._cmp(">=", o)

    __hash__ = None  # type: ignore[assignment]

    def slt(self, o) -> Cond:
        """Signed ``<`` regardless of the operands' declared signedness (s<)."""
        return Cond.compare(self, "<", o, signed=True)

    def sle(self, o) -> Cond:
        return Cond.compare(self, "<=", o, signed=True)

    def sgt(self, o) -> Cond:
        return Cond.compare(self, ">", o, signed=True)

    def sge(self, o) -> Cond:
        return Cond.compare(self, ">=", o, signed=True)

    def ult(self, o) -> Cond:
        """Unsigned ``<`` regardless of the operands' declared signedness."""
        return Cond.compare(self, "<", o, signed=False)

    def ugt(self, o) -> Cond:
        return Cond.compare(self, ">", o, signed=False)

    def test(self, mask) -> Cond:
        """``(self & mask) != 0`` as one JSET instruction."""
        return Cond.compare(self, "&", mask)


_JUMPS = {
    ("==", False): JumpOp.JEQ, ("!=", False): JumpOp.JNE, ("&", False): JumpOp.JSET,
    ("<", False): JumpOp.JLT, ("<=", False): JumpOp.JLE, (">", False): JumpOp.JGT,
    (">=", False): JumpOp.JGE, ("<", True): JumpOp.JSLT, ("<=", True): JumpOp.JSLE,
    (">", True): JumpOp.JSGT, (">=", True): JumpOp.JSGE,
}
_NEGATE = {"==": "!=", "!=": "==", "<": ">=", ">=": "<", ">": "<=", "<=": ">"}
_SWAP = {"==": "==", "!=": "!=", "<": ">", ">": "<", "<=": ">=", ">=": "<="}


class Cond:
    """A condition for ``p.if_``/``p.while_``: a comparison, or and/or/not of conditions.

    Combine with ``&`` (and), ``|`` (or) and ``~`` (not); Python's ``and``,
    ``or``, ``not`` and ``if`` cannot be intercepted and raise instead.
    """

    __slots__ = ("b", "kind", "parts", "negated")

    def __init__(self, b, kind: str, parts: tuple, negated: bool = False):
        self.b = b
        self.kind = kind  # "cmp", "and", "or"
        self.parts = parts
        self.negated = negated

    @staticmethod
    def compare(lhs: Value, op: str, rhs, signed: bool | None = None) -> Cond:
        b = lhs.b
        if not isinstance(rhs, Value):
            rhs = b.coerce(rhs, lhs.type)
        if lhs.is_const and not rhs.is_const:
            lhs, rhs, op = rhs, lhs, _SWAP.get(op, op)
        if op not in ("==", "!=", "&") and (lhs.type.big_endian or rhs.type.big_endian):
            raise DSLError(f"ordering comparison `{op}` on a big-endian value: convert it with "
                           ".host() first", b.where())
        if lhs.type.big_endian != rhs.type.big_endian and not rhs.is_const:
            raise DSLError("comparing a big-endian value with a host-order one: use .host() or "
                           ".net()", b.where())
        if signed is None:
            if lhs.type.signed != rhs.type.signed and op not in ("==", "!=", "&"):
                raise DSLError(f"`{op}` between signed {lhs.type} and unsigned {rhs.type} is "
                               "ambiguous: cast one side, or use .slt()/.ult() and friends", b.where())
            signed = lhs.type.signed
        return Cond(b, "cmp", (lhs, op, rhs, signed))

    def __bool__(self):
        raise DSLError("a DSL condition has no truth value at build time: use it in "
                       "`with p.if_(cond):` (and &, |, ~ instead of and, or, not)", self.b.where())

    def __and__(self, other: Cond) -> Cond:
        return Cond(self.b, "and", (self, _as_cond(other)))

    def __or__(self, other: Cond) -> Cond:
        return Cond(self.b, "or", (self, _as_cond(other)))

    def __invert__(self) -> Cond:
        return Cond(self.b, self.kind, self.parts, not self.negated)

def jump_op(op: str, signed: bool, negate: bool) -> JumpOp:
    """The JumpOp taken when ``lhs op rhs`` holds (or, with ``negate``, when it does not)."""
    if negate:
        if op == "&":
            raise AssertionError("JSET negation is handled by the builder")
        op = _NEGATE[op]
    return _JUMPS[op, signed if op not in ("==", "!=", "&") else False]


def _as_cond(c) -> Cond:
    if not isinstance(c, Cond):
        raise DSLError(f"expected a condition, got {c!r}")
    return c


def const_type(value: int, like: Scalar) -> Scalar:
    """The type a Python int takes next to a value of type ``like``.

    C's usual conversions, minus the surprises: the int takes ``like``'s
    promoted type when it fits (a negative int next to an unsigned type wraps,
    as ``x + -1`` does in C); an int too big for 32 bits makes the operation 64
    bits wide; anything else is an error.
    """
    if like.big_endian:
        return like
    t = promote(like)
    if 0 <= value <= t._max:  # the common case, ahead of the general loop
        return t
    for cand in (t, s64 if t.signed else u64):
        lo = -(1 << (cand.bits - 1))
        if lo <= value <= cand._max:
            return cand
    raise DSLError(f"constant {value} does not fit {t} (nor 64 bits)")


def _const_in(value: int, t: Scalar, b) -> int:
    """``value`` as a constant of type ``t``: in range, negative ints wrapping into unsigned types."""
    if t.big_endian:
        return value & ((1 << t.bits) - 1)
    if t._min <= value <= t._max:
        return value
    if not t.signed and -(1 << (t.bits - 1)) <= value < 0:
        return value + (1 << t.bits)
    raise DSLError(f"constant {value} does not fit {t}", b.where() if b is not None else None)


def imm64(value: int) -> int | None:
    """``value`` (taken modulo 2**64) as the s32 immediate a 64-bit op sign-extends, or None."""
    value &= (1 << 64) - 1
    if value <= (1 << 31) - 1:
        return value
    if value >= (1 << 64) + -(1 << 31):
        return value - (1 << 64)
    return None


def imm32(value: int) -> int | None:
    """``value`` (modulo 2**32) as the immediate of a 32-bit op, or None."""
    if not -(1 << 63) <= value < (1 << 64):
        return None
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value > (1 << 31) - 1 else value
