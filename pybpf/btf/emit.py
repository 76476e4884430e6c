"""Fast BTF encoder for the load path: struct.pack, no construct.

``wire.py``/``ext.py`` declare the formats once with construct and
``codec.encode`` builds through them; that declaration is the reference.
Importing construct and building through it costs a fresh process tens of
milliseconds before its first BPF_PROG_LOAD, so the builder, map and program
BTF use this encoder instead.  Tests check that for random type graphs it
produces exactly the bytes ``codec.encode`` does and rejects what it rejects.

The ``btf_type.info`` word and the u32 after a BTF_KIND_INT::

    info:  bit 31 kind_flag | 28..24 kind | 15..0 vlen
    int:   bits 27..24 encoding | 23..16 offset | 7..0 bits

``bpf_line_info.line_col`` is ``line << 10 | column``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from pybpf.btf import model as m
from pybpf.btf.spec import Spec
from pybpf.btf.strings import StringTable
from pybpf.btf.uapi import (
    BTF_MAGIC,
    BTF_VERSION,
    HEADER_SIZE,
    MAX_COLUMN,
    MAX_LINE,
    MAX_VLEN,
)
from pybpf.errors import BTFError

_HEADER = struct.Struct("<HBBIIIII")  # struct btf_header
_TYPE = struct.Struct("<III")  # struct btf_type
_U32 = struct.Struct("<I")
_S32 = struct.Struct("<i")
_PAIR = struct.Struct("<II")  # btf_param, bpf_func_info
_NAMED_S32 = struct.Struct("<Ii")  # btf_enum
_TRIPLE = struct.Struct("<III")  # btf_array, btf_member, btf_var_secinfo, btf_enum64
_LINE_INFO = struct.Struct("<IIII")  # bpf_line_info

_REFERENCE_KINDS = m.REFERENCE_KINDS


def encode(types: Sequence[m.Type], *, strings: bytes | None = None,
           base: Spec | None = None) -> bytes:
    """Encode ``types`` (ids first_id, first_id+1, ...) as a BTF blob.

    The same contract and bytes as ``codec.encode``: ``strings`` seeds the
    string section, ``base`` makes split BTF whose strings follow the base's.
    """
    table = StringTable(strings if strings is not None else b"\0",
                        len(base.strings) if base else 0)
    out: list[bytes] = []
    try:
        for t in types:
            _type(t, table, out)
    except struct.error as e:
        raise BTFError(f"cannot encode BTF: {e}") from e
    type_data = b"".join(out)
    str_data = table.data
    header = _HEADER.pack(BTF_MAGIC, BTF_VERSION, 0, HEADER_SIZE, 0, len(type_data),
                          len(type_data), len(str_data))
    return header + type_data + str_data


def _type(t: m.Type, strings: StringTable, out: list[bytes]) -> None:
    """Append ``t``'s btf_type and kind data to ``out`` (strings added in codec's order)."""
    if not hasattr(t, "kind"):
        raise BTFError(f"{t!r} is not a BTF type record")
    name_off = strings.add(t.name) if hasattr(t, "name") else 0
    kind, kflag, vlen, st = int(t.kind), False, 0, 0
    extra: list[bytes] = []
    if isinstance(t, _REFERENCE_KINDS):
        st, kflag = t.type, getattr(t, "kflag", False)
    elif isinstance(t, m.Int):
        st = t.size
        _bits(t, "encoding", int(t.encoding), 4)
        _bits(t, "offset", t.offset, 8)
        _bits(t, "bits", t.bits, 8)
        extra.append(_U32.pack(int(t.encoding) << 24 | t.offset << 16 | t.bits))
    elif isinstance(t, m.Array):
        extra.append(_TRIPLE.pack(t.type, t.index_type, t.nelems))
    elif isinstance(t, (m.Struct, m.Union)):
        st, kflag, vlen = t.size, t.kflag, len(t.members)
        extra.extend(_TRIPLE.pack(strings.add(x.name), x.type, member_offset(t, x))
                     for x in t.members)
    elif isinstance(t, m.Enum):
        st, kflag, vlen = t.size, t.signed, len(t.values)
        extra.extend(_NAMED_S32.pack(strings.add(x.name), enum32(t, x)) for x in t.values)
    elif isinstance(t, m.Enum64):
        st, kflag, vlen = t.size, t.signed, len(t.values)
        for x in t.values:
            v = x.value & (2**64 - 1)
            extra.append(_TRIPLE.pack(strings.add(x.name), v & 0xFFFFFFFF, v >> 32))
    elif isinstance(t, m.Fwd):
        kflag = t.union
    elif isinstance(t, m.Func):
        st, vlen = t.type, int(t.linkage)
        _bits(t, "linkage", vlen, 16)
    elif isinstance(t, m.FuncProto):
        st, vlen = t.return_type, len(t.params)
        extra.extend(_PAIR.pack(strings.add(p.name), p.type) for p in t.params)
    elif isinstance(t, m.Var):
        st = t.type
        extra.append(_U32.pack(int(t.linkage)))
    elif isinstance(t, m.Datasec):
        st, vlen = t.size, len(t.vars)
        extra.extend(_TRIPLE.pack(v.type, v.offset, v.size) for v in t.vars)
    elif isinstance(t, m.Float):
        st = t.size
    elif isinstance(t, m.DeclTag):
        st, kflag = t.type, t.kflag
        extra.append(_S32.pack(t.component_idx))
    else:
        raise BTFError(f"{t!r} is not a BTF type record")
    if vlen > MAX_VLEN:
        raise BTFError(f"{type(t).__name__} {m.type_name(t)!r} has {vlen} "
                       f"members/values; BTF allows at most {MAX_VLEN}")
    out.append(_TYPE.pack(name_off, (1 << 31 if kflag else 0) | kind << 24 | vlen, st))
    out.extend(extra)


def _bits(t: m.Type, what: str, value: int, width: int) -> None:
    if not 0 <= value < 1 << width:
        raise BTFError(f"cannot encode BTF: {type(t).__name__} {m.type_name(t)!r} {what} "
                       f"{value} does not fit {width} bits")


def member_offset(t: m.Struct | m.Union, x: m.Member) -> int:
    """btf_member.offset: the bit offset, with the bitfield size in bits 24..31 when kflag."""
    if t.kflag:
        if not (0 <= x.bit_offset < 1 << 24 and 0 <= x.bitfield_size < 256):
            raise BTFError(f"member {x.name!r} of {t.name!r}: bit offset {x.bit_offset} or "
                           f"bitfield size {x.bitfield_size} does not fit (24 and 8 bits)")
        return x.bitfield_size << 24 | x.bit_offset
    if x.bitfield_size:
        raise BTFError(f"member {x.name!r} of {t.name!r} is a bitfield; set kflag=True")
    return x.bit_offset


def enum32(t: m.Enum, x: m.EnumValue) -> int:
    """btf_enum.val (an s32 on the wire) for an enumerator of a signed or unsigned ENUM."""
    lo, hi = (-(1 << 31), (1 << 31) - 1) if t.signed else (0, (1 << 32) - 1)
    if not lo <= x.value <= hi:
        raise BTFError(f"enumerator {x.name}={x.value} does not fit a 32-bit "
                       f"{'signed' if t.signed else 'unsigned'} ENUM; use Enum64")
    return x.value - (1 << 32) if x.value >= 1 << 31 else x.value


def func_info_array(records: Iterable[tuple[int, int]]) -> bytes:
    """bpf_func_info records (insn_off, type_id) back to back, as BPF_PROG_LOAD takes them."""
    try:
        return b"".join(_PAIR.pack(insn, type_id) for insn, type_id in records)
    except struct.error as e:
        raise BTFError(f"cannot encode bpf_func_info: {e}") from e


def line_info_array(records: Iterable[tuple[int, int, int, int, int]]) -> bytes:
    """bpf_line_info records from (insn_off, file_name_off, line_off, line, column)."""
    out = []
    for insn, file_off, line_off, line, col in records:
        if not (0 <= line <= MAX_LINE and 0 <= col <= MAX_COLUMN):
            raise BTFError(f"line {line} column {col} does not fit bpf_line_info "
                           f"(0..{MAX_LINE}, 0..{MAX_COLUMN})")
        try:
            out.append(_LINE_INFO.pack(insn, file_off, line_off, line << 10 | col))
        except struct.error as e:
            raise BTFError(f"cannot encode bpf_line_info: {e}") from e
    return b"".join(out)
