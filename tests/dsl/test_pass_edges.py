"""Edges of the DSL's build passes, each run in the kernel against what the source means.

Programs whose shape sits at the edge of a pass's assumptions: code emitted into
a branch folded at build time, subprograms whose only calls a pass removes,
values reused across branches, stores and calls, loops around decided jumps.
Inputs come from the packet so nothing folds unless the test means it to.
"""

from __future__ import annotations

import struct

import pytest

from pybpf.dsl import Array, Struct, subprog, u8, u32, xdp

pytestmark = pytest.mark.kernel


class In(Struct):
    """Inputs: four bytes and two words (host order), then room for results."""

    a: u8
    b: u8
    c: u8
    d: u8
    w0: u32
    w1: u32
    out: u32


def frame(a: int = 0, b: int = 0, c: int = 0, d: int = 0, w0: int = 0, w1: int = 0) -> bytes:
    return struct.pack("<4B3I", a, b, c, d, w0, w1, 0).ljust(64, b"\0")


def out(data: bytes) -> int:
    return struct.unpack_from("<I", data, 12)[0]


# -- code in a branch folded at build time ------------------------------------------------------

@xdp
def folded_nest(p):
    inp = p.packet.header(In)
    v = p.var(u32, inp.a)
    with p.if_(p.const(1, u32) == 2):   # folded: nothing inside is emitted
        with p.if_(inp.c == 2):
            v.set(1)
        with p.else_():                 # its jump past the else must not be emitted either
            v.set(2)
    with p.else_():
        v.set(v + 5)
    p.return_(v)


def test_if_else_inside_a_branch_folded_at_build_time():
    with folded_nest.load() as loaded:
        for a, c in ((0, 2), (7, 0), (250, 2)):
            assert loaded.test_run(frame(a, 0, c)).retval == a + 5


# -- shared returns (merge_exits) ---------------------------------------------------------------

@xdp
def returns_in_a_row(p):
    inp = p.packet.header(In)
    with p.if_(inp.a != 0):
        with p.if_(inp.b == 0):
            p.return_(0)                # ``if b != 0 goto L; r0 = 0; exit; L: r0 = 0; exit``
        with p.if_(p.const(0, u32) == 0):
            p.return_(0)                # folded: L's block returns 0 too
    with p.else_():
        inp.c = 9
    p.return_(0)


def test_a_return_after_an_inverted_jump_over_a_return_is_still_reached():
    # the first return becomes ``if b == 0 goto shared``: where it falls through (b != 0),
    # L's return must still be there, not the else branch that follows
    with returns_in_a_row.load() as loaded:
        for a, b in ((1, 0), (1, 5), (0, 5)):
            got = loaded.test_run(frame(a, b, 3))
            assert got.retval == 0
            assert got.data_out[2] == (9 if a == 0 else 3), (a, b)


# -- a subprogram whose only call is on a path decided dead -------------------------------------

@subprog
def triple(p, x):
    p.return_(x * 3)


@xdp
def dead_call(p):
    inp = p.packet.header(In)
    r = p.var(u32, inp.b)
    with p.if_((inp.a & 3) == 255):     # never true: value ranges drop the branch and its call
        r.set(triple(p, inp.c))
    p.return_(r)


def test_a_subprogram_called_only_on_a_dead_path_is_not_emitted():
    assert "triple" not in dead_call.listing()
    with dead_call.load() as loaded:    # the kernel refuses a function nobody calls
        for b in (0, 9, 255):
            assert loaded.test_run(frame(3, b, 4)).retval == b


# -- repeated loads and arithmetic (cse) ----------------------------------------------------------

@xdp
def reload_in_loop(p):
    inp = p.packet.header(In)
    acc = p.var(u32, inp.w0)              # a load before the loop
    for _ in p.range(inp.a & 7):
        acc += inp.w0                     # the same load: the store of the turn before is seen
        inp.w0 = inp.w0 + 3               # a store at the end of the body (the back edge)
    p.return_(acc + inp.w0)


def test_a_load_in_a_loop_sees_the_store_of_the_turn_before():
    with reload_in_loop.load() as loaded:
        for a, w0 in ((0, 5), (1, 5), (3, 100), (7, 0xFFFFFFFE)):
            acc = w = w0
            for _ in range(a & 7):
                acc, w = acc + w, w + 3
            assert loaded.test_run(frame(a, w0=w0)).retval == (acc + w) & 0xFFFFFFFF, (a, w0)


@xdp
def chain_on_one_path(p):
    inp = p.packet.header(In)
    x = inp.a.cast(u32)
    r = p.var(u32, 0)
    with p.if_(inp.b == 1):
        r.set(((x & 15) << 2) + 14)       # computed on one path only
    t = p.var(u32, ((x & 15) << 2) + 14)  # the same chain after the join: not available
    with p.if_(inp.c == 1):
        inp.w1 = x * 7
    with p.else_():
        inp.w1 = x * 9
    u = p.var(u32, inp.w1)                # stored on both paths, differently: read again
    p.return_(r * 1000 + t + u * 100000)


def test_a_value_computed_on_one_path_is_computed_again_after_the_join():
    with chain_on_one_path.load() as loaded:
        for a, b, c in ((0x1F, 1, 0), (0x1F, 0, 1), (7, 1, 1), (200, 0, 0)):
            t = ((a & 15) << 2) + 14
            want = (t * 1000 if b == 1 else 0) + t + a * (7 if c == 1 else 9) * 100000
            assert loaded.test_run(frame(a, b, c)).retval == want & 0xFFFFFFFF, (a, b, c)


class Entry(Struct):
    n: u32


counts = Array(u32, Entry, max_entries=2)


@xdp
def reread_after_writes(p):
    inp = p.packet.header(In)
    s = p.stack(Entry, n=inp.w0)
    first = p.var(u32, s.n)
    s.n = inp.w1                          # a stack store: the stack load is read again
    second = p.var(u32, s.n)
    r = p.var(u32, first + second * 3)
    k = p.stack(u32, 0)
    with counts.lookup(k) as e:
        before = p.var(u32, e.n)
        counts.update(k, s)               # a helper writes the value: read it again
        r += (e.n - before) * 5
        e.n = inp.a                       # a store through the pointer: read it again
        r += e.n * 7
    p.return_(r)


def test_loads_after_stack_stores_helper_calls_and_stores_read_again():
    with reread_after_writes.load() as loaded:
        for a, w0, w1 in ((1, 10, 20), (9, 0, 7), (255, 1000, 3)):
            loaded["counts"][0] = Entry(4)
            want = w0 + 3 * w1 + (w1 - 4) * 5 + a * 7
            got = loaded.test_run(frame(a, w0=w0, w1=w1)).retval
            assert got == want & 0xFFFFFFFF, (a, w0, w1)
