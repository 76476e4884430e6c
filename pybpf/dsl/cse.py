"""Common subexpressions: repeated loads (same base, offset, size, no store between)
and repeated ``t = a; t op= c`` arithmetic reuse the earlier result, found by a
forward "available values" analysis over the control-flow graph.

A load's key is ``(class, base, offset, size)``; arithmetic's is ``("alu",
class, a, names, values)`` with the op's other fields by name. The analysis
tracks facts "key K is held in register v", one per keyed op, each a bit
position: the facts available at a point are the set bits of one int. A join is
an ``&``, a store or call forgets the load facts with one mask, a write to a
register forgets the facts that name it (or are held in it) with another, and a
key is available where its facts' mask meets the state; no state is copied.
Only the facts that can match another op's key are tracked, and only the ops
that can change them are walked.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from operator import itemgetter

from pybpf.asm import (
    Alu,
    Arith,
    Atomic,
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
    (n keyed ops) the same op's key read through renames, where that differs. Only
    the facts of keys that may be matched are tracked: the others' ops are not
    walked and their bits stay clear. At most one fact of a key is available at a
    time: a key already available is not recorded again.
    """
    writes, candidates, forget, forget_stack = _scan(ops)
    keyed, findable = _keys(ops, candidates, writes)
    # A value is reused only where an earlier op has the same key: without a key
    # seen twice there is nothing to find, and the analysis is skipped.
    if not findable:
        return ops
    cfg = Cfg(ops) if cfg is None else cfg
    spans, bsucc, back = cfg.spans, cfg.bsucc, cfg.back
    n = len(keyed)
    fact_of: dict[int, int] = {}  # op index -> its fact, for the facts tracked
    holders: list = [None] * 2 * n  # the register holding each fact's value
    by_key: dict = {}  # key -> bits of its facts
    # The facts a write to each register ends (those whose key names it or whose
    # value it holds). Without loops a fact only names values defined before it,
    # and only a write after it in op order can follow it: a value written once,
    # or only before the fact, never ends it.
    ends: dict = {}
    loads = stack = 0  # bits of the load facts, of those from the stack
    # with loops an op may find a key computed later in op order: all are tracked
    for f in range(n) if back else findable:
        i, key, t = keyed[f]
        fact_of[i] = f
        holders[f] = holders[n + f] = t
        bit = 1 << f
        by_key[key] = by_key.get(key, 0) | bit
        if key[0] == "alu":
            named = _key_regs(key)
        else:
            named = (key[1],)
            both = bit | 1 << (n + f)
            loads |= both
            if key[1] == _R10:
                stack |= both
        for r in named:
            w = writes.get(r)
            if w and (back or w[-1] > i and (type(r) is not VReg or len(w) > 1)):
                ends[r] = ends.get(r, 0) | bit
        if back or writes[t][-1] > i:  # t is written here: a later write ends the fact
            ends[t] = ends.get(t, 0) | bit
    # the ops that can change the facts, in op order, and where each block's start
    steps = set(fact_of)
    if loads:
        steps.update(forget)
    if stack:
        steps.update(forget_stack)
    for r in ends:
        steps.update(writes[r])
    steps = sorted(steps)
    bounds = [bisect_left(steps, first) for first, _ in spans]
    bounds.append(len(steps))
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
        for i in steps[bounds[k]:bounds[k + 1]]:
            op = ops[i]
            if chain and record:
                t = op.fields.get("dst")
                if t in chain:  # the chain goes on: is its next value known too?
                    start, held = chain.pop(t)
                    if prefix[start][1] == i - 1 and op.cls in _ALU_KEYED:
                        found = holder(avail, _arith(op.cls, held, op.fields))
                        if found is not None:
                            prefix[start] = (found, i)
                            if i - start + 2 < len(writes[t]):
                                chain[t] = (start, found)
            f = fact_of.get(i)
            if f is not None:
                key, bit = keyed[f][1], 1 << f
                look = record and i > 0
                if look and rename:
                    new = _renamed(key, rename)
                    if new is not key:  # a fact of its own, ended as the original is
                        key, bit = new, 1 << (n + f)
                        by_key[key] = by_key.get(key, 0) | bit
                        for r in (*_key_regs(key), holders[f]):
                            if r in ends:
                                ends[r] |= bit
                same = by_key[key]  # the facts with this key: one at most is available
                if look and avail & same:
                    found = holders[(avail & same).bit_length() - 1]
                    t = holders[f]
                    if key[0] == "alu" and len(writes[t]) > 2:
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
                ended = ends.get(holders[f])  # it writes only its destination
                if ended:
                    avail &= ~ended
                if key is not None and not avail & same:
                    avail |= bit
                continue
            if op.cls in _STORES:  # a stack store leaves other loads alone
                avail &= ~(stack if op.fields["dst"] == _R10 else loads)
            elif op.clobbers:
                avail &= ~loads  # a call: memory may have changed
            for r in op.defs + op.clobbers:
                ended = ends.get(r)
                if ended:
                    avail &= ~ended
        return avail

    def visit(k: int) -> list:
        """With loops, available facts at the end of block k handed to its successors
        (intersected at joins); the successors whose entry state changed."""
        avail = state_in[k]
        if bounds[k] < bounds[k + 1]:
            avail = walk(k, avail, False)
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
    if back:
        cfg.forward(state_in, visit)
        for k in range(len(spans)):  # loops: states are final only now
            if state_in[k] is not None:
                walk(k, state_in[k], True)
    else:  # op order is topological: each block once, its state final, and no worklist
        for k, succs in enumerate(bsucc):
            avail = state_in[k]
            if avail is None:
                continue
            if bounds[k] < bounds[k + 1]:
                avail = walk(k, avail, True)
            for j in succs:
                old = state_in[j]
                state_in[j] = avail if old is None else old & avail
    if not rename and not prefix:
        return ops
    keep = ops[:]
    for start, (found, last) in prefix.items():
        mov = ops[start - 1]  # the chain's MOV copies the value found; the ops it covers go
        keep[start - 1] = Op(Alu, {**mov.fields, "src": found}, mov.source)
        drop.update(range(start, last + 1))
    for i in sorted(drop, reverse=True):
        del keep[i]
    if rename:
        for op in keep:
            for r in op.uses:  # a renamed value is written only by a dropped op
                if r in rename:
                    op.replace(rename)
                    break
    return keep


def _scan(ops: list) -> tuple[dict, list, list, list]:
    """One pass over ``ops``: the indices of the ops writing (or clobbering) each
    register; the ops that may have a key (loads, and arithmetic right after a move
    to its destination); the ops that forget the loads (stores but through r10,
    calls) and those that forget the stack loads (stores through r10)."""
    writes: dict = defaultdict(list)
    candidates, forget, forget_stack = [], [], []
    kind = _KIND.get
    prev = None  # the op before, None after a label
    for i, op in enumerate(ops):
        if type(op) is not Op:
            prev = None
            continue
        if op.defs:  # an eBPF instruction writes one register at most
            writes[op.defs[0]].append(i)
        k = kind(op.cls)
        if k is _ALU:
            if prev is not None and prev.is_move and prev.fields["dst"] is op.fields["dst"]:
                candidates.append(i)
        elif k is _LOAD:
            candidates.append(i)
        elif k is _STORE:
            (forget_stack if op.fields["dst"] == _R10 else forget).append(i)
        elif op.clobbers:  # calls, and the legacy packet loads
            forget.append(i)
            for r in op.clobbers:
                writes[r].append(i)
        prev = op
    return writes, candidates, forget, forget_stack


def _keys(ops: list, candidates: list, writes: dict) -> tuple[list, list[int]]:
    """The keyed ops as (op index, key, destination), and the indices (into the
    first) of those the walk may match: keys another op may find, or that may find one.

    The keys are grouped in op order as if every key seen before were found (read
    through those renames, and a chain's next steps from the value found). Without
    loops the walk meets the ops in op order and makes a subset of these renames,
    so two keys it matches, each read through the renames made before it, fall in
    one group; a key alone in its group takes part in no match and is not tracked.
    """
    keyed: list = []
    renames: dict = {}  # a value whose key was seen before -> the first value with that key
    groups: dict = {}  # key -> [the first value, the members (None: a chain's step)]
    for i in candidates:
        op = ops[i]
        f = op.fields
        t = f["dst"]
        if type(t) is not VReg:
            continue
        n = len(writes[t])
        cls = op.cls
        if cls is Load or cls is LoadSX:  # (class, base, offset, size), the result written only here
            base = f["src"]
            if n != 1 or base is t:
                continue
            key = (cls, base, f["off"], f["size"])
            # the key read through the renames so far: the one grouped
            seen = key if base not in renames else (cls, renames[base], f["off"], f["size"])
        else:
            key = _alu_key(ops, i, t, n)
            if key is None:
                continue
            seen = _renamed(key, renames) if renames else key
        m = len(keyed)
        keyed.append((i, key, t))
        group = groups.get(seen)
        if group is None:  # the first with this key
            groups[seen] = [t, m]
            continue
        group.append(m)
        if seen[0] != "alu" or n <= 2:
            renames[t] = group[0]
            continue
        held = group[0]  # a chain's first step: the next ones may be found from it
        for j in range(i + 1, i + n - 1):
            op = ops[j]
            if op.cls not in _ALU_KEYED:
                break
            group = groups.get(_renamed(_arith(op.cls, held, op.fields), renames))
            if group is None:
                break
            group.append(None)
            held = group[0]
    findable = [m for group in groups.values() if len(group) > 2 for m in group[1:] if m is not None]
    return keyed, findable


def _renamed(key: tuple, rename: dict) -> tuple:
    """``key`` naming the values kept for those it names that were found again."""
    if key[0] != "alu":
        return key if key[1] not in rename else (key[0], rename[key[1]], *key[2:])
    _, cls, a, names, values = key
    if a not in rename:
        for v in values:
            if type(v) is VReg and v in rename:
                break
        else:
            return key
    return ("alu", cls, rename.get(a, a), names,
            tuple([rename.get(v, v) if type(v) is VReg else v for v in values]))


def _key_regs(key: tuple) -> tuple:
    """The registers ``key`` names (a load's base; an arithmetic source and operand)."""
    if key[0] == "alu":
        return (key[2], *[v for v in key[4] if type(v) in _REGS])
    return (key[1],)


_STORES = (Store, StoreImm, Atomic, StoreRelease)
_R10 = Reg.R10  # an enum member read through its class costs a metaclass lookup per read
_REGS = (VReg, Reg)


_ALU_KEYED = (Alu, Neg, Endian)
# what the scan does with an op of each class
_LOAD, _ALU, _STORE = "load", "alu", "store"
_KIND = {Load: _LOAD, LoadSX: _LOAD, Alu: _ALU, Neg: _ALU, Endian: _ALU,
         **{cls: _STORE for cls in _STORES}}
_MOVES = (Arith.MOV, Arith.MOVSX8, Arith.MOVSX16, Arith.MOVSX32)


def _alu_key(ops: list, i: int, t: VReg, n: int):
    """A key for ``t = a; t op= c`` (one arithmetic result: t written exactly there),
    or for the first step of a chain ``t = a; t op= c; t op2= d ...`` whose ops are
    all of t's ``n`` writes. ``ops[i - 1]`` is a move to t (the caller checks)."""
    op = ops[i]
    a = ops[i - 1].fields["src"]
    if type(a) is not VReg or op.cls is Alu and op.fields["op"] in _MOVES:
        return None
    if n > 2 and not all(type(o) is Op and t in o.defs for o in ops[i + 1:i + n - 1]):
        return None
    key = _arith(op.cls, a, op.fields)
    for v in key[4]:
        if v is t:
            return None
    return key


def _arith(cls: type, a: VReg, fields: dict) -> tuple:
    """The key of ``t = a`` then an op of class ``cls`` with ``fields`` on t:
    ``("alu", cls, a, names, values)`` of its other fields, by name."""
    order = tuple(fields)
    names, read = _READERS.get(order) or _reader(order)
    return ("alu", cls, a, names, read(fields))


def _reader(order: tuple) -> tuple:
    """The field names but ``dst`` sorted, and a function reading their values from a
    fields dict; kept for each order the emitting code gives the names in."""
    names = tuple(sorted(k for k in order if k != "dst"))
    read = itemgetter(*names) if len(names) > 1 else lambda fields: tuple([fields[k] for k in names])
    _READERS[order] = names, read
    return names, read


_READERS: dict = {}
