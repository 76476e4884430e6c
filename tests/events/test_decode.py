"""Record decoding helpers of the event readers: generated builders, the paused collector."""

import gc
import struct

import pytest

from pybpf.errors import PyBPFError
from pybpf.syscall.events import flat_codec, gc_paused, object_builder
from pybpf.types import Bytes, Struct, u16, u32, u64


class Rec(Struct):
    seq: u64
    port: u16
    tag: Bytes(6)
    count: u32


def test_builder_makes_equal_instances_without_init():
    codec, names = flat_codec(Rec)
    rows = [codec.unpack(Rec.pack(Rec(i, 80 + i, b"abcdef", 3 * i))) for i in range(5)]
    built = object_builder(Rec, names)(iter(rows))
    assert built == [Rec(i, 80 + i, b"abcdef", 3 * i) for i in range(5)]
    assert all(type(r) is Rec for r in built)
    assert vars(built[2]) == {"seq": 2, "port": 82, "tag": b"abcdef", "count": 6}
    assert repr(built[1]) == "Rec(seq=1, port=81, tag=b'abcdef', count=3)"


def test_builder_bypasses_class_attributes_of_the_same_name():
    class Odd(Struct):
        value: u32

    Odd.value = property(lambda self: "descriptor")  # a store would fail without a setter
    row = (7,)
    (obj,) = object_builder(Odd, ("value",))([row])
    assert obj.__dict__ == {"value": 7}


def test_builder_rejects_names_that_are_not_identifiers():
    with pytest.raises(PyBPFError):
        object_builder(Rec, ("class",))
    with pytest.raises(PyBPFError):
        object_builder(Rec, ("a-b",))


def test_gc_paused_restores_the_collector_state():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()


def test_flat_codec_layout_matches_pack():
    codec, names = flat_codec(Rec)
    assert codec.size == Rec.size
    assert names == ("seq", "port", "tag", "count")
    assert codec.unpack(Rec.pack(Rec(1, 2, b"x" * 6, 4))) == (1, 2, b"x" * 6, 4)
    assert struct.calcsize(codec.format) == Rec.size
