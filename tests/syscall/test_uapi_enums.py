"""The generated IntEnums (built with enum._simple_enum) equal ordinary IntEnums."""

import enum

import pytest

from pybpf.syscall import _uapi

_uapi.HelperId  # noqa: B018 - built on first use; make it before listing the module
INT_ENUMS = [v for v in vars(_uapi).values()
             if isinstance(v, enum.EnumType) and issubclass(v, enum.IntEnum)]


def test_all_found():
    names = {e.__name__ for e in INT_ENUMS}
    assert {"Cmd", "MapType", "ProgType", "AttachType", "LinkType", "HelperId"} <= names


@pytest.mark.parametrize("simple", INT_ENUMS, ids=lambda e: e.__name__)
def test_same_as_ordinary_int_enum(simple):
    members = {name: int(value) for name, value in simple.__members__.items()}
    ordinary = enum.IntEnum(simple.__name__, members, module=_uapi.__name__)
    ordinary.__doc__ = simple.__doc__
    enum._test_simple_enum(simple, ordinary)  # raises TypeError listing any difference
    first = next(iter(simple))
    assert simple(int(first)) is first and simple[first.name] is first
    assert repr(first) == f"<{simple.__name__}.{first.name}: {int(first)}>"
    assert isinstance(first, int) and first == int(first)
