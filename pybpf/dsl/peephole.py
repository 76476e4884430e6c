"""Straight-line peepholes on allocated code: ``rX += a; rX += b`` merged, masks
that change nothing a byte swap or checksum fold reads dropped, masks of bits
already known to be zero dropped (``~x & M`` of such an x is ``x ^ M``),
neighbouring stack store-immediates merged into one twice as wide.
"""

from __future__ import annotations

from pybpf.asm import (
    Alu,
    Arith,
    ByteOrder,
    Endian,
    Exit,
    Load,
    LoadImm64,
    Reg,
    Size,
    StoreImm,
)
from pybpf.dsl.ir import Op, is_imm
from pybpf.dsl.jumps import JUMPS, OpIndex


def straight_line(ops: list) -> list:
    """The straight-line peepholes, in order (merges, then masks, then stores)."""
    ops = _merge_alu(ops)
    ops = _fold_masks(ops)
    ops = _drop_undemanded_masks(ops)
    ops = _known_zero_masks(ops)
    return _merge_store_imm(ops)


def straight_line_work(ops: list, index: OpIndex) -> bool:
    """Whether ``straight_line`` may change ``ops``: a look at the ALU ops, byte
    swaps and store-immediates (from ``index``) for the shapes its passes
    rewrite, through the tests the passes make (a merge that would overflow
    counts too, so a no means it would return ``ops``), stopping at the first.
    """
    last = -2  # the ALU op before: a merge needs two side by side
    for i in index.of(Alu):
        f = ops[i].fields
        aop = f["op"]
        if aop is _AND:
            if is_imm(f["src"]) and (redundant_mask(ops, i)
                                     or _complement_masked(ops, i) and _ones_inside(ops, i)):
                return True  # a mask of bits already zero, or ~x & M of an x inside M
        elif aop is _XOR:
            if _second_complement(ops, i) is not None:
                return True  # the complemented checksum fold, uncomplemented
        elif (aop is _ADD or aop is _SUB) and last == i - 1 and _mergeable(ops[last], ops[i]):
            return True
        last = i
    for i in index.of(Endian):
        if i and _swap_keeps(ops[i - 1], ops[i]) or _undemanded_mask(ops, i) is not None:
            return True
    return any(i and _store_pair(ops[i - 1], ops[i]) for i in index.of(StoreImm))


_MERGEABLE = {Arith.ADD, Arith.SUB}


def _mergeable(prev, op) -> bool:
    """``prev; op`` is ``rX += a; rX += b`` (or -=) on immediates, one width."""
    if type(prev) is not Op or prev.cls is not Alu:
        return False
    f, g = op.fields, prev.fields
    return (g["op"] in _MERGEABLE and f["op"] in _MERGEABLE and f["dst"] == g["dst"]
            and f["width"] == g["width"] and is_imm(f["src"]) and is_imm(g["src"]))


def _merge_alu(ops: list) -> list:
    """``rX += a; rX += b`` (or -=) with nothing between becomes ``rX += a + b``."""
    out: list = []
    for op in ops:
        if type(op) is not Op or op.cls is not Alu or not out:
            out.append(op)
            continue
        prev = out[-1]
        if _mergeable(prev, op):
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
    return out if len(out) != len(ops) else ops


def _alu32(op, aop: Arith, dst=None) -> bool:
    return (type(op) is Op and op.cls is Alu and op.fields["op"] is aop
            and (dst is None or op.fields["dst"] == dst) and is_imm(op.fields["src"]))


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
        if type(op) is not Op or op.cls is not Alu:  # both shapes start with an ALU op
            out.append(op)
            i += 1
            continue
        if i + 1 < n and _swap_keeps(op, ops[i + 1]):
            i += 1
            continue
        j = _second_complement(ops, i)
        if j is not None:
            out.append(ops[i + 1])  # ~(~x & m) & m == x & m
            out.extend(ops[i + 2:j])
            i = j + 2
            continue
        out.append(op)
        i += 1
    return out if len(out) != n else ops


def _swap_keeps(op, nxt) -> bool:
    """``op; nxt`` is ``x &= M; x = bswap x`` with M keeping every bit the swap reads."""
    if not (_alu32(op, Arith.AND) and type(nxt) is Op and nxt.cls is Endian
            and nxt.fields["dst"] == op.fields["dst"]):
        return False
    low = (1 << nxt.fields["bits"]) - 1
    return op.fields["src"] & low == low


def _second_complement(ops: list, i: int) -> int | None:
    """Where the 32-bit ``x ^= -1; x &= M`` at ``ops[i]`` comes again on x, past ops on
    other registers in its straight run: the position of the second ``x ^= -1``."""
    n = len(ops)
    if i + 3 >= n:
        return None
    op, nxt = ops[i], ops[i + 1]
    if not (_alu32(op, Arith.XOR) and op.fields["src"] == -1 and op.fields["width"] == 32
            and _alu32(nxt, Arith.AND, op.fields["dst"]) and nxt.fields["width"] == 32):
        return None
    r, m = op.fields["dst"], nxt.fields["src"]
    j = i + 2  # ops on other registers may sit between the two pairs
    while (j < n and type(ops[j]) is Op and ops[j].cls not in JUMPS
           and ops[j].cls is not Exit and not ops[j].clobbers
           and r not in ops[j].uses and r not in ops[j].defs):
        j += 1
    if (j + 1 < n and _alu32(ops[j], Arith.XOR, r) and ops[j].fields["src"] == -1
            and ops[j].fields["width"] == 32 and _alu32(ops[j + 1], Arith.AND, r)
            and ops[j + 1].fields["src"] == m and ops[j + 1].fields["width"] == 32):
        return j
    return None


def _drop_undemanded_masks(ops: list) -> list:
    """``x &= M`` goes when only bits M keeps are read before a byte swap consumes x.

    Walking back from ``x = be16 x`` (which reads the low 16 bits) over in-place
    ``+ - * ^ |`` on x (low result bits depend only on low operand bits) and ops
    that leave x alone: a mask keeping those low bits changes nothing that is
    read. clang folds ``(s & 0xffff) + (s >> 16)`` before ``~`` and ``be16`` so.
    """
    drop = {_undemanded_mask(ops, i) for i, op in enumerate(ops)
            if type(op) is Op and op.cls is Endian}
    drop.discard(None)
    if not drop:
        return ops
    return [op for i, op in enumerate(ops) if i not in drop]


def _undemanded_mask(ops: list, i: int) -> int | None:
    """The position of the mask ``_drop_undemanded_masks`` drops for the byte swap ``ops[i]``."""
    op = ops[i]
    if op.fields["bits"] >= 64:  # a 64-bit swap reads every bit
        return None
    r, low = op.fields["dst"], (1 << op.fields["bits"]) - 1
    j = i - 1
    while j >= 0:
        o = ops[j]
        if type(o) is not Op or o.cls in JUMPS or o.cls is Exit or o.clobbers:
            return None
        if r not in o.uses and r not in o.defs:
            j -= 1
            continue
        if not (o.cls is Alu and o.fields["dst"] == r and o.fields["op"] in _LOW_BITS
                and o.fields["src"] != r):
            return None
        if o.fields["op"] is Arith.AND:
            return j if is_imm(o.fields["src"]) and o.fields["src"] & low == low else None
        j -= 1
    return None


_LOW_BITS = (Arith.ADD, Arith.SUB, Arith.MUL, Arith.XOR, Arith.OR, Arith.AND)


def _known_zero_masks(ops: list) -> list:
    """``x &= M`` goes when every bit M clears is already zero in x; ``x ^= -1; x &= M``
    becomes ``x ^= M`` when the bits outside M are (``~x & 0xffff`` of a 16-bit x).

    The bits x may have set come from the ops before, in its basic block
    (``_maybe_ones``): loads and byte swaps zero-extend, 32-bit ALU ops clear
    the upper half, shifts and masks clear what they shift out or mask off.
    """
    out: list = []
    changed = False
    prev = None
    for i, op in enumerate(ops):
        if type(op) is not Op or op.cls is not Alu:
            out.append(op)
            prev = op
            continue
        f = op.fields
        src = f["src"]
        if f["op"] is not _AND or type(src) is not int:
            out.append(op)
            prev = op
            continue
        if _complement_masked(ops, i) and out[-1] is prev:
            if _ones_inside(ops, i):
                out[-1] = Op(Alu, {"op": _XOR, "dst": f["dst"], "src": src, "width": 32},
                             prev.source)  # ~x & M == x ^ M: x has no bits outside M
                changed = True
                prev = op
                continue
        elif redundant_mask(ops, i):
            changed = True  # a 32-bit mask also clears the upper half: that is zero too
            prev = op
            continue
        out.append(op)
        prev = op
    return out if changed else ops


def _complement_masked(ops: list, i: int) -> bool:
    """``ops[i]``, an ``x &= M`` (32-bit), comes right after ``x ^= -1`` (32-bit)."""
    prev, f = ops[i - 1] if i else None, ops[i].fields
    if f["width"] != 32 or type(prev) is not Op or prev.cls is not Alu:
        return False
    g = prev.fields
    return g["op"] is _XOR and g["src"] == -1 and g["dst"] == f["dst"] and g["width"] == 32


def _ones_inside(ops: list, i: int) -> bool:
    """x has no bits set outside M before the ``x ^= -1`` ahead of ``ops[i]`` (``x &= M``)."""
    f = ops[i].fields
    return _maybe_ones(ops, i - 1, f["dst"], _DEPTH) & ~f["src"] & _M32 == 0


def redundant_mask(ops: list, i: int) -> bool:
    """``ops[i]``, an ``x &= M``, clears no bit x may have set (so ``_known_zero_masks``
    drops it); ``straight_line_work`` asks this to know whether the pass has work."""
    f = ops[i].fields
    keep = f["src"] & (_M32 if f["width"] == 32 else _M64)
    return _maybe_ones(ops, i, f["dst"], _DEPTH) & ~keep == 0


_M32 = (1 << 32) - 1
_M64 = (1 << 64) - 1
_DEPTH = 3  # definitions followed back from one mask (a longer chain: unknown bits)
_AND, _XOR, _OR, _MOV, _RSH, _LSH, _ADD, _SUB, _MUL = (
    Arith.AND, Arith.XOR, Arith.OR, Arith.MOV, Arith.RSH, Arith.LSH, Arith.ADD, Arith.SUB, Arith.MUL)
_LE = ByteOrder.LE
_R10 = Reg.R10


def _maybe_ones(ops: list, i: int, r, depth: int) -> int:
    """The bits register ``r`` may have set just before ``ops[i]``, from the ops
    before it in its basic block (all 64 when a label, call or unknown op comes first)."""
    j = i - 1
    while j >= 0:
        op = ops[j]
        if type(op) is not Op:
            return _M64  # a label: other paths join here
        if r in op.defs:
            break
        if op.clobbers and r in op.clobbers:
            return _M64
        j -= 1
    else:
        return _M64
    cls, f = op.cls, op.fields
    if cls is Load:
        return (1 << (8 * f["size"].bytes)) - 1
    if depth == 0:
        return _M64
    if cls is Endian:
        bits = f["bits"]
        m = _maybe_ones(ops, j, r, depth - 1) & ((1 << bits) - 1)
        if f["order"] is _LE:  # a no-op on a little-endian host, then zero-extended
            return m
        return int.from_bytes(m.to_bytes(bits // 8, "little"), "big")
    if cls is LoadImm64:
        return f["imm"] & _M64
    if cls is not Alu:
        return _M64
    w, aop, src = f["width"], f["op"], f["src"]
    mask = _M32 if w == 32 else _M64
    imm = type(src) is int
    if aop is _MOV:
        return src & mask if imm else _maybe_ones(ops, j, src, depth - 1) & mask
    if aop not in _KNOWN:
        return mask
    a = _maybe_ones(ops, j, r, depth - 1) & mask
    if imm:
        b = src & mask
    elif aop is _RSH or aop is _LSH:
        b = mask
    elif a == mask and aop is not _AND:
        return mask  # nothing known of x: nothing known of x + y, x | y ...
    else:
        b = _maybe_ones(ops, j, src, depth - 1) & mask
    if aop is _AND:
        return a & b
    if aop is _OR or aop is _XOR:
        return a | b
    if aop is _RSH:
        return a >> (src & (w - 1)) if type(src) is int else (1 << a.bit_length()) - 1
    if aop is _LSH:
        return (a << (src & (w - 1))) & mask if type(src) is int else mask
    if aop is _ADD:  # a carry reaches one bit past the wider operand
        return ((1 << (max(a.bit_length(), b.bit_length()) + 1)) - 1) & mask
    if aop is _MUL:
        return ((1 << (a.bit_length() + b.bit_length())) - 1) & mask
    return (1 << a.bit_length()) - 1  # DIV, MOD (unsigned): at most the dividend


# the operations (besides moves) whose result bits follow from the operands' (the rest: unknown)
_KNOWN = frozenset((Arith.AND, Arith.OR, Arith.XOR, Arith.RSH, Arith.LSH, Arith.ADD,
                    Arith.MUL, Arith.DIV, Arith.MOD))


def _merge_store_imm(ops: list) -> list:
    """Two stack store-immediates of the same size side by side become one twice as wide
    (``*(u8 *)(r10 - 2) = 6; *(u8 *)(r10 - 1) = 0`` is ``*(u16 *)(r10 - 2) = 6``), up to
    32 bits and aligned, as the verifier wants stack accesses."""
    out: list = []
    for op in ops:
        if type(op) is not Op or op.cls is not StoreImm or not out:
            out.append(op)
            continue
        pair = _store_pair(out[-1], op)
        if pair:
            lo, hi = pair
            size = op.fields["size"]
            bits = 8 * size.bytes
            value = (lo["imm"] & ((1 << bits) - 1)) | ((hi["imm"] & ((1 << bits) - 1)) << bits)
            if value >= 1 << 31:
                value -= 1 << 32
            out[-1] = Op(StoreImm, {"dst": _R10, "imm": value, "off": lo["off"],
                                    "size": _HALVES[size]}, out[-1].source)
            continue
        out.append(op)
    return out if len(out) != len(ops) else ops


_HALVES = {Size.B: Size.H, Size.H: Size.W}


def _store_pair(prev, op) -> tuple | None:
    """The fields of ``prev; op``, lower offset first, when they are stack
    store-immediates of one size (up to 16 bits) that together fill an aligned
    slot twice as wide."""
    if type(prev) is not Op or prev.cls is not StoreImm:
        return None
    f, g = op.fields, prev.fields
    size = f["size"]
    if not (f["dst"] == _R10 and g["dst"] == _R10 and size is g["size"] and size in _HALVES):
        return None
    lo, hi = (g, f) if g["off"] <= f["off"] else (f, g)
    width = size.bytes
    if hi["off"] == lo["off"] + width and lo["off"] % (2 * width) == 0:
        return lo, hi
    return None


def _signed(fields: dict) -> int:
    return fields["src"] if fields["op"] is Arith.ADD else -fields["src"]
