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
    neighbours).
    """
    ops = straight_line(ops)
    for _ in range(4):
        before = len(ops)
        ops = drop_jumps_to_next(ops)
        ops = merge_exits(ops, new_label)
        ops = thread_jumps(ops)
        ops = drop_jumps_to_next(ops)
        ops = invert_over_goto(ops)
        ops = drop_unreachable(ops)
        ops = drop_unused_marks(ops)
        if len(ops) == before:
            break
        ops = straight_line(ops)
    return relax(ops)
