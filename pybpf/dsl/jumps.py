"""Control-flow peepholes on allocated code: jumps to the next instruction go;
``r0 = K; exit`` repeated is kept once and reached by jumps (a conditional jump
over a return becomes the inverted jump to the shared one); jumps to jumps are
threaded; unreachable ops and unused labels go; jumps beyond the s16 range are
relaxed through ``gotol``. The passes find their shapes through an ``OpIndex``
(where each kind of op is) rather than by walking every op.
"""

from __future__ import annotations

from collections import defaultdict

from pybpf.asm import (
    Alu,
    Arith,
    CallLocal,
    Exit,
    Goto,
    GotoLong,
    Jump,
    JumpOp,
    LoadFunc,
    MayGoto,
    Reg,
)
from pybpf.dsl.cfg import Cfg
from pybpf.dsl.ir import Mark, Op

_INVERSE = {JumpOp.JEQ: JumpOp.JNE, JumpOp.JNE: JumpOp.JEQ, JumpOp.JGT: JumpOp.JLE,
            JumpOp.JLE: JumpOp.JGT, JumpOp.JGE: JumpOp.JLT, JumpOp.JLT: JumpOp.JGE,
            JumpOp.JSGT: JumpOp.JSLE, JumpOp.JSLE: JumpOp.JSGT, JumpOp.JSGE: JumpOp.JSLT,
            JumpOp.JSLT: JumpOp.JSGE}
_S16 = (-(1 << 15), (1 << 15) - 1)


JUMPS = (Jump, Goto, GotoLong, MayGoto)


class OpIndex:
    """Where each kind of op is in one op list: the positions of the ops of each
    instruction class (labels under ``Mark``), in op order, from one scan.

    The peepholes look only at the kinds of op their shapes start with, not at
    every op: one that finds nothing to do costs a few lookups (most shapes
    start at a goto, the rarest jump), and one that does builds its result from
    slices of the list.
    """

    __slots__ = ("_at",)

    def __init__(self, ops: list):
        at = self._at = defaultdict(list)
        for i, op in enumerate(ops):
            at[Mark if type(op) is Mark else op.cls].append(i)

    def of(self, *classes: type) -> list[int]:
        """The positions of the ops of ``classes``: each class's in op order, in turn
        (for one class, the index's own list: to read, not to change)."""
        at = self._at
        if len(classes) == 1:
            return at.get(classes[0], [])
        return [i for cls in classes if cls in at for i in at[cls]]


def _next_label_is(ops: list, i: int, name: str) -> bool:
    """One of the labels right after ``ops[i]`` is ``name``."""
    for j in range(i + 1, len(ops)):
        op = ops[j]
        if type(op) is not Mark:
            return False
        if op.name == name:
            return True
    return False


def _rebuild(ops: list, edits: dict) -> list:
    """A new list: ``ops`` with the op at each position in ``edits`` replaced by
    the ops it maps to (none: dropped), copied in slices between them."""
    out: list = []
    start = 0
    for i in sorted(edits):
        out += ops[start:i]
        out += edits[i]
        start = i + 1
    out += ops[start:]
    return out


def drop_jumps_to_next(ops: list, index: OpIndex) -> list:
    """Remove ``goto L`` when L is the next label(s) (left by if/else joins)."""
    drop = [i for i in index.of(Goto) if _next_label_is(ops, i, ops[i].fields["target"])]
    return _rebuild(ops, dict.fromkeys(drop, ())) if drop else ops


def relax(ops: list) -> list:
    """Rewrite jumps whose target is beyond the s16 offset range through ``gotol``.

    ``goto L`` becomes ``gotol L``; ``if c goto L`` becomes ``if !c goto +1;
    gotol L`` (JSET, which has no inverse, jumps over a ``goto`` to the ``gotol``).
    Nothing is far in a program shorter than the range: no op takes more than
    two slots, so ops up to half the range need no look at the offsets.
    """
    if 2 * len(ops) <= _S16[1] + 1:
        return ops
    counter = 0
    while True:
        slots, labels, pos = [], {}, 0
        for op in ops:
            slots.append(pos)
            if isinstance(op, Mark):
                labels[op.name] = pos
            else:
                pos += op.cls.slots
        far = None
        for i, op in enumerate(ops):
            if isinstance(op, Op) and op.cls in (Jump, Goto):
                rel = labels[op.fields["target"]] - (slots[i] + 1)
                if not _S16[0] <= rel <= _S16[1]:
                    far = i
                    break
        if far is None:
            return ops
        op = ops[far]
        target, src = op.fields["target"], op.source
        if op.cls is Goto:
            ops[far] = Op(GotoLong, {"target": target}, src)
            continue
        counter += 1
        skip, long = f"{target}.relax{counter}", f"{target}.far{counter}"
        f = dict(op.fields)
        if f["op"] is JumpOp.JSET:
            f["target"] = long
            ops[far:far + 1] = [Op(Jump, f, src), Op(Goto, {"target": skip}, src),
                                Mark(long, src), Op(GotoLong, {"target": target}, src),
                                Mark(skip, src)]
        else:
            f["op"], f["target"] = _INVERSE[f["op"]], skip
            ops[far:far + 1] = [Op(Jump, f, src), Op(GotoLong, {"target": target}, src),
                                Mark(skip, src)]


def _is_return_const(ops: list, i: int) -> bool:
    op = ops[i]
    if not (isinstance(op, Op) and op.cls is Alu and i + 1 < len(ops)):
        return False
    nxt = ops[i + 1]
    f = op.fields
    return (isinstance(nxt, Op) and nxt.cls is Exit and f["op"] is Arith.MOV and f["width"] == 64
            and f["dst"] == Reg.R0 and isinstance(f["src"], int) and not isinstance(f["src"], Reg))


def merge_exits(ops: list, index: OpIndex, new_label) -> list:
    """Keep one ``r0 = K; exit`` per K; the others jump to it (or their jumps do)."""
    groups: dict[int, list] = {}
    for j in index.of(Exit):
        if j and _is_return_const(ops, j - 1):
            groups.setdefault(ops[j - 1].fields["src"], []).append(j - 1)
    rename: dict[str, str] = {}
    drop: set[int] = set()
    put: dict[int, object] = {}
    insert: dict[int, Mark] = {}
    blocks: dict[int, list] = {}
    for k, idxs in groups.items():
        if len(idxs) < 2:
            continue
        info = blocks[k] = []
        for i in idxs:
            j, labels = i - 1, []
            while j >= 0 and isinstance(ops[j], Mark):
                labels.append(ops[j].name)
                j -= 1
            prev = ops[j] if j >= 0 else None
            fall = prev is None or prev.cls not in (Exit, Goto, GotoLong)
            after, m = set(), i + 2
            while m < len(ops) and isinstance(ops[m], Mark):
                after.add(ops[m].name)
                m += 1
            inv = (fall and not labels and prev is not None and prev.cls is Jump
                   and prev.fields["op"] in _INVERSE and prev.fields["target"] in after)
            info.append((i, labels, fall, inv, j))
    # An inverted jump falls through where its block's exit was: a block after that
    # exit, reached only by jumps before, is reached by falling through now.
    inverted = {x[0] + 1 for info in blocks.values() for x in info if x[3]}
    for k, info in blocks.items():
        if inverted:
            info = [(i, labels, fall or j in inverted, inv, j) for i, labels, fall, inv, j in info]
        plain = [x for x in info if x[2] and not x[3]]
        canon = plain[-1] if plain else info[-1]
        if canon[1]:
            target = canon[1][0]
        else:
            target = new_label(f"ret{k}_")
            insert[canon[0]] = Mark(target, ops[canon[0]].source)
        for i, labels, fall, inv, j in info:
            if i == canon[0]:
                continue
            if inv:
                f = dict(ops[j].fields)
                f["op"], f["target"] = _INVERSE[f["op"]], target
                put[j] = Op(Jump, f, ops[j].source)
                drop.update((i, i + 1))
            elif fall:
                put[i] = Op(Goto, {"target": target}, ops[i].source)
                drop.add(i + 1)
            else:  # reached only by jumps: they go to the shared block instead
                for name in labels:
                    rename[name] = target
                drop.update(range(j + 1, i + 2))
    if not (drop or put):
        return ops
    edits: dict[int, tuple] = dict.fromkeys(drop, ())
    for i, op in put.items():
        edits[i] = (op,)
    for i, mark in insert.items():
        edits[i] = (mark, *edits.get(i, (ops[i],)))
    if rename:
        _retarget([*(ops[i] for i in index.of(*JUMPS) if i not in edits), *put.values()], rename)
    return _rebuild(ops, edits)


def _retarget(jumps: list, rename: dict) -> None:
    """Jumps to renamed labels go to the new names (in place)."""
    for op in jumps:
        t = op.fields["target"]
        while t in rename:
            t = rename[t]
        op.fields["target"] = t


def thread_jumps(ops: list, index: OpIndex) -> list:
    """A jump to a label followed by ``goto L2`` goes to L2 directly (in place:
    the list stays, and so does its index)."""
    rename = {}
    for g in index.of(Goto):
        op = ops[g]
        start = g
        while start and type(ops[start - 1]) is Mark:
            start -= 1
        for m in range(start, g):  # the labels of this goto, in op order
            name = ops[m].name
            if name != op.fields["target"]:
                rename[name] = op.fields["target"]
    for name in list(rename):  # break cycles (goto loops)
        seen, t = {name}, rename[name]
        while t in rename:
            if t in seen:
                del rename[name]
                break
            seen.add(t)
            t = rename[t]
    if rename:
        _retarget([ops[i] for i in index.of(*JUMPS)], rename)
    return ops


def drop_unused_marks(ops: list, index: OpIndex) -> list:
    """Labels no jump names (joins of if/else) are dropped, so listings stay short."""
    used = {ops[i].fields["target"] for i in index.of(*JUMPS, CallLocal, LoadFunc)}
    drop = [i for i in index.of(Mark) if ops[i].name not in used and not ops[i].function]
    return _rebuild(ops, dict.fromkeys(drop, ())) if drop else ops


def drop_unreachable(ops: list, cfg: Cfg | None = None) -> list:
    """Ops no path reaches (left behind when jumps were retargeted) go.

    Returns ``ops`` itself when every op is reachable. The search runs over the
    basic blocks (every op of a block is reached when its first is), which the
    analyses after it on the same ``cfg`` read too.
    """
    cfg = Cfg(ops) if cfg is None else cfg
    bsucc = cfg.bsucc
    seen = [False] * len(bsucc)
    stack = [0] if bsucc else []
    while stack:
        k = stack.pop()
        if not seen[k]:
            seen[k] = True
            stack.extend(bsucc[k])
    if all(seen):
        return ops
    return [op for (first, last), keep in zip(cfg.spans, seen, strict=True) if keep
            for op in ops[first:last + 1]]


def may_be_unreachable(ops: list, index: OpIndex) -> bool:
    """Whether some op may be unreachable: not when every op after a goto or exit is
    a label some earlier jump names (each op is then reached, by induction in op order)."""
    n = len(ops)
    after: dict[str, int] = {}  # the labels right after a goto or exit: where that is
    for i in index.of(Goto, GotoLong, Exit):
        if i + 1 < n:
            nxt = ops[i + 1]
            if type(nxt) is not Mark:
                return True
            after.setdefault(nxt.name, i)
    for i in index.of(*JUMPS):  # a jump at or before that point reaches it
        target = ops[i].fields["target"]
        if target in after and i <= after[target]:
            del after[target]
    return bool(after)


def invert_over_goto(ops: list, index: OpIndex) -> list:
    """``if c goto L1; goto L2; L1:`` becomes ``if !c goto L2; L1:``."""
    edits: dict[int, tuple] = {}
    n = len(ops)
    for g in index.of(Goto):  # the goto of the shape
        i = g - 1
        op = ops[i] if i >= 0 else None
        if (type(op) is Op and op.cls is Jump and op.fields["op"] in _INVERSE and g + 1 < n
                and type(ops[g + 1]) is Mark and ops[g + 1].name == op.fields["target"]):
            f = dict(op.fields)
            f["op"], f["target"] = _INVERSE[f["op"]], ops[g].fields["target"]
            edits[i] = (Op(Jump, f, op.source),)
            edits[g] = ()
    return _rebuild(ops, edits) if edits else ops
