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
    rewrite. A control-flow pass runs only when the ``Flow`` of the op list as
    it is now (one scan) names it in ``todo``: most find nothing in most rounds
    (the last round of every program finds nothing at all). A pass that returns
    its input leaves the flow as it was, less itself in ``todo``; one that
    changes the list has it scanned again.
    """
    def merge(ops: list, flow: Flow) -> list:
        return merge_exits(ops, flow, new_label)

    def unreachable(ops: list, flow: Flow) -> list:
        return drop_unreachable(ops)

    flow = Flow(ops)

    def run(step, name: str, ops: list) -> list:
        nonlocal flow
        if name not in flow.todo:
            return ops
        out = step(ops, flow)
        if out is not ops:
            flow = Flow(out)
        else:
            flow.todo.discard(name)
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
        for step, name in ((drop_jumps_to_next, "next"), (merge, "exits"), (thread_jumps, "thread"),
                           (drop_jumps_to_next, "next"), (invert_over_goto, "invert"),
                           (unreachable, "unreachable"), (drop_unused_marks, "marks")):
            ops = run(step, name, ops)
        if len(ops) == before:
            break
        ops = straighten(ops)
    return relax(ops)
