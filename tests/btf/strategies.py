"""Hypothesis strategies for BTF records and whole type graphs."""

from hypothesis import strategies as st

from pybpf.btf import model as m
from pybpf.btf.wire import FuncLinkage, IntEncoding, VarLinkage

u32 = st.integers(0, 2**32 - 1)
names = st.text(st.sampled_from("abcdefgh_XYZ019"), max_size=8)
idents = st.from_regex(r"[a-z_][a-z0-9_]{0,7}", fullmatch=True)


def type_record(ids: st.SearchStrategy[int]) -> st.SearchStrategy[m.Type]:
    """Any one BTF record whose references are drawn from ``ids``."""
    members = st.tuples(names, ids, st.integers(0, 2**24 - 1), st.integers(0, 255))
    plain_members = st.tuples(names, ids, u32)

    def struct_like(cls):
        with_bits = st.builds(lambda n, s, ms: cls(n, s, tuple(m.Member(*x) for x in ms), True),
                              names, u32, st.lists(members, max_size=4))
        plain = st.builds(lambda n, s, ms: cls(n, s, tuple(m.Member(*x) for x in ms), False),
                          names, u32, st.lists(plain_members, max_size=4))
        return with_bits | plain

    values32 = st.lists(st.tuples(names, st.integers(0, 2**32 - 1)), max_size=4)
    values32s = st.lists(st.tuples(names, st.integers(-(2**31), 2**31 - 1)), max_size=4)
    values64 = st.lists(st.tuples(names, st.integers(0, 2**64 - 1)), max_size=4)
    values64s = st.lists(st.tuples(names, st.integers(-(2**63), 2**63 - 1)), max_size=4)

    def enum(cls, values, signed):
        return st.builds(lambda n, s, vs: cls(n, s, tuple(m.EnumValue(*v) for v in vs), signed),
                         names, st.sampled_from([1, 2, 4, 8]), values)

    return st.one_of(
        st.builds(m.Int, names, st.sampled_from([1, 2, 4, 8, 16]), st.integers(0, 128),
                  st.sampled_from(list(IntEncoding)), st.integers(0, 255)),
        st.builds(m.Ptr, ids), st.builds(m.Array, ids, ids, u32),
        struct_like(m.Struct), struct_like(m.Union),
        enum(m.Enum, values32, False), enum(m.Enum, values32s, True),
        enum(m.Enum64, values64, False), enum(m.Enum64, values64s, True),
        st.builds(m.Fwd, names, st.booleans()), st.builds(m.Typedef, names, ids),
        st.builds(m.Volatile, ids), st.builds(m.Const, ids), st.builds(m.Restrict, ids),
        st.builds(m.Func, names, ids, st.sampled_from(list(FuncLinkage))),
        st.builds(m.FuncProto, ids, st.lists(st.builds(m.Param, names, ids),
                                             max_size=4).map(tuple)),
        st.builds(m.Var, names, ids, st.sampled_from(list(VarLinkage))),
        st.builds(m.Datasec, names, u32, st.lists(st.builds(m.VarSecinfo, ids, u32, u32),
                                                  max_size=4).map(tuple)),
        st.builds(m.Float, names, st.sampled_from([2, 4, 8, 12, 16])),
        st.builds(m.DeclTag, names, ids, st.integers(-1, 2**31 - 1), st.booleans()),
        st.builds(m.TypeTag, names, ids, st.booleans()),
    )


@st.composite
def type_graphs(draw, max_types: int = 12) -> list[m.Type]:
    """A list of records (ids 1..n) whose references stay within 0..n (cycles allowed)."""
    n = draw(st.integers(1, max_types))
    return [draw(type_record(st.integers(0, n))) for _ in range(n)]
