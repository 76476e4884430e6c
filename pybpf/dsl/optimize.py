"""The order the clean-ups on allocated code run in (the passes live in
``pybpf.dsl.peephole`` and ``pybpf.dsl.jumps``; the ones on virtual code, run by
the builder, in ``rewrite``, ``cse`` and ``ranges``).
"""

from __future__ import annotations

from pybpf.dsl.jumps import (
    OpIndex,
    drop_jumps_to_next,
    drop_unreachable,
    drop_unused_marks,
    invert_over_goto,
    may_be_unreachable,
    merge_exits,
    relax,
    thread_jumps,
)
from pybpf.dsl.peephole import straight_line, straight_line_work


def optimize(ops: list, new_label) -> list:
    """Peepholes on allocated code, to a fixed point, then far-jump relaxation.

    The straight-line ones (masks, merges) run before the control-flow ones and
    again only when those removed something (a dropped jump can make two ops
    neighbours), and then only when ``straight_line_work`` finds a shape they
    rewrite. Each pass reads the ``OpIndex`` of the list (where each kind of op
    is), made again only when a pass returned a new list, and returns its input
    when it finds nothing to do (most do in most rounds, and the last round of
    every program finds nothing at all).
    """
    def merge(ops: list, index: OpIndex) -> list:
        return merge_exits(ops, index, new_label)

    def unreachable(ops: list, index: OpIndex) -> list:
        return drop_unreachable(ops) if may_be_unreachable(ops, index) else ops

    def straighten(ops: list, index: OpIndex) -> list:
        return straight_line(ops) if straight_line_work(ops, index) else ops

    index = OpIndex(ops)

    def run(step, ops: list) -> list:
        nonlocal index
        out = step(ops, index)
        if out is not ops:
            index = OpIndex(out)
        return out

    ops = run(straighten, ops)
    for _ in range(4):
        before = len(ops)
        for step in (drop_jumps_to_next, merge, thread_jumps, drop_jumps_to_next, invert_over_goto,
                     unreachable, drop_unused_marks):
            ops = run(step, ops)
        if len(ops) == before:
            break
        ops = run(straighten, ops)
    return relax(ops)
