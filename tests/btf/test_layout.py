"""BTF for pybpf.types: kernel spellings of scalars, arrays and structs."""

import pytest

from pybpf import types as lt
from pybpf.btf import codec
from pybpf.btf import model as m
from pybpf.btf.builder import Builder
from pybpf.btf.layout import add_type, map_btf
from pybpf.errors import BTFError


class Inner(lt.Struct):
    a: lt.u8
    b: lt.s32


class Outer(lt.Struct):
    inner: Inner
    port: lt.be16
    data: lt.Bytes(6)
    vals: lt.Array(lt.s64, 3)


def chain(spec, tid):
    """Names along a typedef chain down to the INT."""
    names = []
    while True:
        t = spec.type(tid)
        names.append(t.name)
        if not isinstance(t, m.Typedef):
            return names
        tid = t.type


@pytest.mark.parametrize("scalar, names, signed", [
    (lt.u8, ["__u8", "unsigned char"], False),
    (lt.u16, ["__u16", "short unsigned int"], False),
    (lt.u32, ["__u32", "unsigned int"], False),
    (lt.u64, ["__u64", "long long unsigned int"], False),
    (lt.s8, ["__s8", "signed char"], True),
    (lt.s16, ["__s16", "short int"], True),
    (lt.s32, ["__s32", "int"], True),
    (lt.s64, ["__s64", "long long int"], True),
    (lt.be16, ["__be16", "__u16", "short unsigned int"], False),
    (lt.be32, ["__be32", "__u32", "unsigned int"], False),
    (lt.be64, ["__be64", "__u64", "long long unsigned int"], False),
])
def test_scalars_use_kernel_typedefs(scalar, names, signed):
    b = Builder()
    tid = add_type(b, scalar)
    spec = codec.parse(b.encode())
    assert chain(spec, tid) == names
    base = spec.type(spec.find(names[-1])[0])
    assert base.size == scalar.size and base.bits == scalar.size * 8
    assert bool(base.encoding & m.IntEncoding.SIGNED) == signed


def test_struct_layout_matches_pybpf_types():
    mb = map_btf(lt.u32, Outer)
    spec = codec.parse(mb.btf)
    outer = spec.type(mb.value_type_id)
    assert (outer.name, outer.size) == ("Outer", Outer.size)
    assert [(x.name, x.bit_offset // 8) for x in outer.members] == \
        [(f.name, f.offset) for f in Outer.fields]
    inner = spec.type(outer.members[0].type)
    assert [(x.name, x.bit_offset) for x in inner.members] == [("a", 0), ("b", 32)]
    data = spec.type(outer.members[2].type)
    assert data.nelems == 6 and spec.type(data.type).name == "char"
    vals = spec.type(outer.members[3].type)
    assert vals.nelems == 3 and spec.type(vals.index_type).name == "__ARRAY_SIZE_TYPE__"


def test_shared_types_are_deduplicated():
    b = Builder()
    assert add_type(b, Outer) == add_type(b, Outer)
    assert add_type(b, lt.u32) == add_type(b, "u32")
    names = [getattr(t, "name", "") for t in b.types]
    assert names.count("__s32") == 1


def test_non_types_are_rejected():
    with pytest.raises(lt.LayoutError):
        add_type(Builder(), 42)
    with pytest.raises(BTFError):
        Builder().add("not a type")
