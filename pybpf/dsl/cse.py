"""Common subexpressions: repeated loads (same base, offset, size, no store between)
and repeated ``t = a; t op= c`` arithmetic reuse the earlier result, found by a
forward "available values" analysis over the control-flow graph.
"""

from __future__ import annotations

from pybpf.asm import (
    Alu,
    Arith,
    Atomic,
    Call,
    CallKfunc,
    CallLocal,
    CallX,
    Endian,
    Load,
    LoadSX,
    Neg,
    Reg,
    Store,
    StoreImm,
    StoreRelease,
)
from pybpf.dsl.cfg import Cfg
from pybpf.dsl.ir import Mark, Op, VReg


def cse_loads(ops: list, cfg: Cfg | None = None) -> list:
    """A load repeated with the same base, offset and size, and no store in between, goes.

    Forward "available loads" over the control-flow graph (intersection at
    joins); a repeated load's result register is replaced by the earlier one's.
    Only loads whose result is written once qualify, so the rename is safe.
    Stores through r10 forget only stack loads; any other store, atomic or
    call forgets every load (it may write any memory).

    A rename can make later keys equal (``be32(new)`` found again makes
    ``be32(new) & 0xffff`` a repeat too): the recording walk meets the ops in op
    order, after the ops they depend on, and reads each key with the renames so far
    (value numbering), so one walk finds the whole repeated expression. A chain
    ``t = a; t &= 15; t <<= 2; t += 14`` whose first steps were computed before
    starts from the last value found (``t = lsh``) and keeps the rest.
    """
    defs: dict = {}
    for op in ops:
        for d in op.defs:
            defs[d] = defs.get(d, 0) + 1
    keys: list = [None] * len(ops)
    for i, op in enumerate(ops):
        if type(op) is Op:
            cls = op.cls
            if cls is Load or cls is LoadSX:
                keys[i] = _load_key(op, defs)
            elif cls in _ALU_KEYED:
                keys[i] = _alu_key(ops, i, defs)
    # A value is reused only where an earlier op has the same key: without a key
    # seen twice there is nothing to find, and the analysis is skipped.
    seen: set = set()
    for key in keys:
        if key is not None:
            if key in seen:
                break
            seen.add(key)
    else:
        return ops
    cfg = Cfg(ops) if cfg is None else cfg
    spans, bsucc, back = cfg.spans, cfg.bsucc, cfg.back
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
    steps = _steps(ops, keys, ends, spans)
    nb = len(spans)
    state_in: list = [None] * nb  # None: not reached yet (top); else (loads, alus)
    rename: dict = {}
    drop: set[int] = set()
    prefix: dict = {}  # index of a chain's first op -> (register holding the value, last op)
    chain: dict = {}  # a chain's register -> (first op, the value it holds so far)

    def walk(k: int, avail: tuple, record: bool) -> tuple:
        for i in steps[k]:
            op, key = ops[i], keys[i]
            if chain and record:
                t = op.fields.get("dst") if type(op) is Op else None
                if t in chain:  # the chain goes on: is its next value known too?
                    start, held = chain.pop(t)
                    if prefix[start][1] == i - 1 and op.cls in _ALU_KEYED:
                        rest = tuple(sorted((k, v) for k, v in op.fields.items() if k != "dst"))
                        found = avail[1].get(("alu", op.cls, held, rest))
                        if found is not None:
                            prefix[start] = (found, i)
                            if i - start + 2 < defs[t]:
                                chain[t] = (start, found)
            if record and key is not None and i > 0:
                if rename:
                    key = _renamed(key, rename, ends, op.fields["dst"])
                found = avail[key[0] == "alu"].get(key)
                if found is not None:
                    if key[0] == "alu" and defs[op.fields["dst"]] > 2:
                        # a prefix of a chain ``t = a; t += 14; t += x``: t starts from the
                        # value found (a move), the rest of the chain stays
                        prefix[i] = (found, i)
                        chain[op.fields["dst"]] = (i, found)
                    else:
                        rename[op.fields["dst"]] = found
                        drop.add(i)
                        if key[0] == "alu":
                            drop.add(i - 1)  # the MOV that started the pair
                    key = None
            avail = _transfer(op, key, avail, ends)
        return avail

    def visit(k: int) -> list:
        """Available values at the end of block k handed to its successors (intersected
        at joins); the successors whose entry state changed."""
        avail = walk(k, state_in[k], not back)
        changed = []
        for j in bsucc[k]:
            old = state_in[j]
            if old is None:
                new = avail
            else:
                new = tuple({key: v for key, v in o.items() if a.get(key) is v}
                            for o, a in zip(old, avail, strict=True))
            if old is None or len(new[0]) + len(new[1]) != len(old[0]) + len(old[1]):
                state_in[j] = new
                changed.append(j)
        return changed

    if nb:
        state_in[0] = ({}, {})
    cfg.forward(state_in, visit)  # in op order: without back edges each block once, its state final
    if back:  # loops: states are final only now
        for k in range(nb):
            if state_in[k] is not None:
                walk(k, state_in[k], True)
    if not rename and not prefix:
        return ops
    for i, (_, last) in prefix.items():
        drop.update(range(i, last + 1))
    keep = []
    for i, op in enumerate(ops):
        if i + 1 in prefix:  # the chain's MOV copies the value found; the ops it covers go
            op = Op(Alu, {**op.fields, "src": prefix[i + 1][0]}, op.source)
        elif i in drop:
            continue
        keep.append(op)
    for op in keep:
        for r in op.uses:  # a renamed value is written only by a dropped op
            if r in rename:
                op.replace(rename)
                break
    return keep


def _renamed(key: tuple, rename: dict, ends: dict, dst) -> tuple:
    """``key`` naming the values kept for those it names that were found again; a new
    key is ended by writes of its registers and of ``dst`` as the original is."""
    if key[0] == "alu":
        _, cls, a, rest = key
        if a not in rename and not any(v in rename for _, v in rest if type(v) is VReg):
            return key
        new = ("alu", cls, rename.get(a, a),
               tuple((k, rename.get(v, v) if type(v) is VReg else v) for k, v in rest))
    else:
        if key[1] not in rename:
            return key
        new = (key[0], rename[key[1]], *key[2:])
    for r in (*_key_regs(new), dst):
        if r in ends:
            ends[r].add(new)
    return new


def _steps(ops: list, keys: list, ends: dict, spans: list) -> list[list[int]]:
    """The ops of each block that can change the available values (the others pass them on)."""
    steps = []
    for first, last in spans:
        mine = []
        for i in range(first, last + 1):
            op = ops[i]
            if keys[i] is not None:
                mine.append(i)
            elif type(op) is Op:
                if op.cls in _STORES or op.clobbers or op.cls in _CALLS:
                    mine.append(i)
                else:
                    for r in op.defs:
                        if r in ends:
                            mine.append(i)
                            break
        steps.append(mine)
    return steps


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
            if op.fields["dst"] == _R10:  # a stack store leaves other loads alone
                loads = {k: v for k, v in loads.items() if k[1] != _R10}
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
_R10 = Reg.R10  # an enum member read through its class costs a metaclass lookup per read
_CALLS = (Call, CallKfunc, CallLocal, CallX)


_ALU_KEYED = (Alu, Neg, Endian)
_MOVES = (Arith.MOV, Arith.MOVSX8, Arith.MOVSX16, Arith.MOVSX32)


def _alu_key(ops: list, i: int, defs: dict):
    """A key for ``t = a; t op= c`` (one arithmetic result: t written exactly there),
    or for the first step of a chain ``t = a; t op= c; t op2= d ...`` whose ops are
    all of t's writes."""
    op = ops[i]
    if type(op) is not Op or op.cls not in _ALU_KEYED:
        return None
    t = op.fields["dst"]
    n = defs.get(t, 0)
    if i == 0 or n < 2 or not isinstance(t, VReg):
        return None
    if n > 2 and not all(type(o) is Op and t in o.defs for o in ops[i + 1:i + n - 1]):
        return None
    if op.cls is Alu and op.fields["op"] in _MOVES:
        return None
    mov = ops[i - 1]
    if not (isinstance(mov, Op) and mov.is_move and mov.fields["dst"] is t
            and isinstance(mov.fields["src"], VReg)):
        return None
    rest = tuple(sorted((k, v) for k, v in op.fields.items() if k != "dst"))
    if any(v is t for _, v in rest):
        return None
    return ("alu", op.cls, mov.fields["src"], rest)
