"""Edges of the DSL's build passes, each run in the kernel against what the source means.

Programs whose shape sits at the edge of a pass's assumptions: code emitted into
a branch folded at build time, subprograms whose only calls a pass removes,
values reused across branches, stores and calls, loops around decided jumps.
Inputs come from the packet so nothing folds unless the test means it to.
"""

from __future__ import annotations

import struct

import pytest

from pybpf.dsl import Struct, subprog, u8, u32, xdp

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
