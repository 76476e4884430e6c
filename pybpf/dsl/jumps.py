"""Control-flow peepholes on allocated code: jumps to the next instruction go;
``r0 = K; exit`` repeated is kept once and reached by jumps (a conditional jump
over a return becomes the inverted jump to the shared one); jumps to jumps are
threaded; unreachable ops and unused labels go; jumps beyond the s16 range are
relaxed through ``gotol``.
"""

from __future__ import annotations

from pybpf.asm import (
    Alu,
    Arith,
    Exit,
    Goto,
    GotoLong,
    Jump,
    JumpOp,
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


def drop_jumps_to_next(ops: list) -> list:
    """Remove ``goto L`` when L is the next label(s) (left by if/else joins)."""
    n, drop = len(ops), set()
    for i, op in enumerate(ops):
        if type(op) is Op and op.cls is Goto:
            j, target = i + 1, op.fields["target"]
            while j < n and type(ops[j]) is Mark:
                if ops[j].name == target:
                    drop.add(i)
                    break
                j += 1
    if not drop:
        return ops
    return [op for i, op in enumerate(ops) if i not in drop]


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


def merge_exits(ops: list, new_label) -> list:
    """Keep one ``r0 = K; exit`` per K; the others jump to it (or their jumps do)."""
    groups: dict[int, list] = {}
    for j, op in enumerate(ops):
        if type(op) is Op and op.cls is Exit and j and _is_return_const(ops, j - 1):
            groups.setdefault(ops[j - 1].fields["src"], []).append(j - 1)
    rename: dict[str, str] = {}
    drop: set[int] = set()
    put: dict[int, object] = {}
    insert: dict[int, Mark] = {}
    for k, idxs in groups.items():
        if len(idxs) < 2:
            continue
        info = []
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
    out = []
    for i, op in enumerate(ops):
        if i in insert:
            out.append(insert[i])
        if i in put:
            out.append(put[i])
        elif i not in drop:
            out.append(op)
    return _retarget(out, rename)


def _retarget(ops: list, rename: dict) -> list:
    """Jumps to renamed labels go to the new names; a new list when one changed."""
    changed = False
    for op in ops if rename else ():
        if type(op) is Op and op.cls in JUMPS:
            t = op.fields["target"]
            while t in rename:
                t = rename[t]
            if t != op.fields["target"]:
                op.fields["target"] = t
                changed = True
    return list(ops) if changed else ops


def thread_jumps(ops: list) -> list:
    """A jump to a label followed by ``goto L2`` goes to L2 directly."""
    first_after: dict[str, object] = {}
    for i, op in enumerate(ops):
        if type(op) is Mark:
            j = i + 1
            while j < len(ops) and type(ops[j]) is Mark:
                j += 1
            first_after[op.name] = ops[j] if j < len(ops) else None
    rename = {}
    for name, op in first_after.items():
        if isinstance(op, Op) and op.cls is Goto and op.fields["target"] != name:
            rename[name] = op.fields["target"]
    for name in list(rename):  # break cycles (goto loops)
        seen, t = {name}, rename[name]
        while t in rename:
            if t in seen:
                del rename[name]
                break
            seen.add(t)
            t = rename[t]
    return _retarget(ops, rename)


def drop_unused_marks(ops: list) -> list:
    """Labels no jump names (joins of if/else) are dropped, so listings stay short."""
    used = {op.fields["target"] for op in ops  # jumps, and calls of local functions
            if type(op) is Op and "target" in op.fields}
    keep = [op for op in ops if type(op) is not Mark or op.name in used or op.function]
    return ops if len(keep) == len(ops) else keep


def drop_unreachable(ops: list, cfg: Cfg | None = None) -> list:
    """Ops no path reaches (left behind when jumps were retargeted) go.

    Returns ``ops`` itself when every op is reachable.
    """
    succ = (Cfg(ops) if cfg is None else cfg).succ
    seen = [False] * len(ops)
    stack = [0] if ops else []
    while stack:
        i = stack.pop()
        if not seen[i]:
            seen[i] = True
            stack.extend(succ[i])
    if all(seen):
        return ops
    return [op for op, keep in zip(ops, seen, strict=True) if keep]


def invert_over_goto(ops: list) -> list:
    """``if c goto L1; goto L2; L1:`` becomes ``if !c goto L2; L1:``."""
    out: list = []
    i = 0
    while i < len(ops):
        op = ops[i]
        if (type(op) is Op and op.cls is Jump and op.fields["op"] in _INVERSE
                and i + 2 < len(ops) and isinstance(ops[i + 1], Op) and ops[i + 1].cls is Goto
                and isinstance(ops[i + 2], Mark) and ops[i + 2].name == op.fields["target"]):
            f = dict(op.fields)
            f["op"], f["target"] = _INVERSE[f["op"]], ops[i + 1].fields["target"]
            out.append(Op(Jump, f, op.source))
            i += 2
            continue
        out.append(op)
        i += 1
    return out if len(out) != len(ops) else ops
