"""The fast encoder (emit.py) against the construct declarations (codec.encode, ext.py)."""

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pybpf.btf
from pybpf.btf import codec, emit
from pybpf.btf import model as m
from pybpf.btf.ext import FuncInfoArray, LineInfoArray
from pybpf.btf.strings import StringTable
from pybpf.errors import BTFError

from .strategies import type_graphs
from .test_codec import _shift

# Values around and past every field's limit (u32, s32, 4/8/16-bit fields).
edgy = st.sampled_from([-1, 0, 1, 15, 16, 255, 256, 0xFFFF, 0x10000, 2**24, 2**31 - 1, 2**31,
                        2**32 - 1, 2**32, 2**63, 2**64])
names = st.sampled_from(["", "a", "x_1", "\u00e9t\u00e9", "\udcff"])


def _outcome(encode, types, **kw):
    try:
        return encode(types, **kw)
    except BTFError:
        return BTFError


@settings(max_examples=60, deadline=None)
@given(type_graphs())
def test_same_bytes_as_construct(types):
    data = emit.encode(types)
    assert data == codec.encode(types)
    spec = codec.parse(data)
    assert emit.encode(spec.types, strings=spec.strings) == data


@settings(max_examples=40, deadline=None)
@given(type_graphs(6), type_graphs(6))
def test_same_split_btf_as_construct(base_types, split_types):
    base = codec.parse(codec.encode(base_types))
    shifted = [_shift(t, len(base_types)) for t in split_types]
    assert emit.encode(shifted, base=base) == codec.encode(shifted, base=base)


@st.composite
def odd_records(draw):
    """Records with values at and beyond the wire limits (and names that are not UTF-8)."""
    n, v = draw(names), draw(edgy)
    members = st.lists(st.builds(m.Member, names, edgy, edgy, st.sampled_from([0, 3, 255, 256])),
                       max_size=2).map(tuple)
    return draw(st.sampled_from([
        m.Int(n, v, draw(edgy), draw(st.sampled_from([0, 1, 4, 15, 16])), draw(edgy)),
        m.Ptr(v), m.Array(v, draw(edgy), draw(edgy)),
        m.Struct(n, v, draw(members), draw(st.booleans())),
        m.Enum(n, 4, (m.EnumValue("a", v),), draw(st.booleans())),
        m.Enum64(n, 8, (m.EnumValue("a", v),), draw(st.booleans())),
        m.Func(n, v, draw(st.sampled_from([0, 2, 3, 0xFFFF, 0x10000]))),
        m.FuncProto(v, (m.Param(n, draw(edgy)),)), m.Var(n, v, draw(edgy)),
        m.Datasec(n, v, (m.VarSecinfo(draw(edgy), draw(edgy), draw(edgy)),)),
        m.DeclTag(n, v, draw(edgy), draw(st.booleans())), m.Float(n, v),
    ]))


@settings(max_examples=300, deadline=None)
@given(st.lists(odd_records(), min_size=1, max_size=3))
def test_rejects_what_construct_rejects(types):
    assert _outcome(emit.encode, types) == _outcome(codec.encode, types)


def test_vlen_limit():
    big = m.Struct("s", 4, tuple(m.Member(f"m{i}", 0, 0) for i in range(0x10000)))
    with pytest.raises(BTFError, match="at most 65535"):
        emit.encode([big])


def test_not_a_record():
    with pytest.raises(BTFError, match="not a BTF type record"):
        emit.encode([m.Member("x", 0, 0)])


@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)), max_size=5))
def test_func_info_array(records):
    expected = FuncInfoArray.build([{"insn_off": a, "type_id": b} for a, b in records])
    assert emit.func_info_array(records) == expected


u32 = st.integers(0, 2**32 - 1)


@given(st.lists(st.tuples(u32, u32, u32, st.integers(0, 2**22 - 1), st.integers(0, 1023)),
                max_size=5))
def test_line_info_array(records):
    expected = LineInfoArray.build([
        {"insn_off": a, "file_name_off": f, "line_off": o, "line_col": {"line": ln, "col": c}}
        for a, f, o, ln, c in records])
    assert emit.line_info_array(records) == expected


def test_line_info_limits():
    with pytest.raises(BTFError, match="does not fit bpf_line_info"):
        emit.line_info_array([(0, 0, 0, 2**22, 0)])
    with pytest.raises(BTFError, match="does not fit bpf_line_info"):
        emit.line_info_array([(0, 0, 0, 1, 1024)])


def test_string_table_rejects_non_utf8():
    with pytest.raises(BTFError, match="not valid UTF-8"):
        StringTable().add("\udcff")


def test_load_path_does_not_import_construct():
    code = ("import sys\n"
            "from pybpf import types as t\n"
            "from pybpf.btf import map_btf, program_btf\n"
            "from pybpf.asm.program import SourcePos\n"
            "map_btf(t.u32, t.u64)\n"
            "program_btf([('main', 0)], [(0, SourcePos('p.py', 1, 0, 'x'))])\n"
            "print(sorted(m for m in ('construct', 'pycparser') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_exported_name_resolves():
    for name in pybpf.btf.__all__:
        assert getattr(pybpf.btf, name) is not None, name
    assert pybpf.btf.parse is codec.parse
    with pytest.raises(AttributeError):
        pybpf.btf.no_such_name  # noqa: B018
