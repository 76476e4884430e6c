"""The order the clean-ups on allocated code run in (the passes live in
``pybpf.dsl.peephole`` and ``pybpf.dsl.jumps``; the ones on virtual code, run by
the builder, in ``rewrite``, ``cse`` and ``ranges``).
"""

from __future__ import annotations

from pybpf.dsl.jumps import (
    Flow,
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
    rewrite. The control-flow ones read the ``Flow`` of the list (where its
    labels, jumps and exits are), scanned again only when a pass changed the
    list; each returns its input when it finds nothing to do (most do in most
    rounds, and the last round of every program finds nothing at all).
    """
    def merge(ops: list, flow: Flow) -> list:
        return merge_exits(ops, flow, new_label)

    def unreachable(ops: list, flow: Flow) -> list:
        return drop_unreachable(ops) if may_be_unreachable(ops, flow) else ops

    flow = Flow(ops)

    def run(step, ops: list) -> list:
        nonlocal flow
        out = step(ops, flow)
        if out is not ops:
            flow = Flow(out)
        return out

    def straighten(ops: list) -> list:
        nonlocal flow
        if not straight_line_work(ops):
            return ops
        out = straight_line(ops)
        if out is not ops:
            flow = Flow(out)
        return out

    ops = straighten(ops)
    for _ in range(4):
        before = len(ops)
        for step in (drop_jumps_to_next, merge, thread_jumps, drop_jumps_to_next, invert_over_goto,
                     unreachable, drop_unused_marks):
            ops = run(step, ops)
        if len(ops) == before:
            break
        ops = straighten(ops)
    return relax(ops)
