"""The order the clean-ups on allocated code run in (the passes live in
``pybpf.dsl.peephole`` and ``pybpf.dsl.jumps``; the ones on virtual code, run by
the builder, in ``rewrite``, ``cse`` and ``ranges``).
"""

from __future__ import annotations

from pybpf.asm import (
    Alu,
    Arith,
    CallLocal,
    Endian,
    Exit,
    Goto,
    GotoLong,
    Jump,
    LoadFunc,
    MayGoto,
    Reg,
    StoreImm,
)
from pybpf.dsl.ir import Mark, Op, is_imm
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
from pybpf.dsl.peephole import _HALVES, _MERGEABLE, redundant_mask, straight_line


def optimize(ops: list, new_label) -> list:
    """Peepholes on allocated code, to a fixed point, then far-jump relaxation.

    The straight-line ones (masks, merges) run before the control-flow ones and
    again only when those removed something (a dropped jump can make two ops
    neighbours). A pass runs only when ``_todo``, one scan of the op list as it
    is now, finds the shape it rewrites: most find nothing in most rounds (the
    last round of every program finds nothing at all), and a scan costs about
    half of what the straight-line passes do. A pass that returns its input
    leaves ``todo`` as it was, less itself; one that changes the list has it scanned again.
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

    ops = run(straight_line, "straight", ops)
    for _ in range(4):
        before = len(ops)
        for step, name in ((drop_jumps_to_next, "next"), (merge, "exits"), (thread_jumps, "thread"),
                           (drop_jumps_to_next, "next"), (invert_over_goto, "invert"),
                           (drop_unreachable, "unreachable"), (drop_unused_marks, "marks")):
            ops = run(step, name, ops)
        if len(ops) == before:
            break
        ops = run(straight_line, "straight", ops)
    return relax(ops)


# the ops with a label operand: jumps (whose target is a successor), local calls
# and the address of a local function (a bpf_loop callback)
_NAMES_LABEL = frozenset((Jump, Goto, GotoLong, MayGoto, CallLocal, LoadFunc))
_AND, _XOR, _R10 = Arith.AND, Arith.XOR, Reg.R10  # an enum member from its class costs a lookup


def _todo(ops: list) -> set[str]:
    """The passes that may change ``ops``, by the shapes they rewrite, in one scan.

    A pass left out would return ``ops`` unchanged; the tests are exact or err
    toward running the pass. ``unreachable`` is left out when every op after a
    goto or exit is a label some earlier jump names (reached by induction in op
    order); ``straight`` when no neighbours merge, no mask meets a byte swap and
    no mask clears only bits that are already zero.
    Written for speed (most ops are loads, stores and moves that need one test).
    """
    todo: set[str] = set()
    jumped: set = set()  # the labels jumps so far name
    named: set = set()  # the labels any op names (jumps, local calls)
    labels: list = []  # labels that go when nobody names them
    exits: set = set()  # K of each ``r0 = K; exit`` so far
    masked: set = set()  # registers masked since the last label, jump, exit or call
    after_end = False  # the previous op was a goto or exit
    run_of_labels: list = []  # the labels since the last instruction
    last = None  # the last instruction
    prev = None  # the previous op (instruction or label)
    for i, op in enumerate(ops):
        if type(op) is Mark:
            name = op.name
            if last is not None and last.cls is Goto and last.fields["target"] == name:
                todo.add("next")
            if after_end and name not in jumped:
                todo.add("unreachable")
            if not op.function:
                labels.append(name)
            run_of_labels.append(name)
            after_end = False
            if masked:
                masked.clear()
            prev = op
            continue
        if after_end:
            todo.add("unreachable")
        cls = op.cls
        if cls is Alu:
            f = op.fields
            aop, src = f["op"], f["src"]
            if aop is _AND:
                if is_imm(src):
                    masked.add(f["dst"])
                    if redundant_mask(ops, i):
                        todo.add("straight")  # a mask of bits already zero
            elif aop is _XOR:
                if src == -1 and f["width"] == 32 and is_imm(src):
                    todo.add("straight")  # maybe the complemented checksum fold
            elif (aop in _MERGEABLE and last is not None and prev is last and prev.cls is Alu
                  and prev.fields["op"] in _MERGEABLE and prev.fields["dst"] == f["dst"]
                  and prev.fields["width"] == f["width"] and is_imm(src)
                  and is_imm(prev.fields["src"])):
                todo.add("straight")
            after_end = False
        elif cls in _NAMES_LABEL:
            f = op.fields
            target = f["target"]
            named.add(target)
            if cls is not CallLocal and cls is not LoadFunc:
                jumped.add(target)
                masked.clear()
            if cls is Goto and run_of_labels and any(n != target for n in run_of_labels):
                todo.add("thread")
            elif (cls is Jump and f["op"] in _INVERSE and i + 2 < len(ops)
                  and type(ops[i + 1]) is Op and ops[i + 1].cls is Goto
                  and type(ops[i + 2]) is Mark and ops[i + 2].name == target):
                todo.add("invert")
            after_end = cls is Goto or cls is GotoLong
        elif cls is Endian:
            if op.fields["dst"] in masked:
                todo.add("straight")
            after_end = False
        elif cls is StoreImm:
            if last is not None and prev is last and prev.cls is StoreImm:
                f, g = op.fields, prev.fields
                if (f["dst"] == _R10 and g["dst"] == _R10 and f["size"] is g["size"]
                        and f["size"] in _HALVES):
                    todo.add("straight")
            after_end = False
        elif cls is Exit:
            if i and _is_return_const(ops, i - 1):
                k = ops[i - 1].fields["src"]
                if k in exits:
                    todo.add("exits")
                exits.add(k)
            masked.clear()
            after_end = True
        else:
            after_end = False
        if op.clobbers:
            masked.clear()
        if run_of_labels:
            run_of_labels = []
        prev = last = op
    if any(name not in named for name in labels):
        todo.add("marks")
    return todo
