"""DSL arithmetic against the kernel: the verifier and the JIT are the oracle.

Hypothesis draws expression trees over values of every integer type (u8..u64,
s8..s64): ``+ - * // % & | ^ << >>``, unary ``-`` and ``~``, casts, Python int
operands on either side, and comparisons (with ``&``, ``|``, ``~`` of
conditions) turned into 0/1 through ``p.if_``/``p.else_`` and a ``p.var``.
Each tree is built three times into one XDP program: with every leaf read
from the packet (so nothing folds), with every leaf a typed constant (so
everything folds in Python), and with a random mix. The program writes the
three results into the packet; ``test_run`` hands the packet back and all
three must equal, bit for bit, a Python model of the documented semantics
written here independently of ``pybpf.dsl.values``:

- operands narrower than 32 bits are promoted to 32 bits; the result has the
  wider operand's width; a Python int takes the other operand's type;
- shift counts are masked to the width (``& 31`` or ``& 63``); ``>>`` of a
  signed value is arithmetic;
- ``x // 0 == 0`` and ``x % 0 == x``; signed division truncates toward zero
  and ``INT_MIN // -1 == INT_MIN``, ``INT_MIN % -1 == 0``;
- casts truncate, zero- or sign-extend as C does;
- a big-endian leaf (be16, be32) is read with ``.host()`` (a byte swap that
  zero-extends): in the model it is the u16/u32 the packet holds in network order;
- ``x.cast(uN).net(N).cast(uN)`` (N = 16, 32) swaps the bytes of x's low N bits.
"""

from __future__ import annotations

import operator
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.dsl import XDP_PASS, Array, DSLError, Struct, xdp
from pybpf.types import be16, be32, s8, s16, s32, s64, u8, u16, u32, u64

TYPES = (u8, u16, u32, u64, s8, s16, s32, s64)
HOST = {be16: u16, be32: u32}  # big-endian leaves, as .host() reads them
BINOPS = ("+", "-", "*", "//", "%", "&", "|", "^", "<<", ">>")
CMPOPS = ("==", "!=", "<", "<=", ">", ">=")
_PY = {"+": operator.add, "-": operator.sub, "*": operator.mul, "//": operator.floordiv,
       "%": operator.mod, "&": operator.and_, "|": operator.or_, "^": operator.xor,
       "<<": operator.lshift, ">>": operator.rshift, "==": operator.eq, "!=": operator.ne,
       "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_BY_SIGN_WIDTH = {(t.signed, t.bits): t for t in TYPES}


# -- the model ---------------------------------------------------------------------------

def wrap(value: int, t) -> int:
    value &= (1 << t.bits) - 1
    if t.signed and value >> (t.bits - 1):
        value -= 1 << t.bits
    return value


def promote(t):
    return t if t.bits >= 32 else _BY_SIGN_WIDTH[(t.signed, 32)]


def wider(a, b):
    a, b = promote(a), promote(b)
    return a if a.bits >= b.bits else b


def arith(op: str, a: int, b: int, t) -> int:
    """``a op b`` in type ``t`` (both operands already values of ``t``)."""
    if op in ("<<", ">>"):
        n = b & (t.bits - 1)
        if op == "<<":
            return wrap(a << n, t)
        return wrap(a >> n, t)  # Python's >> is arithmetic; unsigned values are >= 0
    if op == "//":
        if b == 0:
            return 0
        q = abs(a) // abs(b)
        return wrap(-q if (a < 0) != (b < 0) else q, t)
    if op == "%":
        if b == 0:
            return a
        r = abs(a) % abs(b)
        return wrap(-r if a < 0 else r, t)
    return wrap(_PY[op](a, b), t)


def evaluate(node, leaves):
    """(value, type) of an expression tree under the model."""
    kind = node[0]
    if kind == "leaf":
        t, v = leaves[node[1]]
        return v, HOST.get(t, t)
    if kind == "cast":
        v, _ = evaluate(node[2], leaves)
        return wrap(v, node[1]), node[1]
    if kind == "swap":
        v, _ = evaluate(node[2], leaves)
        t = _BY_SIGN_WIDTH[(False, node[1])]
        return int.from_bytes(wrap(v, t).to_bytes(node[1] // 8, "little"), "big"), t
    if kind in ("neg", "inv"):
        v, t = evaluate(node[1], leaves)
        t = promote(t)
        return wrap(-v if kind == "neg" else ~v, t), t
    if kind == "bin":
        _, op, a, b = node
        (va, ta), (vb, tb) = _operands(a, b, leaves)
        t = promote(ta) if op in ("<<", ">>") else wider(ta, tb)
        if op in ("<<", ">>"):
            return arith(op, va, vb, t), t
        return arith(op, wrap(va, t), wrap(vb, t), t), t
    if kind == "cond":
        return (1 if truth(node[1], leaves) else 0), u32
    raise AssertionError(node)


def _operands(a, b, leaves):
    """Evaluate two operands; a Python int takes the other operand's promoted type."""
    if a[0] == "int":
        vb, tb = evaluate(b, leaves)
        return (wrap(a[1], promote(tb)), promote(tb)), (vb, tb)
    va, ta = evaluate(a, leaves)
    if b[0] == "int":
        return (va, ta), (wrap(b[1], promote(ta)), promote(ta))
    return (va, ta), evaluate(b, leaves)


def truth(cond, leaves) -> bool:
    kind = cond[0]
    if kind == "and":
        return truth(cond[1], leaves) and truth(cond[2], leaves)
    if kind == "or":
        return truth(cond[1], leaves) or truth(cond[2], leaves)
    if kind == "not":
        return not truth(cond[1], leaves)
    _, op, a, b = cond
    (va, _), (vb, _) = _operands(a, b, leaves)
    return _PY[op](va, vb)


def typeof(node, leaves):
    return evaluate(node, leaves)[1]


# -- building the same tree with the DSL -------------------------------------------------

def field(inp, i: int):
    """Input i read from the packet (a big-endian one in host order)."""
    v = getattr(inp, f"f{i}")
    return v.host() if v.type.big_endian else v


def const(p, leaves, i: int):
    """Input i as a typed constant (a big-endian one as the host value it holds)."""
    t, v = leaves[i]
    return p.const(v, HOST.get(t, t))


def emit(p, node, leaf):
    """The DSL Value for ``node``; ``leaf(i)`` gives the Value of input i."""
    kind = node[0]
    if kind == "leaf":
        return leaf(node[1])
    if kind == "int":
        return node[1]
    if kind == "cast":
        return emit(p, node[2], leaf).cast(node[1])
    if kind == "swap":  # a byte swap (be16/be32), read back as the unsigned value it makes
        t = _BY_SIGN_WIDTH[(False, node[1])]
        return emit(p, node[2], leaf).cast(t).net(node[1]).cast(t)
    if kind == "neg":
        return -emit(p, node[1], leaf)
    if kind == "inv":
        return ~emit(p, node[1], leaf)
    if kind == "bin":
        return _PY[node[1]](emit(p, node[2], leaf), emit(p, node[3], leaf))
    if kind == "cond":
        c = emit_cond(p, node[1], leaf)
        if node[2]:  # two flavours: var initialised then set, or set in both branches
            r = p.var(u32, 0)
            with p.if_(c):
                r.set(1)
        else:
            r = p.var(u32)
            with p.if_(c):
                r.set(1)
            with p.else_():
                r.set(0)
        return r
    raise AssertionError(node)


def emit_cond(p, cond, leaf):
    kind = cond[0]
    if kind == "and":
        return emit_cond(p, cond[1], leaf) & emit_cond(p, cond[2], leaf)
    if kind == "or":
        return emit_cond(p, cond[1], leaf) | emit_cond(p, cond[2], leaf)
    if kind == "not":
        return ~emit_cond(p, cond[1], leaf)
    _, op, a, b = cond
    return _PY[op](emit(p, a, leaf), emit(p, b, leaf))


# -- generating well-typed trees ---------------------------------------------------------

def values_of(t):
    t = HOST.get(t, t)
    lo, hi = (-(1 << (t.bits - 1)), (1 << (t.bits - 1)) - 1) if t.signed else (0, (1 << t.bits) - 1)
    edges = [lo, hi, 0, 1, -1, lo + 1, hi - 1, 2, 7, 8, 31, 32, 63, 64]
    return st.one_of(st.sampled_from([e for e in edges if lo <= e <= hi]),
                     st.integers(lo, hi), st.integers(-300, 300).filter(lambda v: lo <= v <= hi))


@st.composite
def leaves_st(draw):
    n = draw(st.integers(1, 6))
    out = []
    for _ in range(n):
        t = draw(st.sampled_from(TYPES + tuple(HOST)))
        out.append((t, draw(values_of(t))))
    return out


def _fix_sign(node, want_signed: bool, leaves):
    """Cast ``node`` so its signedness is ``want_signed`` (keeping its promoted width)."""
    if node[0] == "int":
        return node
    t = promote(typeof(node, leaves))
    if t.signed == want_signed:
        return node
    return ("cast", _BY_SIGN_WIDTH[(want_signed, t.bits)], node)


def _int_for(draw, other, leaves):
    t = promote(typeof(other, leaves))
    lo, hi = (-(1 << (t.bits - 1)), (1 << (t.bits - 1)) - 1) if t.signed else (0, (1 << t.bits) - 1)
    if not t.signed:
        lo = -(1 << 31)  # negative ints next to unsigned values wrap, as in C
    return ("int", draw(st.one_of(st.sampled_from([0, 1, -1, 2, 16, 31, 32, 63, 64, 255, 0xFF00,
                                                   0xFFFF, 0xFFFF0000]).filter(
        lambda v: lo <= v <= hi), st.integers(lo, hi))))


def expr_st(leaves, depth: int):
    @st.composite
    def build(draw, depth=depth):
        leaf = st.builds(lambda i: ("leaf", i), st.integers(0, len(leaves) - 1))
        if depth == 0:
            return draw(leaf)
        kind = draw(st.sampled_from(("leaf", "bin", "bin", "bin", "cast", "neg", "inv", "cond",
                                     "swap")))
        if kind == "leaf":
            return draw(leaf)
        sub = build(depth=depth - 1)
        if kind == "cast":
            return ("cast", draw(st.sampled_from(TYPES)), draw(sub))
        if kind == "swap":
            return ("swap", draw(st.sampled_from((16, 32))), draw(sub))
        if kind in ("neg", "inv"):
            return (kind, draw(sub))
        if kind == "cond":
            return ("cond", draw(cond_st(build, depth - 1)), draw(st.booleans()))
        op = draw(st.sampled_from(BINOPS))
        a, b = draw(sub), draw(sub)
        return binary(draw, op, a, b)

    def binary(draw, op, a, b):
        side = draw(st.sampled_from(("none", "none", "left", "right")))
        if side == "left":
            return ("bin", op, _int_for(draw, b, leaves), b)
        if side == "right":
            return ("bin", op, a, _int_for(draw, a, leaves))
        if op not in ("<<", ">>"):
            b = _fix_sign(b, promote(typeof(a, leaves)).signed, leaves)
        return ("bin", op, a, b)

    @st.composite
    def cond_st(draw, build, depth, nest=2):
        kind = draw(st.sampled_from(("cmp", "cmp", "cmp", "and", "or", "not") if nest else ("cmp",)))
        if kind == "not":
            return ("not", draw(cond_st(build, depth, nest - 1)))
        if kind in ("and", "or"):
            return (kind, draw(cond_st(build, depth, nest - 1)),
                    draw(cond_st(build, depth, nest - 1)))
        op = draw(st.sampled_from(CMPOPS))
        a, b = draw(build(depth=depth)), draw(build(depth=depth))
        side = draw(st.sampled_from(("none", "none", "left", "right")))
        if side == "left":
            return ("cmp", op, _int_for(draw, b, leaves), b)
        if side == "right":
            return ("cmp", op, a, _int_for(draw, a, leaves))
        return ("cmp", op, a, _fix_sign(b, promote(typeof(a, leaves)).signed, leaves))

    return build()


@st.composite
def cases(draw, max_exprs: int = 4, depth: int = 3):
    leaves = draw(leaves_st())
    exprs = draw(st.lists(expr_st(leaves, depth), min_size=1, max_size=max_exprs))
    masks = [draw(st.integers(0, (1 << len(leaves)) - 1)) for _ in exprs]
    return leaves, exprs, masks


# -- running ----------------------------------------------------------------------------

def struct(name: str, fields: dict):
    return type(name, (Struct,), {"__annotations__": fields})


def program(leaves, exprs, masks):
    """An XDP program computing every expression three ways into the packet."""
    In = struct("In", {f"f{i}": t for i, (t, _) in enumerate(leaves)})
    types = [typeof(e, leaves) for e in exprs]
    Out = struct("Out", {f"r{j}_{k}": t for j, t in enumerate(types) for k in range(3)})

    @xdp
    def expr(p):
        inp, out = p.packet.headers(In, Out)
        for j, e in enumerate(exprs):
            sources = (lambda i: field(inp, i),
                       lambda i: const(p, leaves, i),
                       lambda i, m=masks[j]: (const(p, leaves, i)
                                              if m >> i & 1 else field(inp, i)))
            for k, leaf in enumerate(sources):
                setattr(out, f"r{j}_{k}", emit(p, e, leaf))
        p.return_(XDP_PASS)

    return expr, In, Out


def check(leaves, exprs, masks):
    prog, In, Out = program(leaves, exprs, masks)
    packet = In.pack(In(**{f"f{i}": v for i, (_, v) in enumerate(leaves)}))
    frame = (packet + bytes(Out.size)).ljust(14, b"\0")
    with prog.load() as loaded:
        run = loaded.test_run(frame)
    assert run.retval == XDP_PASS
    got = Out.unpack(run.data_out[len(packet):len(packet) + Out.size])
    for j, e in enumerate(exprs):
        want = evaluate(e, leaves)[0]
        for k, how in enumerate(("run time", "constant-folded", "mixed")):
            value = getattr(got, f"r{j}_{k}")
            assert value == want, (f"{how}: {e!r} with {leaves!r} gave {value}, "
                                   f"expected {want}\n{prog.listing()}")


pytestmark = pytest.mark.kernel
SCALE = float(os.environ.get("PYBPF_EXAMPLES_SCALE", "1"))  # more examples for a long hunt
SETTINGS = settings(max_examples=int(150 * SCALE), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(cases())
def test_expressions_match_the_model(case):
    check(*case)


@settings(max_examples=int(300 * SCALE), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(leaves_st(), st.sampled_from(BINOPS), st.data())
def test_single_operations(leaves, op, data):
    """Every binary operation on two inputs of any types (signedness fixed by a cast)."""
    a = ("leaf", 0)
    b = ("leaf", data.draw(st.integers(0, len(leaves) - 1)))
    if op not in ("<<", ">>"):
        b = _fix_sign(b, promote(leaves[0][0]).signed, leaves)
    check(leaves, [("bin", op, a, b)], [1])


EDGES = [
    # (type, a, op, b): the ISA corner cases the docs promise
    (s32, -(1 << 31), "//", -1), (s32, -(1 << 31), "%", -1),
    (s64, -(1 << 63), "//", -1), (s64, -(1 << 63), "%", -1),
    (u32, 7, "//", 0), (u32, 7, "%", 0), (s32, -7, "//", 0), (s32, -7, "%", 0),
    (u64, 7, "//", 0), (s64, -7, "%", 0), (s32, -7, "//", 2), (s32, -7, "%", 2),
    (s64, 7, "//", -2), (s64, 7, "%", -2), (u32, 1, "<<", 33), (u64, 1, "<<", 65),
    (s32, -8, ">>", 1), (s64, -8, ">>", 65), (u16, 0xFFFF, "*", 0xFFFF),
    (s8, -128, "*", -1), (u8, 0, "-", 1),
]


@pytest.mark.parametrize("t,a,op,b", EDGES, ids=[f"{t.name}:{a}{op}{b}" for t, a, op, b in EDGES])
def test_edge_cases(t, a, op, b):
    leaves = [(t, a), (t, b)]
    check(leaves, [("bin", op, ("leaf", 0), ("leaf", 1)),
                   ("bin", op, ("leaf", 0), ("int", b))], [1, 2])


CASTS = [(src, dst, v) for src in TYPES for dst in TYPES
         for v in {wrap(x, src) for x in (-1, -128, 127, 255, 0x8000, -(1 << 31), 1 << 31)}]


@pytest.mark.parametrize("src,dst,v", CASTS, ids=[f"{s.name}->{d.name}:{v}" for s, d, v in CASTS])
def test_casts(src, dst, v):
    """Every cast, then used in 64-bit arithmetic so stale upper bits would show."""
    leaves = [(src, v), (u64, 0), (s64, 0)]
    zero = ("leaf", 1) if not dst.signed else ("leaf", 2)
    check(leaves, [("cast", dst, ("leaf", 0)),
                   ("bin", "+", ("cast", dst, ("leaf", 0)), zero)], [1, 2])


results = Array(u32, u64, max_entries=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(max_exprs=4, depth=2))
def test_results_through_a_map(case):
    """Results widened to 64 bits and stored in an Array map, read back from Python."""
    leaves, exprs, _ = case
    In = struct("In", {f"f{i}": t for i, (t, _) in enumerate(leaves)})

    @xdp
    def to_map(p):
        (inp,) = p.packet.headers(In)
        for j, e in enumerate(exprs):
            v = emit(p, e, lambda i: field(inp, i))
            results.update(p.const(j, u32), v.cast(s64 if v.type.signed else u64))
        p.return_(XDP_PASS)

    packet = In.pack(In(**{f"f{i}": v for i, (_, v) in enumerate(leaves)})).ljust(14, b"\0")
    with to_map.load() as loaded:
        assert loaded.test_run(packet).retval == XDP_PASS
        for j, e in enumerate(exprs):
            want = wrap(evaluate(e, leaves)[0], u64)
            assert loaded["results"][j] == want, f"{e!r} with {leaves!r}"


def test_signed_unsigned_mix_is_refused():
    @xdp
    def mix(p):
        (inp,) = p.packet.headers(struct("In", {"a": u32, "b": s32}))
        p.return_(inp.a + inp.b)

    with pytest.raises(DSLError, match="mixes signed s32|mixes signed"):
        mix.build()


# -- variables: in-place operators convert back to the variable's type, as C's assignment does --

INPLACE = {"+": operator.iadd, "-": operator.isub, "*": operator.imul, "//": operator.ifloordiv,
           "%": operator.imod, "&": operator.iand, "|": operator.ior, "^": operator.ixor,
           "<<": operator.ilshift, ">>": operator.irshift}


@st.composite
def var_programs(draw):
    leaves = draw(leaves_st())
    t = draw(st.sampled_from(TYPES))
    init = draw(values_of(t))
    steps = []
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(BINOPS))
        operand = draw(st.one_of(
            st.builds(lambda i: ("leaf", i), st.integers(0, len(leaves) - 1)),
            st.builds(lambda v: ("int", v), st.integers(-100, 300))))
        if operand[0] == "leaf" and op not in ("<<", ">>"):
            operand = _fix_sign(operand, t.signed, leaves)
        guard = draw(st.one_of(st.none(), st.tuples(st.integers(0, len(leaves) - 1),
                                                    st.integers(0, 255))))
        steps.append((op, operand, guard))
    return leaves, t, init, steps


def run_var_model(leaves, t, init, steps) -> int:
    v = init
    for op, operand, guard in steps:
        if guard is not None and not leaves[guard[0]][1] & 0xFF > guard[1]:
            continue
        if operand[0] == "int":
            ob, ot = wrap(operand[1], promote(t)), promote(t)
        else:
            ob, ot = evaluate(operand, leaves)
        rt = promote(t) if op in ("<<", ">>") else wider(t, ot)
        a = wrap(v, rt)
        b = ob if op in ("<<", ">>") else wrap(ob, rt)
        v = wrap(arith(op, a, b, rt), t)
    return v


@settings(max_examples=int(100 * SCALE), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(var_programs())
def test_var_in_place_operators(case):
    leaves, t, init, steps = case
    In = struct("In", {f"f{i}": lt for i, (lt, _) in enumerate(leaves)})
    Out = struct("Out", {"r": t})

    @xdp
    def var_ops(p):
        inp, out = p.packet.headers(In, Out)
        v = p.var(t, init)
        for op, operand, guard in steps:
            x = (operand[1] if operand[0] == "int"
                 else emit(p, operand, lambda i: field(inp, i)))
            if guard is None:
                INPLACE[op](v, x)
            else:
                with p.if_(field(inp, guard[0]).cast(u8) > guard[1]):
                    INPLACE[op](v, x)
        out.r = v
        p.return_(XDP_PASS)

    packet = In.pack(In(**{f"f{i}": val for i, (_, val) in enumerate(leaves)}))
    with var_ops.load() as loaded:
        run = loaded.test_run((packet + bytes(Out.size)).ljust(14, b"\0"))
    got = Out.unpack(run.data_out[len(packet):len(packet) + Out.size]).r
    assert got == run_var_model(leaves, t, init, steps), var_ops.listing()


# -- masks after values with known zero bits ---------------------------------------------------

UNSIGNED = (u8, u16, u32, u64, be16, be32)
MASKS = (0xFF, 0xFF00, 0xFFFF, 0xFFF0, 0xF0F0, 0xFFFF0000, 0x7FFFFFFF, 0xFFFFFFFF, 1, 0x10000)


@st.composite
def narrow_st(draw, n_leaves: int, depth: int = 3):
    """An unsigned value with some bits known zero: leaves (loads zero-extend), byte
    swaps, shifts, masks, ``~`` (32- or 64-bit), sums and products of such values."""
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        return ("leaf", draw(st.integers(0, n_leaves - 1)))
    kind = draw(st.sampled_from(("swap", "shift", "mask", "inv", "cast", "sum", "mul", "or")))
    sub = draw(narrow_st(n_leaves, depth - 1))
    if kind == "swap":
        return ("swap", draw(st.sampled_from((16, 32))), sub)
    if kind == "shift":  # 64-bit shifts across the halves as often as 32-bit ones
        if draw(st.booleans()):
            sub = ("cast", u64, sub)
        return ("bin", draw(st.sampled_from((">>", "<<"))), sub,
                ("int", draw(st.sampled_from((1, 4, 8, 16, 24, 31, 32, 48)))))
    if kind == "mask":
        return ("bin", "&", sub, ("int", draw(st.sampled_from(MASKS))))
    if kind == "inv":
        return ("inv", sub)
    if kind == "cast":
        return ("cast", draw(st.sampled_from((u8, u16, u32, u64))), sub)
    other = draw(narrow_st(n_leaves, depth - 1))
    return ("bin", {"sum": "+", "mul": "*", "or": "|"}[kind], sub, other)


@st.composite
def mask_st(draw):
    """A mask, often one of MASKS moved as the value before it may have moved its bits."""
    m = draw(st.sampled_from(MASKS))
    how = draw(st.sampled_from(("as is", "swap16", "swap32", "<<", ">>")))
    if how.startswith("swap"):
        bits = int(how[4:])
        m = int.from_bytes((m & ((1 << bits) - 1)).to_bytes(bits // 8, "little"), "big")
    elif how != "as is":
        k = draw(st.sampled_from((4, 8, 16, 24)))
        m = (m << k if how == "<<" else m >> k) & 0xFFFFFFFF
    return m


@st.composite
def masked_cases(draw):
    n = draw(st.integers(1, 4))
    leaves = [(t, draw(values_of(t))) for t in draw(st.lists(st.sampled_from(UNSIGNED),
                                                              min_size=n, max_size=n))]
    leaves = [(u16, draw(values_of(u16)))] + leaves
    # ~x & 0xffff of a u16 first: the peepholes on allocated code then run on this program
    exprs = [("bin", "&", ("inv", ("leaf", 0)), ("int", 0xFFFF))]
    for _ in range(draw(st.integers(1, 4))):
        inner = draw(narrow_st(len(leaves)))
        if draw(st.booleans()):
            inner = ("inv", inner)
        exprs.append(("bin", "&", inner, ("int", draw(mask_st()))))
    masks = [draw(st.integers(0, (1 << len(leaves)) - 1)) for _ in exprs]
    return leaves, exprs, masks


@settings(max_examples=int(150 * SCALE), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(masked_cases())
def test_masks_of_values_with_known_zero_bits(case):
    """Masks after byte swaps, shifts, masks and narrow loads: dropped or folded into
    ``x ^ M`` only where the bits they clear are zero (32- and 64-bit, bit for bit)."""
    check(*case)
