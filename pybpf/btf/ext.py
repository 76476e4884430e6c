"""BTF.ext wire formats: func_info, line_info and CO-RE relocation records.

Two containers carry these records:

* the ``.BTF.ext`` ELF section (``struct btf_ext_header``, then per-section
  groups: ``rec_size``, and for each ELF section its name offset, record
  count and records; there ``insn_off`` counts bytes), and
* the flat arrays that BPF_PROG_LOAD takes in ``func_info`` / ``line_info``
  (``insn_off`` counts instructions; the record size goes in
  ``func_info_rec_size`` / ``line_info_rec_size``).

``bpf_line_info.line_col`` packs the line and column::

    bit 31 .......... 10 9 ....... 0
        line number        column
"""

from __future__ import annotations

import enum

from construct import (
    Array,
    BitsInteger,
    BitStruct,
    Bytes,
    ByteSwapped,
    Const,
    Default,
    FixedSized,
    GreedyRange,
    If,
    Int8ul,
    Int16ul,
    Int32ul,
    Pointer,
    Rebuild,
    Struct,
    len_,
    this,
)

from pybpf.btf.uapi import BTF_MAGIC, FUNC_INFO_SIZE, LINE_INFO_SIZE, MAX_COLUMN, MAX_LINE

__all__ = [
    "MAX_COLUMN", "MAX_LINE", "BpfCoreRelo", "BpfFuncInfo", "BpfLineInfo", "BtfExt",
    "BtfExtHeader", "CoreReloKind", "CoreReloSection", "FuncInfoArray", "FuncInfoSection",
    "InfoSection", "LineCol", "LineInfoArray", "LineInfoSection",
]


@enum.unique
class CoreReloKind(enum.IntEnum):
    """enum bpf_core_relo_kind (uapi linux/bpf.h): what a CO-RE relocation adjusts."""

    FIELD_BYTE_OFFSET = 0
    FIELD_BYTE_SIZE = 1
    FIELD_EXISTS = 2
    FIELD_SIGNED = 3
    FIELD_LSHIFT_U64 = 4
    FIELD_RSHIFT_U64 = 5
    TYPE_ID_LOCAL = 6
    TYPE_ID_TARGET = 7
    TYPE_EXISTS = 8
    TYPE_SIZE = 9
    ENUMVAL_EXISTS = 10
    ENUMVAL_VALUE = 11
    TYPE_MATCHES = 12


# struct bpf_func_info
BpfFuncInfo = Struct("insn_off" / Int32ul, "type_id" / Int32ul)
assert BpfFuncInfo.sizeof() == FUNC_INFO_SIZE == 8

# bpf_line_info.line_col
LineCol = ByteSwapped(BitStruct("line" / BitsInteger(22), "col" / BitsInteger(10)))
assert LineCol.sizeof() == 4

# struct bpf_line_info
BpfLineInfo = Struct(
    "insn_off" / Int32ul,
    "file_name_off" / Int32ul,
    "line_off" / Int32ul,
    "line_col" / LineCol,
)
assert BpfLineInfo.sizeof() == LINE_INFO_SIZE == 16

# struct bpf_core_relo
BpfCoreRelo = Struct(
    "insn_off" / Int32ul,
    "type_id" / Int32ul,
    "access_str_off" / Int32ul,
    "kind" / Int32ul,
)
assert BpfCoreRelo.sizeof() == 16

# The flat arrays BPF_PROG_LOAD takes.
FuncInfoArray = GreedyRange(BpfFuncInfo)
LineInfoArray = GreedyRange(BpfLineInfo)


def InfoSection(record):
    """One .BTF.ext info block: rec_size, then (sec_name_off, num_info, records) groups.

    Records longer than ``record`` (a newer producer) are read up to its size.
    """
    return Struct(
        "rec_size" / Rebuild(Int32ul, record.sizeof()),
        "sections" / GreedyRange(Struct(
            "sec_name_off" / Int32ul,
            "num_info" / Rebuild(Int32ul, len_(this.records)),
            "records" / Array(this.num_info, FixedSized(this._.rec_size, record)),
        )),
    )


FuncInfoSection = InfoSection(BpfFuncInfo)
LineInfoSection = InfoSection(BpfLineInfo)
CoreReloSection = InfoSection(BpfCoreRelo)

# struct btf_ext_header (the core_relo fields exist when hdr_len >= 32)
BtfExtHeader = Struct(
    "magic" / Const(BTF_MAGIC, Int16ul),
    "version" / Default(Int8ul, 1),
    "flags" / Default(Int8ul, 0),
    "hdr_len" / Default(Int32ul, 32),
    "func_info_off" / Rebuild(Int32ul, 0),
    "func_info_len" / Rebuild(Int32ul, lambda c: len(c._.func_info)),
    "line_info_off" / Rebuild(Int32ul, lambda c: c.func_info_off + c.func_info_len),
    "line_info_len" / Rebuild(Int32ul, lambda c: len(c._.line_info)),
    "core_relo_off" / If(this.hdr_len >= 32, Rebuild(
        Int32ul, lambda c: c.line_info_off + c.line_info_len)),
    "core_relo_len" / If(this.hdr_len >= 32, Rebuild(Int32ul, lambda c: len(c._.core_relo))),
)

# A whole .BTF.ext: header plus the raw bytes of each info block, parsed
# further with FuncInfoSection, LineInfoSection and CoreReloSection.
BtfExt = Struct(
    "header" / BtfExtHeader,
    "func_info" / Pointer(this.header.hdr_len + this.header.func_info_off,
                          Bytes(this.header.func_info_len)),
    "line_info" / Pointer(this.header.hdr_len + this.header.line_info_off,
                          Bytes(this.header.line_info_len)),
    "core_relo" / Pointer(this.header.hdr_len + (this.header.core_relo_off or 0),
                          Bytes(this.header.core_relo_len or 0)),
)
assert len(BtfExt.build({"header": {}, "func_info": b"", "line_info": b"", "core_relo": b""})) == 32
