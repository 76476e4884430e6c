"""BTF wire formats (uapi linux/btf.h), declared once with construct.

A BTF blob is a header followed by two sections addressed from the end of
the header::

    +------------+------------------------------+------------------------+
    | btf_header | type section (type_off/len)  | strings (str_off/len)  |
    +------------+------------------------------+------------------------+

Every type record starts with ``struct btf_type`` whose ``info`` word is::

    bit  31        29..30   24..28   16..23   0..15
         kind_flag unused   kind     unused   vlen

and is followed by kind-specific data (one ``btf_array``, ``vlen``
``btf_member``\\ s, ...).  The declarations here are faithful to the wire:
bitfield sizes stay packed in ``btf_member.offset`` and the 64-bit enum value
stays split; ``codec.py`` converts to and from the typed model.

BTF uses the byte order of the machine that made it; only little-endian
BTF (magic 0xeB9F read as little endian) is supported.
"""

from __future__ import annotations

from construct import (
    Array,
    BitsInteger,
    BitStruct,
    Bytes,
    ByteSwapped,
    Const,
    CString,
    Default,
    Flag,
    GreedyRange,
    Int8ul,
    Int16ul,
    Int32sl,
    Int32ul,
    Padding,
    Pass,
    Pointer,
    Rebuild,
    Struct,
    Switch,
    this,
)

from pybpf.btf.uapi import (
    BTF_MAGIC,
    BTF_VERSION,
    FIXED_EXTRA,
    HEADER_SIZE,
    MAX_VLEN,
    PER_VLEN,
    TYPE_SIZE,
    FuncLinkage,
    IntEncoding,
    Kind,
    VarLinkage,
)

__all__ = [
    "BTF_MAGIC", "BTF_VERSION", "FIXED_EXTRA", "MAX_VLEN", "PER_VLEN", "BtfArray", "BtfDeclTag",
    "BtfEnum", "BtfEnum64", "BtfFile", "BtfHeader", "BtfInfo", "BtfIntData", "BtfMember",
    "BtfParam", "BtfStringSection", "BtfType", "BtfTypeSection", "BtfVar", "BtfVarSecinfo",
    "FuncLinkage", "IntEncoding", "Kind", "VLEN_KINDS", "VarLinkage",
]

# struct btf_header
BtfHeader = Struct(
    "magic" / Const(BTF_MAGIC, Int16ul),
    "version" / Default(Int8ul, BTF_VERSION),
    "flags" / Default(Int8ul, 0),
    "hdr_len" / Default(Int32ul, 24),
    "type_off" / Default(Int32ul, 0),
    "type_len" / Rebuild(Int32ul, lambda c: len(c._.type_data)),
    "str_off" / Rebuild(Int32ul, lambda c: c.type_off + c.type_len),
    "str_len" / Rebuild(Int32ul, lambda c: len(c._.str_data)),
)
assert BtfHeader.sizeof() == 24

# A whole BTF blob: header plus the raw bytes of its two sections.  Parse the
# sections themselves with BtfTypeSection and BtfStringSection.
BtfFile = Struct(
    "header" / BtfHeader,
    "type_data" / Pointer(this.header.hdr_len + this.header.type_off,
                          Bytes(this.header.type_len)),
    "str_data" / Pointer(this.header.hdr_len + this.header.str_off,
                         Bytes(this.header.str_len)),
)

# Kinds whose vlen counts the records that follow btf_type.
VLEN_KINDS = frozenset({Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.FUNC_PROTO,
                        Kind.DATASEC, Kind.ENUM64})


def _vlen(c) -> int:
    """vlen is the record count for list kinds, the linkage for FUNC, else given (0)."""
    if c.kind in VLEN_KINDS:
        return len(c._.data)
    return c.get("vlen") or 0


# btf_type.info, a little-endian u32 split into bit fields.
BtfInfo = ByteSwapped(BitStruct(
    "kind_flag" / Flag,
    Padding(2),
    "kind" / BitsInteger(5),
    Padding(8),
    "vlen" / Rebuild(BitsInteger(16), _vlen),
))
assert BtfInfo.sizeof() == 4

# The u32 after a BTF_KIND_INT: encoding, bit offset and bit count.
BtfIntData = ByteSwapped(BitStruct(
    Padding(4),
    "encoding" / BitsInteger(4),
    "offset" / BitsInteger(8),
    Padding(8),
    "bits" / BitsInteger(8),
))
assert BtfIntData.sizeof() == 4

# struct btf_array
BtfArray = Struct("type" / Int32ul, "index_type" / Int32ul, "nelems" / Int32ul)
assert BtfArray.sizeof() == 12

# struct btf_member (offset packs bitfield_size << 24 | bit_offset when kind_flag is set)
BtfMember = Struct("name_off" / Int32ul, "type" / Int32ul, "offset" / Int32ul)
assert BtfMember.sizeof() == 12

# struct btf_enum
BtfEnum = Struct("name_off" / Int32ul, "val" / Int32sl)
assert BtfEnum.sizeof() == 8

# struct btf_enum64
BtfEnum64 = Struct("name_off" / Int32ul, "val_lo32" / Int32ul, "val_hi32" / Int32ul)
assert BtfEnum64.sizeof() == 12

# struct btf_param
BtfParam = Struct("name_off" / Int32ul, "type" / Int32ul)
assert BtfParam.sizeof() == 8

# struct btf_var
BtfVar = Struct("linkage" / Int32ul)
assert BtfVar.sizeof() == 4

# struct btf_var_secinfo
BtfVarSecinfo = Struct("type" / Int32ul, "offset" / Int32ul, "size" / Int32ul)
assert BtfVarSecinfo.sizeof() == 12

# struct btf_decl_tag
BtfDeclTag = Struct("component_idx" / Int32sl)
assert BtfDeclTag.sizeof() == 4

# struct btf_type followed by its kind's data.  ``size_or_type`` is the
# union { size; type; } of the uapi struct.  Unknown kinds parse with no data
# and are rejected by the codec.
BtfType = Struct(
    "name_off" / Int32ul,
    "info" / BtfInfo,
    "size_or_type" / Int32ul,
    "data" / Switch(this.info.kind, {
        Kind.INT: BtfIntData,
        Kind.ARRAY: BtfArray,
        Kind.STRUCT: Array(this.info.vlen, BtfMember),
        Kind.UNION: Array(this.info.vlen, BtfMember),
        Kind.ENUM: Array(this.info.vlen, BtfEnum),
        Kind.FUNC_PROTO: Array(this.info.vlen, BtfParam),
        Kind.VAR: BtfVar,
        Kind.DATASEC: Array(this.info.vlen, BtfVarSecinfo),
        Kind.DECL_TAG: BtfDeclTag,
        Kind.ENUM64: Array(this.info.vlen, BtfEnum64),
    }, Pass),
)

# The type section: records back to back, type id 1 first (id 0 is void).
BtfTypeSection = GreedyRange(BtfType)

# The string section: NUL-terminated strings, the first one empty.  Names
# are byte offsets into it, so readers keep the raw bytes; this declaration
# builds a section from strings and checks a whole section decodes.
BtfStringSection = GreedyRange(CString("utf8"))

# The record sizes pybpf.btf.uapi gives the fast reader and encoder are these declarations'.
assert FIXED_EXTRA == {Kind.INT: BtfIntData.sizeof(), Kind.ARRAY: BtfArray.sizeof(),
                       Kind.VAR: BtfVar.sizeof(), Kind.DECL_TAG: BtfDeclTag.sizeof()}
assert PER_VLEN == {Kind.STRUCT: BtfMember.sizeof(), Kind.UNION: BtfMember.sizeof(),
                    Kind.ENUM: BtfEnum.sizeof(), Kind.FUNC_PROTO: BtfParam.sizeof(),
                    Kind.DATASEC: BtfVarSecinfo.sizeof(), Kind.ENUM64: BtfEnum64.sizeof()}
assert TYPE_SIZE == 12 and HEADER_SIZE == BtfHeader.sizeof()
