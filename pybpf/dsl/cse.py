"""Common subexpressions: repeated loads (same base, offset, size, no store between)
and repeated ``t = a; t op= c`` arithmetic reuse the earlier result, found by a
forward "available values" analysis over the control-flow graph.

The analysis tracks facts "key K is held in register v", one per keyed op, each a
bit position: the facts available at a point are the set bits of one int. A join
is an ``&``, a store or call forgets the load facts with one mask, a write to a
register forgets the facts that name it (or are held in it) with another, and a
key is available where its facts' mask meets the state; no state is copied.
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
from pybpf.dsl.ir import Op, VReg


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

    Fact ``f`` is the f-th keyed op's key held in its destination; fact ``n + f``
    (n keyed ops) the same op's key read through renames, where that differs.
    At most one fact of a key is available at a time: a key already available
    is not recorded again.
    """
    defs: dict = {}
    candidates = []
    for i, op in enumerate(ops):
        for d in op.defs:
            defs[d] = defs.get(d, 0) + 1
        if type(op) is Op and op.cls in _KEYED:
            candidates.append(i)
    fact_of: dict[int, int] = {}  # op index -> its fact
    keys: list = []  # of each fact
    holders: list = []  # the register holding each fact's value
    by_key: dict = {}  # key -> bits of its facts
    repeated = False
    for i in candidates:
        op = ops[i]
        cls = op.cls
        key = _load_key(op, defs) if cls is Load or cls is LoadSX else _alu_key(ops, i, defs)
        if key is not None:
            bit = 1 << len(keys)
            fact_of[i] = len(keys)
            keys.append(key)
            holders.append(op.fields["dst"])
            if key in by_key:
                by_key[key] |= bit
                repeated = True
            else:
                by_key[key] = bit
    # A value is reused only where an earlier op has the same key: without a key
    # seen twice there is nothing to find, and the analysis is skipped.
    if not repeated:
        return ops
    cfg = Cfg(ops) if cfg is None else cfg
    spans, bsucc, back = cfg.spans, cfg.bsucc, cfg.back
    n = len(keys)
    holders += holders  # fact n + f is held where fact f is
    # The facts a write to each register ends (those whose key names it or whose
    # value it holds). Without loops a fact only names values defined before it,
    # so a value written once is never rewritten under it: only registers written
    # more than once (variables, r0-r5) can end a fact.
    ends: dict = {}
    loads = stack = 0  # bits of the load facts, of those from the stack
    for f, key in enumerate(keys):
        bit = 1 << f
        for r in (*_key_regs(key), holders[f]):
            if back or type(r) is not VReg or defs.get(r, 0) > 1:
                ends[r] = ends.get(r, 0) | bit
        if key[0] != "alu":
            both = bit | 1 << (n + f)
            loads |= both
            if key[1] == _R10:
                stack |= both
    steps = _steps(ops, fact_of, ends, spans)
    state_in: list = [None] * len(spans)  # None: not reached yet (top); else the facts
    rename: dict = {}
    drop: set[int] = set()
    prefix: dict = {}  # index of a chain's first op -> (register holding the value, last op)
    chain: dict = {}  # a chain's register -> (first op, the value it holds so far)

    def holder(avail: int, key: tuple):
        """The register holding ``key``'s value where ``avail`` are the facts, or None."""
        bits = avail & by_key.get(key, 0)
        return holders[bits.bit_length() - 1] if bits else None

    def walk(k: int, avail: int, record: bool) -> int:
        for i in steps[k]:
            op = ops[i]
            if chain and record:
                t = op.fields.get("dst")
                if t in chain:  # the chain goes on: is its next value known too?
                    start, held = chain.pop(t)
                    if prefix[start][1] == i - 1 and op.cls in _ALU_KEYED:
                        rest = tuple(sorted((k, v) for k, v in op.fields.items() if k != "dst"))
                        found = holder(avail, ("alu", op.cls, held, rest))
                        if found is not None:
                            prefix[start] = (found, i)
                            if i - start + 2 < defs[t]:
                                chain[t] = (start, found)
            f = fact_of.get(i)
            key = None
            if f is not None:
                key, bit = keys[f], 1 << f
                if record and i > 0:
                    if rename:
                        new = _renamed(key, rename)
                        if new is not key:  # a fact of its own, ended as the original is
                            key, bit = new, 1 << (n + f)
                            by_key[key] = by_key.get(key, 0) | bit
                            for r in (*_key_regs(key), holders[f]):
                                if r in ends:
                                    ends[r] |= bit
                    found = holder(avail, key)
                    if found is not None:
                        t = holders[f]
                        if key[0] == "alu" and defs[t] > 2:
                            # a prefix of a chain ``t = a; t += 14; t += x``: t starts from the
                            # value found (a move), the rest of the chain stays
                            prefix[i] = (found, i)
                            chain[t] = (i, found)
                        else:
                            rename[t] = found
                            drop.add(i)
                            if key[0] == "alu":
                                drop.add(i - 1)  # the MOV that started the pair
                        key = None
            cls = op.cls
            if cls in _STORES:  # a stack store leaves other loads alone
                avail &= ~(stack if op.fields["dst"] == _R10 else loads)
            elif op.clobbers or cls in _CALLS:
                avail &= ~loads  # memory may have changed
            for r in op.defs + op.clobbers:
                ended = ends.get(r)
                if ended:
                    avail &= ~ended
            if key is not None and not avail & by_key[key]:
                avail |= bit
        return avail

    def visit(k: int) -> list:
        """Available facts at the end of block k handed to its successors (intersected
        at joins); the successors whose entry state changed."""
        avail = walk(k, state_in[k], not back)
        changed = []
        for j in bsucc[k]:
            old = state_in[j]
            new = avail if old is None else old & avail
            if new != old:
                state_in[j] = new
                changed.append(j)
        return changed

    if spans:
        state_in[0] = 0
    cfg.forward(state_in, visit)  # in op order: without back edges each block once, its state final
    if back:  # loops: states are final only now
        for k in range(len(spans)):
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


def _renamed(key: tuple, rename: dict) -> tuple:
    """``key`` naming the values kept for those it names that were found again."""
    if key[0] == "alu":
        _, cls, a, rest = key
        if a not in rename and not any(v in rename for _, v in rest if type(v) is VReg):
            return key
        return ("alu", cls, rename.get(a, a),
                tuple((k, rename.get(v, v) if type(v) is VReg else v) for k, v in rest))
    if key[1] not in rename:
        return key
    return (key[0], rename[key[1]], *key[2:])


def _steps(ops: list, fact_of: dict, ends: dict, spans: list) -> list[list[int]]:
    """The ops of each block that can change the available facts (the others pass them on)."""
    steps = []
    for first, last in spans:
        mine = []
        for i in range(first, last + 1):
            op = ops[i]
            if i in fact_of:
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


def _load_key(op: Op, defs: dict):
    """``(class, base, offset, size)`` of a load whose result is written only there."""
    f = op.fields
    if type(f["dst"]) is not VReg or defs.get(f["dst"]) != 1 or f["src"] == f["dst"]:
        return None
    return (op.cls, f["src"], f["off"], f["size"])


_STORES = (Store, StoreImm, Atomic, StoreRelease)
_R10 = Reg.R10  # an enum member read through its class costs a metaclass lookup per read
_CALLS = (Call, CallKfunc, CallLocal, CallX)


_ALU_KEYED = (Alu, Neg, Endian)
_KEYED = (Load, LoadSX, *_ALU_KEYED)
_MOVES = (Arith.MOV, Arith.MOVSX8, Arith.MOVSX16, Arith.MOVSX32)


def _alu_key(ops: list, i: int, defs: dict):
    """A key for ``t = a; t op= c`` (one arithmetic result: t written exactly there),
    or for the first step of a chain ``t = a; t op= c; t op2= d ...`` whose ops are
    all of t's writes."""
    op = ops[i]
    t = op.fields["dst"]
    n = defs.get(t, 0)
    if i == 0 or n < 2 or type(t) is not VReg:
        return None
    mov = ops[i - 1]
    if not (type(mov) is Op and mov.is_move and mov.fields["dst"] is t
            and type(mov.fields["src"]) is VReg):
        return None
    if op.cls is Alu and op.fields["op"] in _MOVES:
        return None
    if n > 2 and not all(type(o) is Op and t in o.defs for o in ops[i + 1:i + n - 1]):
        return None
    rest = tuple(sorted((k, v) for k, v in op.fields.items() if k != "dst"))
    if any(v is t for _, v in rest):
        return None
    return ("alu", op.cls, mov.fields["src"], rest)
