"""Clean-ups on a function's ops: dead code before allocation, peepholes after it.

- ``remove_dead``: side-effect-free ops whose results nobody reads go.
- ``optimize`` (on allocated code): jumps to the next instruction go; ``r0 = K;
  exit`` repeated is kept once and reached by jumps (a conditional jump over a
  return becomes the inverted jump to the shared one); jumps to jumps are
  threaded; ``rX += a; rX += b`` becomes one op; jumps beyond the s16 range
  are relaxed through ``gotol``.
"""

from __future__ import annotations

import heapq

from pybpf.asm import (
    Alu,
    Arith,
    Atomic,
    Call,
    CallKfunc,
    CallLocal,
    CallX,
    Endian,
    Exit,
    Goto,
    GotoLong,
    Jump,
    JumpOp,
    Load,
    LoadImm64,
    LoadSX,
    MayGoto,
    Neg,
    Reg,
    Size,
    Store,
    StoreImm,
    StoreRelease,
)
from pybpf.dsl.ir import Mark, Op, VReg
from pybpf.dsl.regalloc import Liveness, blocks, successors

_INVERSE = {JumpOp.JEQ: JumpOp.JNE, JumpOp.JNE: JumpOp.JEQ, JumpOp.JGT: JumpOp.JLE,
            JumpOp.JLE: JumpOp.JGT, JumpOp.JGE: JumpOp.JLT, JumpOp.JLT: JumpOp.JGE,
            JumpOp.JSGT: JumpOp.JSLE, JumpOp.JSLE: JumpOp.JSGT, JumpOp.JSGE: JumpOp.JSLT,
            JumpOp.JSLT: JumpOp.JSGE}
_S16 = (-(1 << 15), (1 << 15) - 1)




def optimize(ops: list, new_label) -> list:
    """Peepholes on allocated code, to a fixed point, then far-jump relaxation.

    The straight-line ones (masks, merges) run before the control-flow ones and
    again only when those removed something (a dropped jump can make two ops
    neighbours).
    """
    ops = _straight_line(ops)
    for _ in range(4):
        before = len(ops)
        ops = _drop_jumps_to_next(ops)
        ops = _merge_exits(ops, new_label)
        ops = _thread_jumps(ops)
        ops = _drop_jumps_to_next(ops)
        ops = _invert_over_goto(ops)
        ops = _drop_unreachable(ops)
        ops = _drop_unused_marks(ops)
        if len(ops) == before:
            break
        ops = _straight_line(ops)
    return _relax(ops)


def _straight_line(ops: list) -> list:
    ops = _merge_alu(ops)
    ops = _fold_masks(ops)
    ops = _drop_undemanded_masks(ops)
    return _merge_store_imm(ops)


def remove_dead(ops: list, pure: tuple) -> tuple[list, Liveness]:
    """Drop side-effect-free ops whose results nobody reads (loads of unused fields ...).

    One strong-liveness analysis finds them all at once, including chains
    (a value only read by another dead op) and counters that only feed
    themselves around a loop or through an unrolled chain. A conditional jump
    left with nothing to jump over (``if f != 0 goto L; L:`` once the flag it
    set is gone) goes too, and what only it read follows. Returns the ops
    left and their liveness (a dead op only passed its live set through).
    """
    while True:
        live = Liveness(ops, pure=pure)
        if any(live.dead):
            ops = [op for op, d in zip(ops, live.dead, strict=True) if not d]
            live = live.without_dead()
        empty = _empty_jumps(ops)
        if not empty:
            return ops, live
        ops = [op for i, op in enumerate(ops) if i not in empty]


def _empty_jumps(ops: list) -> set[int]:
    """Conditional jumps whose target is the next instruction (only labels between)."""
    found = set()
    for i, op in enumerate(ops):
        if type(op) is Op and op.cls is Jump:
            target, j = op.fields["target"], i + 1
            while j < len(ops) and type(ops[j]) is Mark:
                if ops[j].name == target:
                    found.add(i)
                    break
                j += 1
    return found


def set_membership(ops: list, new_vreg, new_label) -> list:
    """Three or more ``x == K`` tests of one value against small constants, joined by
    ``|``, become one bit test (clang's shape): ``if x > 63 goto out; t = MASK;
    t >>= x; t &= 1; if t == 0 goto out``.

    Each ``if x == K goto L`` edge hands the verifier a state where x is exactly K,
    so L is walked once per constant; one bit test reaches it once.
    Form A: ``if x == K1 goto L; ...; if x != Kn goto M; L:``;
    form B: ``if x == K1 goto L; ...; if x == Kn goto L`` (falls through when not).
    """
    out: list = []
    i, n = 0, len(ops)
    while i < n:
        op = ops[i]
        if not _member_test(op, JumpOp.JEQ):
            out.append(op)
            i += 1
            continue
        x, w, target = op.fields["dst"], op.fields["width"], op.fields["target"]
        ks, j = [], i
        while (j < n and _member_test(ops[j], JumpOp.JEQ) and ops[j].fields["dst"] is x
               and ops[j].fields["width"] == w and ops[j].fields["target"] == target):
            ks.append(ops[j].fields["src"])
            j += 1
        form_a = (j + 1 < n and _member_test(ops[j], JumpOp.JNE) and ops[j].fields["dst"] is x
                  and ops[j].fields["width"] == w and type(ops[j + 1]) is Mark
                  and ops[j + 1].name == target)
        if form_a:
            ks.append(ops[j].fields["src"])
        if len(ks) < 3:
            out.append(op)
            i += 1
            continue
        src = op.source
        mask = sum(1 << k for k in set(ks))
        t = new_vreg("in_set")
        if form_a:
            miss, after = ops[j].fields["target"], None
        else:
            miss = after = new_label("notin")
        test = [Op(Jump, {"op": JumpOp.JGT, "dst": x, "src": 63, "target": miss, "width": w}, src)]
        if mask <= _S32_MAX:
            test.append(Op(Alu, {"op": Arith.MOV, "dst": t, "src": mask, "width": 64}, src))
        else:
            test.append(Op(LoadImm64, {"dst": t, "imm": mask}, src))
        test += [Op(Alu, {"op": Arith.RSH, "dst": t, "src": x, "width": 64}, src),
                 Op(Alu, {"op": Arith.AND, "dst": t, "src": 1, "width": 32}, src)]
        if form_a:
            test.append(Op(Jump, {"op": JumpOp.JEQ, "dst": t, "src": 0, "target": miss,
                                  "width": 32}, src))
            i = j + 1
        else:
            test += [Op(Jump, {"op": JumpOp.JNE, "dst": t, "src": 0, "target": target,
                               "width": 32}, src), Mark(after, src)]
            i = j
        out += test
    return out


_S32_MAX = (1 << 31) - 1


def _member_test(op, jop) -> bool:
    if not (type(op) is Op and op.cls is Jump and op.fields["op"] is jop):
        return False
    k = op.fields["src"]
    return type(op.fields["dst"]) is VReg and type(k) is int and 0 <= k <= 63


def share_zero_stores(ops: list, new_vreg) -> list:
    """Three or more ``*(uN *)(r10 + off) = 0`` in a row (no label, jump or call between)
    store one register set to zero instead, as clang does: the x86-64 JIT turns a
    store-immediate into ``mov [rbp-x], imm32`` (7-8 bytes) and a register store into 3-4.
    """
    out: list = []
    run: list[int] = []  # positions in ``out`` of the current run's stores

    def flush():
        if len(run) >= 3 and any(out[j].fields["size"] in _WIDE for j in run):
            z = new_vreg("zero")
            first = out[run[0]]
            for j in run:
                f = out[j].fields
                out[j] = Op(Store, {"dst": Reg.R10, "src": z, "off": f["off"], "size": f["size"]},
                            out[j].source)
            out.insert(run[0], Op(Alu, {"op": Arith.MOV, "dst": z, "src": 0, "width": 64},
                                  first.source))
        run.clear()

    for op in ops:
        if (type(op) is Op and op.cls is StoreImm and op.fields["imm"] == 0
                and op.fields["dst"] == Reg.R10):
            run.append(len(out))
        elif type(op) is Mark or op.cls in _JUMPS or op.cls is Exit or op.clobbers:
            flush()
        out.append(op)
    flush()
    return out


_WIDE = (Size.W, Size.DW)


def _drop_jumps_to_next(ops: list) -> list:
    """Remove ``goto L`` when L is the next label(s) (left by if/else joins)."""
    out = []
    for i, op in enumerate(ops):
        if isinstance(op, Op) and op.cls is Goto:
            j, target, skip = i + 1, op.fields["target"], False
            while j < len(ops) and isinstance(ops[j], Mark):
                if ops[j].name == target:
                    skip = True
                    break
                j += 1
            if skip:
                continue
        out.append(op)
    return out


def _relax(ops: list) -> list:
    """Rewrite jumps whose target is beyond the s16 offset range through ``gotol``.

    ``goto L`` becomes ``gotol L``; ``if c goto L`` becomes ``if !c goto +1;
    gotol L`` (JSET, which has no inverse, jumps over a ``goto`` to the ``gotol``).
    """
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




_JUMPS = (Jump, Goto, GotoLong, MayGoto)


def _is_return_const(ops: list, i: int) -> bool:
    op = ops[i]
    if not (isinstance(op, Op) and op.cls is Alu and i + 1 < len(ops)):
        return False
    nxt = ops[i + 1]
    f = op.fields
    return (isinstance(nxt, Op) and nxt.cls is Exit and f["op"] is Arith.MOV and f["width"] == 64
            and f["dst"] == Reg.R0 and isinstance(f["src"], int) and not isinstance(f["src"], Reg))


def _merge_exits(ops: list, new_label) -> list:
    """Keep one ``r0 = K; exit`` per K; the others jump to it (or their jumps do)."""
    groups: dict[int, list] = {}
    for i in range(len(ops) - 1):
        if _is_return_const(ops, i):
            groups.setdefault(ops[i].fields["src"], []).append(i)
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
    if not rename:
        return ops
    for op in ops:
        if isinstance(op, Op) and op.cls in _JUMPS:
            t = op.fields["target"]
            while t in rename:
                t = rename[t]
            op.fields["target"] = t
    return ops


def _thread_jumps(ops: list) -> list:
    """A jump to a label followed by ``goto L2`` goes to L2 directly."""
    first_after: dict[str, object] = {}
    for i, op in enumerate(ops):
        if isinstance(op, Mark):
            j = i + 1
            while j < len(ops) and isinstance(ops[j], Mark):
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


_MERGEABLE = {Arith.ADD, Arith.SUB}


def _merge_alu(ops: list) -> list:
    """``rX += a; rX += b`` (or -=) with nothing between becomes ``rX += a + b``."""
    out: list = []
    for op in ops:
        prev = out[-1] if out else None
        if (isinstance(op, Op) and isinstance(prev, Op) and op.cls is Alu and prev.cls is Alu
                and op.fields["op"] in _MERGEABLE and prev.fields["op"] in _MERGEABLE
                and op.fields["dst"] == prev.fields["dst"] and op.fields["width"] == prev.fields["width"]
                and _imm(op.fields["src"]) and _imm(prev.fields["src"])):
            total = _signed(prev.fields) + _signed(op.fields)
            width = op.fields["width"]
            if width == 32:
                total = (total + (1 << 31)) % (1 << 32) - (1 << 31)
            if -(1 << 31) <= total < (1 << 31):
                out[-1] = Op(Alu, {"op": Arith.ADD, "dst": op.fields["dst"], "src": total,
                                   "width": width}, prev.source)
                if total == 0:
                    out.pop()
                continue
        out.append(op)
    return out


def _alu32(op, aop: Arith, dst=None) -> bool:
    return (type(op) is Op and op.cls is Alu and op.fields["op"] is aop
            and (dst is None or op.fields["dst"] == dst) and _imm(op.fields["src"]))


def _fold_masks(ops: list) -> list:
    """Masks that change nothing the next instruction keeps, on one register, in a row.

    - ``x &= M; x = be16 x`` (any 16-bit byte swap, which reads the low 16 bits
      only) drops the mask when M keeps those bits (clang folds it the same way);
    - ``x ^= -1; x &= M; x ^= -1; x &= M`` (32-bit) is ``x &= M``: the checksum
      fold of one RFC 1624 update complemented, then uncomplemented by the next.
    """
    out: list = []
    i, n = 0, len(ops)
    while i < n:
        op = ops[i]
        nxt = ops[i + 1] if i + 1 < n else None
        if (_alu32(op, Arith.AND) and type(nxt) is Op and nxt.cls is Endian
                and nxt.fields["dst"] == op.fields["dst"]
                and (op.fields["src"] & ((1 << nxt.fields["bits"]) - 1))
                == (1 << nxt.fields["bits"]) - 1):
            i += 1
            continue
        if (i + 3 < n and _alu32(op, Arith.XOR) and op.fields["src"] == -1
                and op.fields["width"] == 32 and _alu32(nxt, Arith.AND, op.fields["dst"])
                and nxt.fields["width"] == 32):
            r, m = op.fields["dst"], nxt.fields["src"]
            j = i + 2  # ops on other registers may sit between the two pairs
            while (j < n and type(ops[j]) is Op and ops[j].cls not in _JUMPS
                   and ops[j].cls is not Exit and not ops[j].clobbers
                   and r not in ops[j].uses and r not in ops[j].defs):
                j += 1
            if (j + 1 < n and _alu32(ops[j], Arith.XOR, r) and ops[j].fields["src"] == -1
                    and ops[j].fields["width"] == 32 and _alu32(ops[j + 1], Arith.AND, r)
                    and ops[j + 1].fields["src"] == m and ops[j + 1].fields["width"] == 32):
                out.append(nxt)  # ~(~x & m) & m == x & m
                out.extend(ops[i + 2:j])
                i = j + 2
                continue
        out.append(op)
        i += 1
    return out


def _drop_undemanded_masks(ops: list) -> list:
    """``x &= M`` goes when only bits M keeps are read before a byte swap consumes x.

    Walking back from ``x = be16 x`` (which reads the low 16 bits) over in-place
    ``+ - * ^ |`` on x (low result bits depend only on low operand bits) and ops
    that leave x alone: a mask keeping those low bits changes nothing that is
    read. clang folds ``(s & 0xffff) + (s >> 16)`` before ``~`` and ``be16`` so.
    """
    drop = set()
    for i, op in enumerate(ops):
        if not (type(op) is Op and op.cls is Endian and op.fields["bits"] < 64):
            continue
        r, low = op.fields["dst"], (1 << op.fields["bits"]) - 1
        j = i - 1
        while j >= 0:
            o = ops[j]
            if type(o) is not Op or o.cls in _JUMPS or o.cls is Exit or o.clobbers:
                break
            if r not in o.uses and r not in o.defs:
                j -= 1
                continue
            if not (o.cls is Alu and o.fields["dst"] == r and o.fields["op"] in _LOW_BITS
                    and o.fields["src"] != r):
                break
            if o.fields["op"] is Arith.AND:
                if _imm(o.fields["src"]) and o.fields["src"] & low == low:
                    drop.add(j)
                break
            j -= 1
    if not drop:
        return ops
    return [op for i, op in enumerate(ops) if i not in drop]


_LOW_BITS = (Arith.ADD, Arith.SUB, Arith.MUL, Arith.XOR, Arith.OR, Arith.AND)


def _merge_store_imm(ops: list) -> list:
    """Two stack store-immediates of the same size side by side become one twice as wide
    (``*(u8 *)(r10 - 2) = 6; *(u8 *)(r10 - 1) = 0`` is ``*(u16 *)(r10 - 2) = 6``), up to
    32 bits and aligned, as the verifier wants stack accesses."""
    out: list = []
    for op in ops:
        prev = out[-1] if out else None
        if (type(op) is Op and op.cls is StoreImm and type(prev) is Op and prev.cls is StoreImm
                and op.fields["dst"] == Reg.R10 and prev.fields["dst"] == Reg.R10
                and op.fields["size"] is prev.fields["size"]
                and op.fields["size"] in _HALVES):
            size = op.fields["size"]
            width = size.bytes
            lo, hi = sorted((prev.fields, op.fields), key=lambda f: f["off"])
            if hi["off"] == lo["off"] + width and lo["off"] % (2 * width) == 0:
                bits = 8 * width
                value = (lo["imm"] & ((1 << bits) - 1)) | ((hi["imm"] & ((1 << bits) - 1)) << bits)
                if value >= 1 << 31:
                    value -= 1 << 32
                out[-1] = Op(StoreImm, {"dst": Reg.R10, "imm": value, "off": lo["off"],
                                        "size": _HALVES[size]}, prev.source)
                continue
        out.append(op)
    return out


_HALVES = {Size.B: Size.H, Size.H: Size.W}


def _imm(src) -> bool:
    return isinstance(src, int) and not isinstance(src, (Reg, VReg))


def _signed(fields: dict) -> int:
    return fields["src"] if fields["op"] is Arith.ADD else -fields["src"]


def _drop_unused_marks(ops: list) -> list:
    """Labels no jump names (joins of if/else) are dropped, so listings stay short."""
    used = {op.fields["target"] for op in ops if isinstance(op, Op) and op.cls in _JUMPS}
    used |= {op.fields["target"] for op in ops if isinstance(op, Op) and "target" in op.fields}
    return [op for op in ops if not isinstance(op, Mark) or op.name in used or op.function]


def _drop_unreachable(ops: list) -> list:
    """Ops no path reaches (left behind when jumps were retargeted) go."""
    succ = successors(ops)
    seen = [False] * len(ops)
    stack = [0] if ops else []
    while stack:
        i = stack.pop()
        if not seen[i]:
            seen[i] = True
            stack.extend(succ[i])
    return [op for op, keep in zip(ops, seen, strict=True) if keep]


def _invert_over_goto(ops: list) -> list:
    """``if c goto L1; goto L2; L1:`` becomes ``if !c goto L2; L1:``."""
    out: list = []
    i = 0
    while i < len(ops):
        op = ops[i]
        if (isinstance(op, Op) and op.cls is Jump and op.fields["op"] in _INVERSE
                and i + 2 < len(ops) and isinstance(ops[i + 1], Op) and ops[i + 1].cls is Goto
                and isinstance(ops[i + 2], Mark) and ops[i + 2].name == op.fields["target"]):
            f = dict(op.fields)
            f["op"], f["target"] = _INVERSE[f["op"]], ops[i + 1].fields["target"]
            out.append(Op(Jump, f, op.source))
            i += 2
            continue
        out.append(op)
        i += 1
    return out


def cse_loads(ops: list) -> list:
    """A load repeated with the same base, offset and size, and no store in between, goes.

    Forward "available loads" over the control-flow graph (intersection at
    joins); a repeated load's result register is replaced by the earlier one's.
    Only loads whose result is written once qualify, so the rename is safe.
    Stores through r10 forget only stack loads; any other store, atomic or
    call forgets every load (it may write any memory).
    """
    defs: dict = {}
    for op in ops:
        for d in op.defs:
            defs[d] = defs.get(d, 0) + 1
    keys = [_load_key(op, defs) or _alu_key(ops, i, defs) for i, op in enumerate(ops)]
    if not any(keys):
        return ops
    succ = successors(ops)
    spans, bsucc = blocks(ops, succ)
    back = any(j <= k for k, js in enumerate(bsucc) for j in js)
    # Facts indexed by the registers whose write ends them (those the key names and
    # the register holding the value). Without loops a fact only names values
    # defined before it, so a value written once is never rewritten under it: only
    # registers written more than once (variables, r0-r5) can end a fact.
    ends: dict = {}
    for op, key in zip(ops, keys, strict=True):
        if key is not None:
            for r in (*_key_regs(key), op.fields["dst"]):
                if back or not isinstance(r, VReg) or defs.get(r, 0) > 1:
                    ends.setdefault(r, set()).add(key)
    nb = len(spans)
    state_in: list = [None] * nb  # None: not reached yet (top); else (loads, alus)
    rename: dict = {}
    drop: set[int] = set()

    def walk(k: int, avail: tuple, record: bool) -> tuple:
        first, last = spans[k]
        for i in range(first, last + 1):
            op, key = ops[i], keys[i]
            if record and key is not None and i > 0:
                found = avail[key[0] == "alu"].get(key)
                if found is not None:
                    rename[op.fields["dst"]] = found
                    drop.add(i)
                    if key[0] == "alu":
                        drop.add(i - 1)  # the MOV that started the pair
                    key = None
            avail = _transfer(op, key, avail, ends)
        return avail

    if nb:
        state_in[0] = ({}, {})
    work, queued = [0] if nb else [], {0}
    while work:  # in op order: without back edges each block once, its state final
        k = heapq.heappop(work)
        queued.discard(k)
        avail = walk(k, state_in[k], not back)
        for j in bsucc[k]:
            old = state_in[j]
            if old is None:
                new = avail
            else:
                new = tuple({key: v for key, v in o.items() if a.get(key) is v}
                            for o, a in zip(old, avail, strict=True))
            if old is None or len(new[0]) + len(new[1]) != len(old[0]) + len(old[1]):
                state_in[j] = new
                if j not in queued:
                    queued.add(j)
                    heapq.heappush(work, j)
    if back:  # loops: states are final only now
        for k in range(nb):
            if state_in[k] is not None:
                walk(k, state_in[k], True)
    if not rename:
        return ops
    keep = [op for i, op in enumerate(ops) if i not in drop]
    for op in keep:
        if type(op) is Op:
            op.replace(rename)
    return keep


def _key_regs(key: tuple) -> tuple:
    if key[0] == "alu":
        return (key[2], *(v for _, v in key[3] if isinstance(v, (VReg, Reg))))
    return (key[1],)


def _load_key(op, defs: dict):
    if type(op) is not Op or (op.cls is not Load and op.cls is not LoadSX):
        return None
    f = op.fields
    if not isinstance(f["dst"], VReg) or defs.get(f["dst"]) != 1 or f["src"] == f["dst"]:
        return None
    return (op.cls, f["src"], f["off"], f["size"])


def _transfer(op, key, avail: tuple, ends: dict) -> tuple:
    """Available (loads, arithmetic) after ``op``; the dicts are never changed in place."""
    if isinstance(op, Mark):
        return avail
    loads, alus = avail
    cls = op.cls
    if cls in _STORES:
        if loads:
            if op.fields["dst"] == Reg.R10:  # a stack store leaves other loads alone
                loads = {k: v for k, v in loads.items() if k[1] != Reg.R10}
            else:
                loads = {}
    elif op.clobbers or cls in _CALLS:
        loads = {}  # memory may have changed
    for r in op.defs + op.clobbers:
        facts = ends.get(r)
        if facts is None:
            continue
        for k in facts:
            alu = k[0] == "alu"
            v = (alus if alu else loads).get(k)
            if v is not None and (v is r or r in _key_regs(k)):
                if alu:
                    alus = dict(alus) if alus is avail[1] else alus
                    del alus[k]
                else:
                    loads = dict(loads) if loads is avail[0] else loads
                    del loads[k]
    if key is not None:
        if key[0] == "alu":
            if key not in alus:
                alus = {**alus, key: op.fields["dst"]}
        elif key not in loads:
            loads = {**loads, key: op.fields["dst"]}
    if loads is avail[0] and alus is avail[1]:
        return avail
    return loads, alus


_STORES = (Store, StoreImm, Atomic, StoreRelease)
_CALLS = (Call, CallKfunc, CallLocal, CallX)


_ALU_KEYED = (Alu, Neg, Endian)


def _alu_key(ops: list, i: int, defs: dict):
    """A key for ``t = a; t op= c`` (one arithmetic result: t written exactly there)."""
    op = ops[i]
    if type(op) is not Op or op.cls not in _ALU_KEYED or op.is_move:
        return None
    if op.cls is Alu and op.fields["op"] in (Arith.MOV, Arith.MOVSX8, Arith.MOVSX16,
                                             Arith.MOVSX32):
        return None
    t = op.fields["dst"]
    mov = ops[i - 1] if i > 0 else None
    if not (isinstance(t, VReg) and defs.get(t) == 2 and isinstance(mov, Op) and mov.is_move
            and mov.fields["dst"] is t and isinstance(mov.fields["src"], VReg)):
        return None
    rest = tuple(sorted((k, v) for k, v in op.fields.items() if k != "dst"))
    if any(v is t for _, v in rest):
        return None
    return ("alu", op.cls, mov.fields["src"], rest)


def drop_implied_checks(ops: list) -> list:
    """A packet bounds check implied by an earlier one on every path goes.

    The DSL's check is ``t = base; t += K; if t > end goto short``. Past it
    (on the fall-through edge), ``base + K <= end`` holds until ``base`` or
    ``end`` is written again; a later check of ``base + K2`` with ``K2 <= K``
    cannot fail, so it is removed (its ``t`` then dies and goes too).
    """
    checks = {}
    for i in range(2, len(ops)):
        key = _check_key(ops, i)
        if key is not None:
            checks[i] = key
    if not checks:
        return ops
    succ = successors(ops)
    spans, bsucc = blocks(ops, succ)
    nb = len(spans)
    state_in: list = [None] * nb  # facts at block entry: {(base, end): K}; None: top
    if nb:
        state_in[0] = {}
    work, queued = [0] if nb else [], {0}
    while work:
        k = heapq.heappop(work)
        queued.discard(k)
        first, last = spans[k]
        facts = _check_facts(ops, first, last + 1, state_in[k], checks)
        jump = isinstance(ops[last], Op) and ops[last].cls is Jump
        for j, target in zip(bsucc[k], succ[last], strict=True):
            edge = facts
            if jump and target != last + 1:  # the taken edge of a check
                edge = _without_own_check(facts, ops, last)
            old = state_in[j]
            if old is None:
                new = edge
            else:
                new = {f: min(v, edge[f]) for f, v in old.items() if f in edge}
            if new != old:
                state_in[j] = new
                if j not in queued:
                    queued.add(j)
                    heapq.heappush(work, j)
    drop = set()
    for k, (first, last) in enumerate(spans):
        if last not in checks or state_in[k] is None:
            continue
        facts = _check_facts(ops, first, last, state_in[k], checks)
        base, end, kk = checks[last]
        if facts.get((base, end), -1) >= kk:
            drop.add(last)
    return [op for i, op in enumerate(ops) if i not in drop]


def _check_facts(ops: list, first: int, stop: int, facts: dict, checks: dict) -> dict:
    """Facts after ops[first:stop] (on the fall-through edge of a check)."""
    for i in range(first, stop):
        op = ops[i]
        if op.defs and facts:
            d = op.defs
            if any(f[0] in d or f[1] in d for f in facts):
                facts = {f: v for f, v in facts.items() if f[0] not in d and f[1] not in d}
        c = checks.get(i)
        if c is not None:
            base, end, k = c
            facts = {**facts, (base, end): max(k, facts.get((base, end), k))}
    return facts


def _without_own_check(facts: dict, ops: list, p: int) -> dict:
    """On the taken edge of a check, the check's own fact does not hold."""
    key = _check_key(ops, p)
    if key is None:
        return facts
    base, end, k = key
    return {kk: v for kk, v in facts.items() if kk != (base, end)} if facts.get((base, end)) == k \
        else facts


def _check_key(ops: list, i: int):
    """(base, end, K) if ops[i-2:i+1] is ``t = base; t += K; if t > end goto ...``."""
    j, a, m = ops[i], ops[i - 1], ops[i - 2]
    if not (isinstance(j, Op) and j.cls is Jump and j.fields["op"] is JumpOp.JGT
            and j.fields["width"] == 64 and isinstance(j.fields["src"], VReg)):
        return None
    t = j.fields["dst"]
    if not (isinstance(a, Op) and a.cls is Alu and a.fields["op"] is Arith.ADD
            and a.fields["dst"] is t and a.fields["width"] == 64 and _imm(a.fields["src"])):
        return None
    if not (isinstance(m, Op) and m.is_move and m.fields["dst"] is t
            and isinstance(m.fields["src"], VReg)):
        return None
    return (m.fields["src"], j.fields["src"], a.fields["src"])


# -- value ranges ---------------------------------------------------------------------------

_M64 = (1 << 64) - 1
_M32 = (1 << 32) - 1
_TOP = (0, _M64)


def drop_decided_jumps(ops: list) -> list:
    """Conditional jumps that value ranges decide, and masks that change nothing, go.

    Unsigned intervals of every virtual register are propagated over the CFG
    (loads give their width, ``&``/``>>``/``<<``/``+`` with known operands
    stay bounded, jumps narrow their operand on each edge, loops widen to
    "unknown"). A ``if x > 65535 goto short`` on an offset that is provably
    at most 40 + 60 + 8 * 255, say, cannot jump, and the verifier knows it
    too; the DSL emits such checks whenever it cannot see that itself.
    """
    succ = successors(ops)
    spans, bsucc = blocks(ops, succ)
    live = Liveness(ops, succ)  # only values still needed are tracked: states stay small
    bit, live_out = live.bit, live.out
    nb = len(spans)
    state_in: list = [None] * nb
    visits = [0] * nb
    back = any(j <= k for k, js in enumerate(bsucc) for j in js)
    change: dict = {}  # op index -> None (drop) or the Goto replacing it

    def walk(k: int, state: dict, record: bool) -> dict:
        first, last = spans[k]
        for i in range(first, last + 1):
            op = ops[i]
            if record:
                if _noop_and(op, state):  # x &= mask with x <= mask changes nothing
                    change[i] = None
                elif _decidable(op):
                    if _never(op, state):
                        change[i] = None
                    elif _always(op, state):  # the code it jumps over is unreachable, goes
                        change[i] = Op(Goto, {"target": op.fields["target"]}, op.source)
            _range_step_into(op, state)
        return state

    if nb:
        state_in[0] = {}
    work, queued = [0] if nb else [], {0}
    while work:
        k = heapq.heappop(work)  # in op order: each block of an acyclic function once
        queued.discard(k)
        last = spans[k][1]
        state = walk(k, dict(state_in[k]), not back)
        state = {r: v for r, v in state.items() if bit[r] & live_out[last]}
        jump = ops[last]
        for idx, j in enumerate(bsucc[k]):  # a Jump's successors: (fall-through, target)
            edge = _narrow(jump, state, taken=(idx == len(bsucc[k]) - 1 and idx > 0))
            old = state_in[j]
            if old is None:
                new = edge
            else:
                new = _hull(old, edge)
                if new != old:
                    visits[j] += 1
                    if visits[j] > 8:  # a loop keeps growing it: give up on what grows
                        new = {r: v for r, v in new.items() if old.get(r) == v}
            if new != old:
                state_in[j] = new
                if j not in queued:
                    queued.add(j)
                    heapq.heappush(work, j)
    if back:  # loops: states are final only now
        for k in range(nb):
            if state_in[k] is not None:
                walk(k, dict(state_in[k]), True)
    if not change:
        return ops
    if any(op is not None for op in change.values()):
        ops = list(ops)  # a jump became a goto: what it jumped over may be unreachable now
        for i, op in change.items():
            if op is not None:
                ops[i] = op
        change = {i: op for i, op in change.items() if op is None}
        return _drop_unreachable([op for i, op in enumerate(ops) if i not in change])
    out = []
    for i, op in enumerate(ops):
        if i in change:
            op = change[i]
            if op is None:
                continue
        out.append(op)
    return out


_UNSIGNED_JUMPS = (JumpOp.JEQ, JumpOp.JNE, JumpOp.JGT, JumpOp.JGE, JumpOp.JLT, JumpOp.JLE)


def _decidable(op) -> bool:
    return (isinstance(op, Op) and op.cls is Jump and op.fields["op"] in _UNSIGNED_JUMPS
            and isinstance(op.fields["dst"], VReg) and _imm(op.fields["src"]))


def _jump_k(op):
    f = op.fields
    k = f["src"] & (_M64 if f["width"] == 64 else _M32)
    return f["op"], k


def _interval(state: dict, r, width: int = 64):
    iv = state.get(r, _TOP) if isinstance(r, VReg) else _TOP
    if width == 32 and iv[1] > _M32:
        return (0, _M32)
    return iv


def _never(op, state: dict) -> bool:
    jop, k = _jump_k(op)
    lo, hi = _interval(state, op.fields["dst"])
    if op.fields["width"] == 32 and hi > _M32:
        return False
    return {JumpOp.JGT: hi <= k, JumpOp.JGE: hi < k, JumpOp.JLT: lo >= k, JumpOp.JLE: lo > k,
            JumpOp.JEQ: not lo <= k <= hi, JumpOp.JNE: lo == hi == k}[jop]


def _noop_and(op, state: dict) -> bool:
    """``x &= 0xffff`` when x is already at most 0xffff (a checksum fold, a be16 value)."""
    if not (isinstance(op, Op) and op.cls is Alu and op.fields["op"] is Arith.AND
            and isinstance(op.fields["dst"], VReg) and _imm(op.fields["src"])
            and op.fields["src"] >= 0):
        return False
    k = op.fields["src"]
    return (k + 1) & k == 0 and _interval(state, op.fields["dst"])[1] <= k


def _always(op, state: dict) -> bool:
    jop, k = _jump_k(op)
    lo, hi = _interval(state, op.fields["dst"])
    if op.fields["width"] == 32 and hi > _M32:
        return False
    return {JumpOp.JGT: lo > k, JumpOp.JGE: lo >= k, JumpOp.JLT: hi < k, JumpOp.JLE: hi <= k,
            JumpOp.JEQ: lo == hi == k, JumpOp.JNE: not lo <= k <= hi}[jop]


def _narrow(op, state: dict, taken: bool) -> dict:
    if not _decidable(op):
        return state
    jop, k = _jump_k(op)
    r = op.fields["dst"]
    lo, hi = _interval(state, r)
    if op.fields["width"] == 32 and hi > _M32:
        return state
    if not taken:
        jop = {JumpOp.JGT: JumpOp.JLE, JumpOp.JGE: JumpOp.JLT, JumpOp.JLT: JumpOp.JGE,
               JumpOp.JLE: JumpOp.JGT, JumpOp.JEQ: JumpOp.JNE, JumpOp.JNE: JumpOp.JEQ}[jop]
    if jop is JumpOp.JGT:
        lo = max(lo, k + 1)
    elif jop is JumpOp.JGE:
        lo = max(lo, k)
    elif jop is JumpOp.JLT:
        hi = min(hi, k - 1)
    elif jop is JumpOp.JLE:
        hi = min(hi, k)
    elif jop is JumpOp.JEQ:
        lo, hi = max(lo, k), min(hi, k)
    if lo > hi:  # this edge cannot be taken: keep the state (it changes nothing downstream)
        return state
    return {**state, r: (lo, hi)}


def _hull(a: dict, b: dict) -> dict:
    return {k: (min(v[0], b[k][0]), max(v[1], b[k][1])) for k, v in a.items() if k in b}


def _range_step_into(op, state: dict) -> None:
    """Apply ``op`` to ``state`` in place."""
    defs = op.defs
    if not defs:
        return
    dst = defs[0] if len(defs) == 1 else None
    iv = _value_of(op, state) if type(dst) is VReg else None  # before dst is forgotten
    for d in defs:
        state.pop(d, None)
    for d in op.clobbers:
        state.pop(d, None)
    if iv is not None and iv != _TOP:
        state[dst] = iv


def _value_of(op, state: dict):
    cls, f = op.cls, op.fields
    if cls is Load:
        return (0, (1 << (8 * f["size"].bytes)) - 1)
    if cls is Endian:
        return (0, (1 << f["bits"]) - 1)
    if cls is LoadImm64:
        return (f["imm"] & _M64,) * 2
    if cls is not Alu:
        return None
    w = f["width"]
    mask = _M64 if w == 64 else _M32
    top = (0, mask)
    src = f["src"]
    b = ((src & mask,) * 2) if _imm(src) else _interval(state, src, w)
    a = _interval(state, f["dst"], w)
    aop = f["op"]
    if aop is Arith.MOV:
        return b
    if aop is Arith.ADD:
        lo, hi = a[0] + b[0], a[1] + b[1]
    elif aop is Arith.SUB:
        if a[0] < b[1]:
            return top
        lo, hi = a[0] - b[1], a[1] - b[0]
    elif aop is Arith.MUL:
        lo, hi = a[0] * b[0], a[1] * b[1]
    elif aop is Arith.AND:
        lo, hi = 0, min(a[1], b[1])
    elif aop in (Arith.OR, Arith.XOR):
        lo, hi = 0, (1 << max(a[1], b[1]).bit_length()) - 1
    elif aop is Arith.LSH and b[0] == b[1]:
        n = b[0] & (w - 1)
        lo, hi = a[0] << n, a[1] << n
    elif aop is Arith.RSH:
        lo, hi = a[0] >> min(b[1], w - 1), a[1] >> (b[0] if b[0] < w else 0)
    elif aop is Arith.DIV:
        lo, hi = 0, a[1]
    elif aop is Arith.MOD:
        lo, hi = 0, (min(a[1], b[1] - 1) if b[0] > 0 else a[1])
    else:
        return top
    return (lo, hi) if hi <= mask else top

