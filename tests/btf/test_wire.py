"""The construct declarations: sizes, uapi constants and round trips."""

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pybpf.btf import ext, wire

UAPI = Path("/usr/include/linux/btf.h")
u32 = st.integers(0, 2**32 - 1)


@pytest.mark.skipif(not UAPI.exists(), reason="needs linux uapi headers")
def test_kinds_match_uapi_header():
    text = UAPI.read_text()
    found = {name: int(v) for name, v in re.findall(r"BTF_KIND_(\w+)\s*=\s*(\d+)", text)}
    assert found == {k.name: k.value for k in wire.Kind}


def test_record_sizes_match_uapi():
    assert wire.BtfHeader.sizeof() == 24
    assert wire.BtfMember.sizeof() == wire.BtfArray.sizeof() == 12
    assert wire.BtfEnum.sizeof() == wire.BtfParam.sizeof() == 8
    assert ext.BpfFuncInfo.sizeof() == 8
    assert ext.BpfLineInfo.sizeof() == ext.BpfCoreRelo.sizeof() == 16


def test_info_word_bit_layout():
    raw = wire.BtfType.build({"name_off": 0, "info": {"kind": 4, "kind_flag": True},
                              "size_or_type": 8, "data": [{"name_off": 0, "type": 1,
                                                           "offset": 0}]})
    assert int.from_bytes(raw[4:8], "little") == 1 << 31 | 4 << 24 | 1


def test_int_word_bit_layout():
    raw = wire.BtfIntData.build({"encoding": 1, "offset": 3, "bits": 17})
    assert int.from_bytes(raw, "little") == 1 << 24 | 3 << 16 | 17


def test_line_col_packs_line_over_column():
    raw = ext.LineCol.build({"line": 5, "col": 7})
    assert int.from_bytes(raw, "little") == 5 << 10 | 7


@given(u32, u32, u32)
def test_btf_file_round_trip(hdr_extra, a, b):
    types, strings = a.to_bytes(4, "little"), b"\0" + bytes([65 + b % 26]) + b"\0"
    blob = wire.BtfFile.build({"header": {}, "type_data": types, "str_data": strings})
    parsed = wire.BtfFile.parse(blob)
    assert (parsed.type_data, parsed.str_data) == (types, strings)
    assert parsed.header.type_len == 4 and parsed.header.str_off == 4


TEXT = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)),
               max_size=6)


@given(st.lists(TEXT, max_size=5))
def test_string_section_round_trip(texts):
    texts = ["", *texts]
    assert wire.BtfStringSection.parse(wire.BtfStringSection.build(texts)) == texts


RECORDS = {
    ext.BpfFuncInfo: st.fixed_dictionaries({"insn_off": u32, "type_id": u32}),
    ext.BpfLineInfo: st.fixed_dictionaries({
        "insn_off": u32, "file_name_off": u32, "line_off": u32,
        "line_col": st.fixed_dictionaries({"line": st.integers(0, 2**22 - 1),
                                           "col": st.integers(0, 1023)})}),
    ext.BpfCoreRelo: st.fixed_dictionaries({"insn_off": u32, "type_id": u32,
                                            "access_str_off": u32, "kind": u32}),
    wire.BtfArray: st.fixed_dictionaries({"type": u32, "index_type": u32, "nelems": u32}),
    wire.BtfMember: st.fixed_dictionaries({"name_off": u32, "type": u32, "offset": u32}),
    wire.BtfEnum: st.fixed_dictionaries({"name_off": u32,
                                         "val": st.integers(-(2**31), 2**31 - 1)}),
    wire.BtfEnum64: st.fixed_dictionaries({"name_off": u32, "val_lo32": u32, "val_hi32": u32}),
    wire.BtfParam: st.fixed_dictionaries({"name_off": u32, "type": u32}),
    wire.BtfVar: st.fixed_dictionaries({"linkage": u32}),
    wire.BtfVarSecinfo: st.fixed_dictionaries({"type": u32, "offset": u32, "size": u32}),
    wire.BtfDeclTag: st.fixed_dictionaries({"component_idx": st.integers(-(2**31), 2**31 - 1)}),
    wire.BtfIntData: st.fixed_dictionaries({"encoding": st.integers(0, 15),
                                            "offset": st.integers(0, 255),
                                            "bits": st.integers(0, 255)}),
}


@pytest.mark.parametrize("fmt", list(RECORDS), ids=lambda f: repr(f)[:40])
@given(data=st.data())
def test_record_round_trip(fmt, data):
    value = data.draw(RECORDS[fmt])
    raw = fmt.build(value)
    assert len(raw) == fmt.sizeof()
    assert fmt.build(fmt.parse(raw)) == raw
    parsed = fmt.parse(raw)
    assert {k: parsed[k] for k in value} == value


def _section(record_strategy):
    return st.fixed_dictionaries({"sections": st.lists(st.fixed_dictionaries({
        "sec_name_off": u32, "records": st.lists(record_strategy, max_size=3)}), max_size=3)})


@given(_section(RECORDS[ext.BpfFuncInfo]), _section(RECORDS[ext.BpfLineInfo]),
       _section(RECORDS[ext.BpfCoreRelo]))
def test_btf_ext_round_trip(funcs, lines, relos):
    parts = {"func_info": ext.FuncInfoSection.build(funcs),
             "line_info": ext.LineInfoSection.build(lines),
             "core_relo": ext.CoreReloSection.build(relos)}
    blob = ext.BtfExt.build({"header": {}, **parts})
    parsed = ext.BtfExt.parse(blob)
    assert {k: parsed[k] for k in parts} == parts
    for fmt, key, want in ((ext.FuncInfoSection, "func_info", funcs),
                           (ext.LineInfoSection, "line_info", lines),
                           (ext.CoreReloSection, "core_relo", relos)):
        got = fmt.parse(parsed[key])
        assert [[_plain(r) for r in s.records] for s in got.sections] == \
            [s["records"] for s in want["sections"]]
        assert fmt.build(got) == parts[key]


def _plain(value):
    """A parsed container as plain dicts, without construct's private keys."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not k.startswith("_")}
    return value


def test_btf_ext_reads_larger_records():
    # A newer producer's 12-byte func_info records: the known 8 bytes are read.
    raw = (12).to_bytes(4, "little") + b"".join(
        x.to_bytes(4, "little") for x in (1, 1, 16, 7, 0xFFFF))
    parsed = ext.FuncInfoSection.parse(raw)
    assert parsed.sections[0].records[0].type_id == 7
