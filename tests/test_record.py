"""pybpf._record: the dataclass stand-in behaves like ``@dataclass(frozen=True, slots=True)``."""

import copy
import pickle
from typing import ClassVar

import pytest

from pybpf._record import FrozenRecordError, field, fields, record, replace


@record
class Point:
    kind: ClassVar[str] = "point"
    x: int
    y: int = 0


@record
class Point3(Point):
    z: int = 0

    def __post_init__(self):
        if self.z < 0:
            raise ValueError(f"z {self.z} < 0")


@record(frozen=False, slots=False)
class Bag:
    items: list = field(default_factory=list)
    secret: str = field(default="s", repr=False)


def test_fields_defaults_and_classvars():
    assert fields(Point) == ("x", "y")
    assert fields(Point3(1)) == ("x", "y", "z")
    assert Point(1) == Point(1, 0) == Point(x=1, y=0)
    assert Point.kind == "point" and Point(1).kind == "point"
    with pytest.raises(TypeError):
        Point()


def test_equality_hash_and_repr():
    assert Point(1, 2) != Point(2, 1)
    assert Point(1, 2) != Point3(1, 2)          # different classes never compare equal
    assert hash(Point(1, 2)) == hash(Point(1, 2))
    assert len({Point(1, 2), Point(1, 2), Point(2, 2)}) == 2
    assert repr(Point3(1, 2, 3)) == "Point3(x=1, y=2, z=3)"
    assert repr(Bag()) == "Bag(items=[])"      # repr=False hides a field


def test_frozen_and_slots():
    p = Point(1)
    with pytest.raises(FrozenRecordError, match="'x' of a frozen Point"):
        p.x = 2
    with pytest.raises(FrozenRecordError):
        del p.y
    with pytest.raises(AttributeError):
        object.__setattr__(p, "other", 1)      # no __dict__: slots only
    assert Point3.__slots__ == ("z",)           # the base's slots are not repeated


def test_post_init_runs_on_construction_and_replace():
    with pytest.raises(ValueError, match="z -1"):
        Point3(1, 2, -1)
    q = replace(Point3(1, 2, 3), y=5)
    assert q == Point3(1, 5, 3)
    with pytest.raises(ValueError):
        replace(q, z=-1)


def test_mutable_record_factories_are_per_instance():
    a, b = Bag(), Bag()
    a.items.append(1)
    assert b.items == [] and a != b
    a.items.clear()
    assert a == b
    with pytest.raises(TypeError):
        hash(a)                                  # mutable + eq: unhashable, like a dataclass


def test_copy_and_pickle_of_frozen_records():
    p = Point3(1, 2, 3)
    assert copy.copy(p) == p and copy.deepcopy(p) == p
    assert pickle.loads(pickle.dumps(p)) == p


def test_required_field_after_default_is_an_error():
    with pytest.raises(TypeError, match="'b' without a default"):
        @record
        class Bad:
            a: int = 0
            b: int

    with pytest.raises(TypeError, match="'b' without a default"):
        @record(frozen=False)
        class BadFactory:
            a: list = field(default_factory=list)
            b: int


def test_init_compiled_on_first_construction():
    @record
    class Late:
        a: int
        b: int = 2

    class Sub(Late):
        pass

    deferred = Late.__init__
    assert Sub(1) == Sub(1, 2) and Sub(1).b == 2   # a subclass constructs first
    assert Late.__init__ is not deferred and Late.__init__.__qualname__.endswith("Late.__init__")
    assert Late(a=3).a == 3
    with pytest.raises(TypeError):
        Late()
