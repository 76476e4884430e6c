"""The order the clean-ups on allocated code run in (the passes live in
``pybpf.dsl.peephole`` and ``pybpf.dsl.jumps``; the ones on virtual code, run by
the builder, in ``rewrite``, ``cse`` and ``ranges``).
"""

from __future__ import annotations

from pybpf.asm import CallLocal, Exit, Goto, GotoLong, Jump, LoadFunc, MayGoto
from pybpf.dsl.ir import Mark, Op
from pybpf.dsl.jumps import (
    _INVERSE,
    _is_return_const,
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
    rewrite. A control-flow pass runs only when ``_todo``, one scan of the op
    list as it is now, finds the shape it rewrites: most find nothing in most
    rounds (the last round of every program finds nothing at all). A pass that
    returns its input leaves ``todo`` as it was, less itself; one that changes
    the list has it scanned again.
    """
    def merge(ops: list) -> list:
        return merge_exits(ops, new_label)

    todo = _todo(ops)

    def run(step, name: str, ops: list) -> list:
        nonlocal todo
        if name not in todo:
            return ops
        out = step(ops)
        if out is not ops:
            todo = _todo(out)
        else:
            todo.discard(name)
        return out

    def straighten(ops: list) -> list:
        nonlocal todo
        if not straight_line_work(ops):
            return ops
        out = straight_line(ops)
        if out is not ops:
            todo = _todo(out)
        return out

    ops = straighten(ops)
    for _ in range(4):
        before = len(ops)
        for step, name in ((drop_jumps_to_next, "next"), (merge, "exits"), (thread_jumps, "thread"),
                           (drop_jumps_to_next, "next"), (invert_over_goto, "invert"),
                           (drop_unreachable, "unreachable"), (drop_unused_marks, "marks")):
            ops = run(step, name, ops)
        if len(ops) == before:
            break
        ops = straighten(ops)
    return relax(ops)


# the ops with a label operand: jumps (whose target is a successor), local calls
# and the address of a local function (a bpf_loop callback); and exits
_TODO_CLASSES = frozenset((Jump, Goto, GotoLong, MayGoto, CallLocal, LoadFunc, Exit))


def _todo(ops: list) -> set[str]:
    """The control-flow passes that may change ``ops``, by the shapes they rewrite, in one scan.

    A pass left out would return ``ops`` unchanged; the tests are exact or err
    toward running the pass. ``unreachable`` is left out when every op after a
    goto or exit is a label some earlier jump names (reached by induction in op
    order). Written for speed: ops other than labels, jumps and exits (most of
    them) cost two tests; the shapes around a jump are read from its neighbours.
    """
    todo: set[str] = set()
    jumped: set = set()  # the labels jumps so far name
    called: set = set()  # the labels local calls name
    marks: list = []
    exits: set = set()  # K of each ``r0 = K; exit`` so far
    n = len(ops)
    for i, op in enumerate(ops):
        if type(op) is Mark:
            marks.append(op)
            continue
        cls = op.cls
        if cls not in _TODO_CLASSES:
            continue
        if cls is Exit:
            if i and _is_return_const(ops, i - 1):
                k = ops[i - 1].fields["src"]
                if k in exits:
                    todo.add("exits")
                exits.add(k)
        else:
            f = op.fields
            target = f["target"]
            if cls is CallLocal or cls is LoadFunc:
                called.add(target)
                continue
            jumped.add(target)
            if cls is Jump:
                if (f["op"] in _INVERSE and i + 2 < n and type(ops[i + 1]) is Op
                        and ops[i + 1].cls is Goto and type(ops[i + 2]) is Mark
                        and ops[i + 2].name == target):
                    todo.add("invert")
                continue
            if cls is MayGoto:
                continue
            if cls is Goto:
                j = i - 1
                while j >= 0 and type(ops[j]) is Mark:  # labels of this goto: jumps to them thread
                    if ops[j].name != target:
                        todo.add("thread")
                    j -= 1
                j = i + 1
                while j < n and type(ops[j]) is Mark:  # labels after it: is one the target?
                    if ops[j].name == target:
                        todo.add("next")
                    j += 1
        if i + 1 < n:  # after a goto or exit: the next op must be a label a jump so far names
            nxt = ops[i + 1]
            if type(nxt) is not Mark or nxt.name not in jumped:
                todo.add("unreachable")
    if any(m.name not in jumped and m.name not in called for m in marks if not m.function):
        todo.add("marks")
    return todo
