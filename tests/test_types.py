"""pybpf.types: C layout, checked packing, and names a Struct cannot take."""

import importlib

import pytest

from pybpf.types import Array, Bytes, LayoutError, Struct, be16, be32, s8, u8, u16, u32, u64


class Key(Struct):
    saddr: be32
    daddr: be32
    sport: be16
    dport: be16
    proto: u8


def test_c_layout_with_padding_and_byte_order():
    assert (Key.size, Key.align) == (16, 4)
    assert [f.offset for f in Key.fields] == [0, 4, 8, 10, 12]
    raw = Key.pack(Key(saddr=0x0A000001, dport=80, proto=6))
    assert raw == bytes.fromhex("0a000001 00000000 0000 0050 06 000000")
    assert Key.unpack(raw) == Key(saddr=0x0A000001, dport=80, proto=6)


def test_nested_arrays_bytes_and_dict_or_tuple_values():
    class Outer(Struct):
        key: Key
        ports: Array(u16, 3)
        name: Bytes(5)
        total: u64

    assert Outer.size == 40 and Outer.field("total").offset == 32
    v = Outer.unpack(Outer.pack({"ports": [1, 2, 3], "name": "ab", "total": 9}))
    assert v.ports == [1, 2, 3] and v.name == b"ab\0\0\0" and v.total == 9
    assert Outer.pack(Outer(total=1)) == Outer.pack((Key(), [0, 0, 0], b"", 1))


@pytest.mark.parametrize("t, value", [(u8, 256), (u8, -1), (s8, 128), (be16, 1 << 16),
                                      (u32, 1.5), (u32, True)])
def test_values_that_do_not_fit_are_refused(t, value):
    with pytest.raises(LayoutError):
        t.pack(value)


def test_too_long_bytes_and_wrong_array_length_are_refused():
    with pytest.raises(LayoutError, match="6 bytes do not fit char"):
        Bytes(5).pack(b"abcdef")
    with pytest.raises(LayoutError, match="needs 3 elements, got 2"):
        Array(u16, 3).pack([1, 2])


@pytest.mark.parametrize("field", ["size", "align", "fields", "_pad"])
def test_reserved_field_names_are_an_error_not_silently_dropped(field):
    with pytest.raises(LayoutError, match=f"the name '{field}' is reserved"):
        type("Bad", (Struct,), {"__annotations__": {"a": u32, field: u32}})


def test_unknown_field_names_the_fields_there_are():
    with pytest.raises(LayoutError, match=r"Key has no field 'port' \(fields: saddr, daddr"):
        Key(port=1)


def test_field_types_under_postponed_annotations_resolve_in_the_module(tmp_path, monkeypatch):
    # with ``from __future__ import annotations`` a field type is text: names from the
    # class's own module (here an alias) must resolve, not only pybpf.types' names
    (tmp_path / "postponed_layout.py").write_text(
        "from __future__ import annotations\n"
        "from pybpf.types import Array as Words, Struct, be32, u32\n"
        "class Key(Struct):\n"
        "    prefixlen: u32\n"
        "    addr: Words(be32, 4)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    key = importlib.import_module("postponed_layout").Key
    assert [f.name for f in key.fields] == ["prefixlen", "addr"]
    assert key.size == 20
