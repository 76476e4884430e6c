"""The order the clean-ups on allocated code run in (the passes live in
``pybpf.dsl.peephole`` and ``pybpf.dsl.jumps``; the ones on virtual code, run by
the builder, in ``rewrite``, ``cse`` and ``ranges``).
"""

from __future__ import annotations

from pybpf.dsl.jumps import (
    drop_jumps_to_next,
    drop_unreachable,
    drop_unused_marks,
    invert_over_goto,
    merge_exits,
    relax,
    thread_jumps,
)
from pybpf.dsl.peephole import straight_line


def optimize(ops: list, new_label) -> list:
    """Peepholes on allocated code, to a fixed point, then far-jump relaxation.

    The straight-line ones (masks, merges) run before the control-flow ones and
    again only when those removed something (a dropped jump can make two ops
    neighbours). Each pass returns the list it was given when it changes
    nothing, so a pass is not run again on a list it already left alone.
    """
    settled: dict = {}  # pass -> the op list it last returned unchanged

    def run(step, ops: list) -> list:
        if settled.get(step) is ops:
            return ops
        out = step(ops)
        if out is ops:
            settled[step] = ops
        return out

    def merge(ops: list) -> list:
        return merge_exits(ops, new_label)

    ops = run(straight_line, ops)
    for _ in range(4):
        before = len(ops)
        for step in (drop_jumps_to_next, merge, thread_jumps, drop_jumps_to_next,
                     invert_over_goto, drop_unreachable, drop_unused_marks):
            ops = run(step, ops)
        if len(ops) == before:
            break
        ops = run(straight_line, ops)
    return relax(ops)
