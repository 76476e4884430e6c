"""Type model <-> bytes: round trips of random type graphs and checked parsing."""

import struct

import pytest
from hypothesis import given, settings

from pybpf._record import replace
from pybpf.btf import codec, reader
from pybpf.btf import model as m
from pybpf.btf.builder import Builder
from pybpf.errors import BTFError

from .strategies import type_graphs


@settings(max_examples=80, deadline=None)
@given(type_graphs())
def test_random_type_graphs_round_trip(types):
    data = codec.encode(types)
    assert codec.parse(data).types == tuple(types)
    assert reader.read(data).types == tuple(types)
    assert codec.encode(codec.parse(data).types, strings=codec.parse(data).strings) == data


@settings(max_examples=30, deadline=None)
@given(type_graphs(6), type_graphs(6))
def test_split_btf_round_trip(base_types, split_types):
    # Split BTF ids continue after the base; shift the split graph's references.
    n = len(base_types)
    shifted = [_shift(t, n) for t in split_types]
    base_data = codec.encode(base_types)
    base = codec.parse(base_data)
    data = codec.encode(shifted, base=base)
    assert codec.parse(data, base=base).types == tuple(shifted)
    assert reader.read(data, base=base_data).types == tuple(shifted)


def _shift(t, n):
    """``t`` with every referenced id moved up by ``n`` (void stays 0)."""
    def s(i):
        return i + n if i else 0
    if isinstance(t, (m.Struct, m.Union)):
        return type(t)(t.name, t.size, tuple(m.Member(x.name, s(x.type), x.bit_offset,
                                                       x.bitfield_size) for x in t.members),
                       t.kflag)
    if isinstance(t, m.FuncProto):
        return m.FuncProto(s(t.return_type), tuple(m.Param(p.name, s(p.type)) for p in t.params))
    if isinstance(t, m.Datasec):
        return m.Datasec(t.name, t.size, tuple(m.VarSecinfo(s(v.type), v.offset, v.size)
                                              for v in t.vars))
    if isinstance(t, m.Array):
        return m.Array(s(t.type), s(t.index_type), t.nelems)
    if hasattr(t, "type"):
        return replace(t, type=s(t.type))
    return t


def test_builder_deduplicates_and_handles_cycles():
    b = Builder()
    i = b.add(m.Int("int", 4, 32, m.IntEncoding.SIGNED))
    assert b.add(m.Int("int", 4, 32, m.IntEncoding.SIGNED)) == i
    node = b.reserve()
    ptr = b.add(m.Ptr(node))
    b.fill(node, m.Struct("node", 16, (m.Member("next", ptr, 0), m.Member("v", i, 64))))
    spec = codec.parse(b.encode())
    assert spec.type(node).members[0].type == ptr and spec.type(ptr).type == node
    assert len(spec) == 3


def test_builder_rejects_unknown_ids_and_unfilled_reservations():
    b = Builder()
    with pytest.raises(BTFError, match="does not exist yet"):
        b.add(m.Ptr(5))
    b.reserve()
    with pytest.raises(BTFError, match="never filled"):
        b.encode()


def _blob(type_data: bytes, strings: bytes = b"\0a\0") -> bytes:
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(type_data), len(type_data),
                      len(strings))
    return hdr + type_data + strings


def _rec(name_off, kind, vlen, st, kflag=0, extra=b""):
    return struct.pack("<III", name_off, kflag << 31 | kind << 24 | vlen, st) + extra


BAD = {
    "unknown BTF kind 25": _blob(_rec(0, 25, 0, 0)),
    "kind_flag set on INT": _blob(_rec(1, 1, 0, 4, kflag=1, extra=struct.pack("<I", 32))),
    "vlen 2 on PTR": _blob(_rec(0, 2, 2, 0)),
    "PTR must not have a name": _blob(_rec(1, 2, 0, 0)),
    "refers to type id 7": _blob(_rec(0, 2, 0, 7)),
    "string offset 99": _blob(_rec(99, 8, 0, 0)),
    "trailing bytes|bad BTF type section|truncated": _blob(_rec(0, 2, 0, 0) + b"\0\0\0\0"),
    "bad BTF header|bad BTF magic": b"\xeb\x9f" + b"\0" * 30,
    "FUNC linkage 3": _blob(_rec(1, 12, 3, 0)),
}


@pytest.mark.parametrize("message", list(BAD))
def test_bad_btf_is_rejected_by_both_readers(message):
    with pytest.raises(BTFError, match=message):
        codec.parse(BAD[message])
    if message.startswith(("kind_flag", "vlen", "PTR must", "FUNC linkage")):
        return  # encoding-level checks the fast reader leaves to codec.parse and the kernel
    with pytest.raises(BTFError):
        reader.read(BAD[message])


def test_section_past_end_is_rejected():
    blob = _blob(_rec(0, 2, 0, 0))
    with pytest.raises(BTFError):
        codec.parse(blob[:-1])
    with pytest.raises(BTFError):
        reader.read(blob[:-1])


def test_encode_rejects_values_that_do_not_fit():
    with pytest.raises(BTFError, match="use Enum64"):
        codec.encode([m.Enum("e", 4, (m.EnumValue("BIG", 1 << 33),))])
    with pytest.raises(BTFError, match="set kflag=True"):
        codec.encode([m.Int("int", 4, 32), m.Struct("s", 4, (m.Member("x", 1, 0, 3),))])
