"""program_btf: FUNC records, func_info and line_info records (no kernel needed)."""

import pytest

from pybpf.btf import codec
from pybpf.btf import model as m
from pybpf.btf.ext import FuncInfoArray, LineInfoArray
from pybpf.btf.program import SourcePos, program_btf
from pybpf.btf.strings import string_at
from pybpf.errors import BTFError

A = SourcePos("prog.py", 10, 4, "x = 1\n")
B = SourcePos("prog.py", 11, 4, "y = 2")
C = SourcePos("lib.py", 3, 0, "return y")


def decode(pb):
    spec = codec.parse(pb.btf)
    funcs = [(spec.type(r.type_id), r.insn_off) for r in FuncInfoArray.parse(pb.func_info)]
    lines = [(r.insn_off, string_at(spec.strings, r.file_name_off),
              string_at(spec.strings, r.line_off), r.line_col.line, r.line_col.col)
             for r in LineInfoArray.parse(pb.line_info)]
    return spec, funcs, lines


def test_functions_become_func_and_proto():
    pb = program_btf([("sub", 4), ("main", 0)], [], args={"sub": 3})
    spec, funcs, _ = decode(pb)
    (main, at0), (sub, at4) = funcs
    assert (main.name, at0, main.linkage) == ("main", 0, m.FuncLinkage.GLOBAL)
    assert (sub.name, at4, sub.linkage) == ("sub", 4, m.FuncLinkage.STATIC)
    assert [p.name for p in spec.type(sub.type).params] == ["arg1", "arg2", "arg3"]
    assert spec.type(main.type).params[0].name == "ctx"
    assert pb.func_type_ids == {"main": spec.find("main")[0], "sub": spec.find("sub")[0]}
    assert (pb.func_info_rec_size, pb.line_info_rec_size) == (8, 16)


def test_line_info_only_where_the_position_changes():
    pb = program_btf([("main", 0)], [(0, A), (1, A), (2, B), (3, B), (5, A)])
    _, _, lines = decode(pb)
    assert lines == [(0, "prog.py", "x = 1", 10, 4), (2, "prog.py", "y = 2", 11, 4),
                     (5, "prog.py", "x = 1", 10, 4)]


def test_every_function_start_gets_a_line_record():
    # insn 3 starts "sub" with the same position as insn 2: a record is still needed there;
    # "other" at 6 has no position of its own and borrows its first one (insn 7).
    pb = program_btf([("main", 0), ("sub", 3), ("other", 6)],
                     [(0, A), (2, C), (3, C), (7, B)])
    _, _, lines = decode(pb)
    assert [x[0] for x in lines] == [0, 2, 3, 6, 7]


@pytest.mark.parametrize("functions, message", [
    ([], "at least its main"),
    ([("main", 2)], "must start at insn 0"),
    ([("main", 0), ("main", 3)], "listed twice"),
    ([("main", 0), ("f", 0)], "two functions start"),
    ([("bad-name", 0)], "not a C identifier"),
])
def test_bad_function_lists(functions, message):
    with pytest.raises(BTFError, match=message):
        program_btf(functions, [])


def test_bad_lines():
    with pytest.raises(BTFError, match="does not fit bpf_line_info"):
        program_btf([("main", 0)], [(0, SourcePos("p.py", 1 << 22))])
    with pytest.raises(BTFError, match="two source positions"):
        program_btf([("main", 0)], [(0, A), (0, B)])
    with pytest.raises(BTFError, match="0..5"):
        program_btf([("main", 0), ("f", 1)], [], args={"f": 6})


def test_wide_columns_are_recorded_as_unknown():
    _, _, lines = decode(program_btf([("main", 0)], [(0, SourcePos("p.py", 1, 5000, "x"))]))
    assert lines[0][4] == 0
