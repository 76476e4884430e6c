"""Random DSL programs against a Python model: the build passes must keep their meaning.

Hypothesis draws small programs over four u32 variables and a packet of bytes and
words: assignments, ``+=``, stores to the packet, ``if_``/``else_`` (nested),
early returns, loops (``p.range`` and ``p.while_``, with ``break_``), helper calls
between repeated loads, calls of two subprograms, bounds checks (``require``,
``header(at=...)``) that may fail, and conditions on masked values that value
ranges can decide. Expressions are reused from a pool, so the same loads and
arithmetic chains come back across branches, stores and calls (what CSE looks
for), and masks and small constants make jumps that ranges decide or thread.

Each program is written as Python source (shown when a case fails), built,
loaded and run on several packets; its return value and the packet it leaves
must equal what the model, an interpreter of the same tree, computes.
"""

from __future__ import annotations

import os
import random
import struct

import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from pybpf.dsl import Struct, subprog, u8, u32, xdp
from pybpf.errors import BPFError, VerifierError
from pybpf.types import s32

pytestmark = pytest.mark.kernel

M = 0xFFFFFFFF
BYTES = ["a", "b", "c", "d"]
WORDS = ["w0", "w1"]
NV = 4


class In(Struct):
    """Inputs (bytes, then words in host order), then the variables at the end."""

    a: u8
    b: u8
    c: u8
    d: u8
    w0: u32
    w1: u32
    o0: u32
    o1: u32
    o2: u32
    o3: u32


class One(Struct):
    x: u8


@subprog
def sub0(p, a, b):
    with p.if_(a > b):
        p.return_(a * 3 + b)
    p.return_(b - a)


@subprog
def sub1(p, a, b):
    r = p.var(u32, a ^ b)
    with p.if_((a & 1) == 0):
        r.set(r + 7)
    p.return_(r)


# -- drawing a program -------------------------------------------------------------------------
# expressions: ("v", k) ("f", field) ("c", n) ("i", loop) ("b", op, x, y) ("sh", op, x, n)
# ("sub", which, x, y); conditions: ("cmp", op, signed, x, y) ("and"/"or", c, c) ("not", c)

class Draw:
    def __init__(self, rnd: random.Random):
        self.r = rnd
        self.pool: list = []     # expressions used again elsewhere
        self.loops: list = []    # the loop counters in scope
        self.nloop = 0

    def leaf(self):
        r = self.r
        k = r.random()
        if self.loops and k < 0.15:
            return ("i", r.choice(self.loops))
        if k < 0.45:
            return ("v", r.randrange(NV))
        if k < 0.8:
            return ("f", r.choice(BYTES + WORDS))
        return ("c", r.choice([0, 1, 3, 7, 255, 256, 0xFFFF, 0x80000000, M, r.randrange(1 << 32)]))

    def expr(self, depth: int = 2):
        r = self.r
        if self.pool and r.random() < 0.3:
            return r.choice(self.pool)
        k = r.random()
        if depth == 0 or k < 0.3:
            e = self.leaf()
        elif k < 0.7:
            e = ("b", r.choice("+-*&|^"), self.expr(depth - 1), self.expr(depth - 1))
        elif k < 0.8:
            e = ("b", "&", self.expr(depth - 1), ("c", r.choice([1, 3, 7, 15, 255, 0xFFFF])))
        elif k < 0.9:
            e = ("sh", r.choice(["<<", ">>"]), self.expr(depth - 1), r.randrange(32))
        else:
            e = ("sub", r.randrange(2), self.expr(depth - 1), self.expr(depth - 1))
        if r.random() < 0.3 and not _reads_loop(e):
            self.pool.append(e)
        return e

    def cond(self, depth: int = 1):
        r = self.r
        k = r.random()
        if depth and k < 0.15:
            return (r.choice(["and", "or"]), self.cond(depth - 1), self.cond(depth - 1))
        if depth and k < 0.2:
            return ("not", self.cond(depth - 1))
        a = self.expr(1)
        if r.random() < 0.3:  # a small range: a jump value ranges may decide
            a = ("b", "&", a, ("c", r.choice([3, 7, 15, 255])))
        b = ("c", r.choice([0, 1, 2, 5, 7, 10, 16, 60, 200, 255, 256, 0x80000000, M])) \
            if r.random() < 0.6 else self.expr(1)
        return ("cmp", r.choice(["==", "!=", "<", "<=", ">", ">="]), r.random() < 0.2, a, b)

    def block(self, depth: int, n: int | None = None) -> list:
        return [self.stmt(depth) for _ in range(self.r.randint(1, 3) if n is None else n)]

    def stmt(self, depth: int):
        r = self.r
        k = r.random()
        if depth and k < 0.25:
            return ("if", self.cond(), self.block(depth - 1),
                    self.block(depth - 1) if r.random() < 0.5 else None)
        if depth and k < 0.33:
            name = f"i{self.nloop}"
            self.nloop += 1
            bound = r.choice([("c", r.randrange(4)), ("b", "&", ("f", r.choice(BYTES)), ("c", 3))])
            self.loops.append(name)
            body = self.block(depth - 1)
            if r.random() < 0.4:
                body.insert(r.randrange(len(body) + 1), ("if", self.cond(), [("break",)], None))
            self.loops.pop()
            return ("loop", r.choice(["range", "while"]), name, bound, body)
        if k < 0.4:
            return ("if", self.cond(), [("ret", self.expr())], None)
        if k < 0.45:
            length = ("c", r.choice([8, 24, 40, 64, 65])) if r.random() < 0.5 else \
                ("b", "&", self.expr(1), ("c", 127))
            return ("require", length, r.randrange(11, 14))
        if k < 0.5:
            return ("byte_at", r.randrange(NV), ("b", "&", self.expr(1), ("c", 127)),
                    r.randrange(14, 17))
        if k < 0.62:
            return ("store", r.choice(BYTES + WORDS), self.expr())
        if k < 0.67:
            return ("call",)
        if k < 0.82:
            return ("add", r.randrange(NV), self.expr())
        return ("set", r.randrange(NV), self.expr())

    def program(self):
        r = self.r
        inits = [("f", r.choice(BYTES + WORDS)) if r.random() < 0.6 else ("c", r.randrange(300))
                 for _ in range(NV)]
        return inits, self.block(2, r.randint(3, 7))


def _reads_loop(e) -> bool:
    if e[0] == "i":
        return True
    return e[0] in ("b", "sh", "sub") and any(_reads_loop(x) for x in e[2:] if type(x) is tuple)


# -- the program as DSL source -----------------------------------------------------------------

def src_e(e) -> str:
    kind = e[0]
    if kind == "v":
        return f"v{e[1]}"
    if kind == "f":
        return f"inp.{e[1]}"
    if kind == "c":
        return f"p.const({e[1]}, u32)"
    if kind == "i":
        return e[1]
    if kind == "b":
        return f"({src_e(e[2])} {e[1]} {src_e(e[3])})"
    if kind == "sh":
        return f"({src_e(e[2])}.cast(u32) {e[1]} {e[3]})"
    return f"sub{e[1]}(p, {src_e(e[2])}, {src_e(e[3])}).cast(u32)"


def src_c(c) -> str:
    if c[0] in ("and", "or"):
        return f"({src_c(c[1])} {'&' if c[0] == 'and' else '|'} {src_c(c[2])})"
    if c[0] == "not":
        return f"~({src_c(c[1])})"
    _, op, signed, a, b = c
    t = "s32" if signed else "u32"
    return f"(({src_e(a)}).cast({t}) {op} ({src_e(b)}).cast({t}))"


def src_block(stmts: list, indent: int, out: list) -> None:
    pad = "    " * indent
    for s in stmts:
        kind = s[0]
        if kind == "if":
            out.append(f"{pad}with p.if_({src_c(s[1])}):")
            src_block(s[2], indent + 1, out)
            if s[3] is not None:
                out.append(f"{pad}with p.else_():")
                src_block(s[3], indent + 1, out)
        elif kind == "loop":
            _, how, name, bound, body = s
            if how == "range":
                out.append(f"{pad}for {name} in p.range({src_e(bound)}):")
                src_block(body, indent + 1, out)
            else:
                out += [f"{pad}{name} = p.var(u32, 0)", f"{pad}{name}_n = p.var(u32, {src_e(bound)})",
                        f"{pad}with p.while_(lambda: {name} < {name}_n):"]
                src_block(body, indent + 1, out)
                out.append(f"{pad}    {name} += 1")
        elif kind == "break":
            out.append(f"{pad}p.break_()")
        elif kind == "ret":
            out.append(f"{pad}p.return_({src_e(s[1])})")
        elif kind == "require":
            length = s[1][1] if s[1][0] == "c" else src_e(s[1])
            out.append(f"{pad}p.packet.require({length}, on_short={s[2]})")
        elif kind == "byte_at":
            out.append(f"{pad}v{s[1]}.set(p.packet.header(One, at={src_e(s[2])}, "
                       f"on_short={s[3]}).x)")
        elif kind == "store":
            t = "u8" if s[1] in BYTES else "u32"
            out.append(f"{pad}inp.{s[1]} = ({src_e(s[2])}).cast({t})")
        elif kind == "call":
            out.append(f"{pad}p.call('get_prandom_u32')")
        elif kind == "add":
            out.append(f"{pad}v{s[1]} += {src_e(s[2])}")
        else:
            out.append(f"{pad}v{s[1]}.set({src_e(s[2])})")


def source(prog) -> str:
    inits, body = prog
    out = ["def prog(p):", "    inp = p.packet.header(In)"]
    out += [f"    v{k} = p.var(u32, {src_e(e)})" for k, e in enumerate(inits)]
    src_block(body, 1, out)
    out += [f"    inp.o{k} = v{k}" for k in range(NV)]
    out.append("    p.return_(v0 ^ v1 ^ v2 ^ v3)")
    return "\n".join(out) + "\n"


# -- the model ---------------------------------------------------------------------------------

class Return(Exception):
    pass


class Break(Exception):
    pass


def pack(pkt: dict) -> bytes:
    data = bytes(pkt[f] for f in BYTES) + struct.pack("<6I", *(pkt[f] for f in WORDS),
                                                      *(pkt[f"o{k}"] for k in range(NV)))
    return data.ljust(64, b"\0")


class Model:
    def __init__(self, pkt: dict):
        self.pkt, self.v, self.i = dict(pkt), [0] * NV, {}

    def e(self, e) -> int:
        kind = e[0]
        if kind == "v":
            return self.v[e[1]]
        if kind == "f":
            return self.pkt[e[1]]
        if kind == "c":
            return e[1]
        if kind == "i":
            return self.i[e[1]]
        if kind == "sh":
            x = self.e(e[2])
            return (x << e[3]) & M if e[1] == "<<" else x >> e[3]
        x, y = self.e(e[2]), self.e(e[3])
        if kind == "sub":
            if e[1] == 0:
                return (x * 3 + y) & M if x > y else (y - x) & M
            return x ^ y if x & 1 else ((x ^ y) + 7) & M
        return {"+": x + y, "-": x - y, "*": x * y, "&": x & y, "|": x | y, "^": x ^ y}[e[1]] & M

    def c(self, c) -> bool:
        if c[0] == "and":
            return self.c(c[1]) and self.c(c[2])
        if c[0] == "or":
            return self.c(c[1]) or self.c(c[2])
        if c[0] == "not":
            return not self.c(c[1])
        _, op, signed, a, b = c
        x, y = self.e(a), self.e(b)
        if signed:
            x, y = (x ^ 0x80000000) - 0x80000000, (y ^ 0x80000000) - 0x80000000
        return {"==": x == y, "!=": x != y, "<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]

    def run(self, stmts: list) -> None:
        for s in stmts:
            kind = s[0]
            if kind == "if":
                if self.c(s[1]):
                    self.run(s[2])
                elif s[3] is not None:
                    self.run(s[3])
            elif kind == "loop":
                _, _, name, bound, body = s
                n, self.i[name] = self.e(bound), 0
                try:
                    while self.i[name] < n:
                        self.run(body)
                        self.i[name] += 1
                except Break:
                    pass
            elif kind == "break":
                raise Break
            elif kind == "ret":
                raise Return(self.e(s[1]))
            elif kind == "require":
                if self.e(s[1]) > 64:
                    raise Return(s[2])
            elif kind == "byte_at":
                at = self.e(s[2])
                if at >= 64:
                    raise Return(s[3])
                self.v[s[1]] = pack(self.pkt)[at]
            elif kind == "store":
                self.pkt[s[1]] = self.e(s[2]) & (0xFF if s[1] in BYTES else M)
            elif kind == "add":
                self.v[s[1]] = (self.v[s[1]] + self.e(s[2])) & M
            elif kind == "set":
                self.v[s[1]] = self.e(s[2])

    def result(self, prog) -> tuple[int, bytes]:
        inits, body = prog
        self.v = [self.e(e) for e in inits]
        try:
            self.run(body)
        except Return as r:
            return r.args[0], pack(self.pkt)
        for k in range(NV):
            self.pkt[f"o{k}"] = self.v[k]
        return self.v[0] ^ self.v[1] ^ self.v[2] ^ self.v[3], pack(self.pkt)


def packets(rnd: random.Random, n: int) -> list[dict]:
    out = []
    for _ in range(n):
        pkt = {f: rnd.choice([0, 1, 2, 3, 7, 255, rnd.randrange(256)]) for f in BYTES}
        pkt.update({f: rnd.choice([0, 1, 0x80000000, M, rnd.randrange(1 << 32), rnd.randrange(300)])
                    for f in WORDS})
        pkt.update({f"o{k}": rnd.randrange(1 << 32) for k in range(NV)})
        out.append(pkt)
    return out


# each example loads a program: shrinking would take minutes, and a failure shows the source
@settings(max_examples=int(os.environ.get("PYBPF_RANDOM_PROGRAMS", 25)), deadline=None,
          phases=(Phase.explicit, Phase.reuse, Phase.generate),
          suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False))
def test_random_programs_keep_their_meaning(rnd):
    prog = Draw(rnd).program()
    text = source(prog)
    ns = {"In": In, "One": One, "sub0": sub0, "sub1": sub1, "u8": u8, "u32": u32, "s32": s32}
    exec(compile(text, "<random program>", "exec"), ns)  # noqa: S102 - source built above
    built = xdp(ns["prog"])
    try:
        loaded = built.load()
    except (VerifierError, BPFError) as e:  # too many paths for the verifier: not our concern
        assume("too complex" not in str(e) and "too large" not in str(e) and e.errno != 12)
        raise
    with loaded:
        for pkt in packets(rnd, 8):
            want_ret, want_data = Model(pkt).result(prog)
            got = loaded.test_run(pack(pkt))
            assert (got.retval, got.data_out[:64]) == (want_ret, want_data), \
                f"{text}\n{pkt}\n{built.listing()}"
