"""Straight-line peepholes on allocated code: ``rX += a; rX += b`` merged, masks
that change nothing a byte swap or checksum fold reads dropped, neighbouring
stack store-immediates merged into one twice as wide.
"""

from __future__ import annotations

from pybpf.asm import (
    Alu,
    Arith,
    Endian,
    Exit,
    Reg,
    Size,
    StoreImm,
)
from pybpf.dsl.ir import Op, is_imm
from pybpf.dsl.jumps import JUMPS


def straight_line(ops: list) -> list:
    """The straight-line peepholes, in order (merges, then masks, then stores)."""
    ops = _merge_alu(ops)
    ops = _fold_masks(ops)
    ops = _drop_undemanded_masks(ops)
    return _merge_store_imm(ops)


_MERGEABLE = {Arith.ADD, Arith.SUB}


def _merge_alu(ops: list) -> list:
    """``rX += a; rX += b`` (or -=) with nothing between becomes ``rX += a + b``."""
    out: list = []
    for op in ops:
        if type(op) is not Op or op.cls is not Alu or not out:
            out.append(op)
            continue
        prev = out[-1]
        if (type(prev) is Op and prev.cls is Alu
                and op.fields["op"] in _MERGEABLE and prev.fields["op"] in _MERGEABLE
                and op.fields["dst"] == prev.fields["dst"] and op.fields["width"] == prev.fields["width"]
                and is_imm(op.fields["src"]) and is_imm(prev.fields["src"])):
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
            while (j < n and type(ops[j]) is Op and ops[j].cls not in JUMPS
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
    return out if len(out) != n else ops


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
            if type(o) is not Op or o.cls in JUMPS or o.cls is Exit or o.clobbers:
                break
            if r not in o.uses and r not in o.defs:
                j -= 1
                continue
            if not (o.cls is Alu and o.fields["dst"] == r and o.fields["op"] in _LOW_BITS
                    and o.fields["src"] != r):
                break
            if o.fields["op"] is Arith.AND:
                if is_imm(o.fields["src"]) and o.fields["src"] & low == low:
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
        if type(op) is not Op or op.cls is not StoreImm or not out:
            out.append(op)
            continue
        prev = out[-1]
        if (type(prev) is Op and prev.cls is StoreImm
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
    return out if len(out) != len(ops) else ops


_HALVES = {Size.B: Size.H, Size.H: Size.W}


def _signed(fields: dict) -> int:
    return fields["src"] if fields["op"] is Arith.ADD else -fields["src"]
