"""The enums built with simple_enum (enum._simple_enum) equal ordinary enum subclasses."""

import enum

import pytest

from pybpf.asm import alu, memory, opcode, register
from pybpf.btf import uapi

SIMPLE = [
    opcode.Class, opcode.Size, opcode.Mode, opcode.Source, opcode.AluOp, opcode.JumpOp,
    opcode.AtomicOp, opcode.Pseudo, opcode.CallKind, opcode.Endianness,
    register.Reg, alu.Arith, alu.ByteOrder, memory.AtomicKind,
    uapi.Kind, uapi.IntEncoding, uapi.FuncLinkage, uapi.VarLinkage,
]


def _declared(simple, value) -> bool:
    """Whether ``value`` (a method, property or classmethod) comes from the class body."""
    func = getattr(value, "fget", None) or getattr(value, "__func__", value)
    return getattr(func, "__qualname__", "").startswith(simple.__qualname__ + ".")


def _ordinary(simple):
    """The same class declared the ordinary way: members, methods and docstring copied."""
    base = simple.__mro__[1]
    ns = enum.EnumType.__prepare__(simple.__name__, (base,))
    ns["__module__"] = simple.__module__
    ns["__qualname__"] = simple.__qualname__
    ns["__doc__"] = simple.__doc__
    for name, value in vars(simple).items():
        if _declared(simple, value) or name == "__hash__":
            ns[name] = value
    for name, member in simple.__members__.items():
        ns[name] = member._value_
    return enum.EnumType(simple.__name__, (base,), ns)


def test_all_listed():
    """Every enum class in these modules is in SIMPLE (a new one gets checked too)."""
    found = {v for m in (opcode, register, alu, memory, uapi) for v in vars(m).values()
             if isinstance(v, enum.EnumType) and v.__module__ == m.__name__ and v.__members__}
    assert found == set(SIMPLE)


@pytest.mark.parametrize("simple", SIMPLE, ids=lambda e: e.__name__)
def test_same_as_ordinary_enum(simple):
    ordinary = _ordinary(simple)
    enum._test_simple_enum(ordinary, simple)  # raises TypeError listing any difference
    for member, twin in zip(simple, ordinary, strict=True):
        assert (member.name, member.value) == (twin.name, twin.value)
        assert repr(member) == repr(twin).replace(f"<{ordinary.__name__}", f"<{simple.__name__}")
        assert str(member) == str(twin) and format(member) == format(twin)
        assert simple(member.value) is member and simple[member.name] is member
        assert vars(simple)[member.name] is member  # a plain class attribute, as ordinary


@pytest.mark.parametrize("simple", SIMPLE, ids=lambda e: e.__name__)
def test_unique(simple):
    """No aliases: ``_simple_enum`` would turn a repeated value into one silently."""
    members = simple.__members__.values()
    assert len({m.value for m in members}) == len(members)


def test_methods_kept():
    assert opcode.Size.DW.bytes == 8 and opcode.Size.of(2) is opcode.Size.H
    assert repr(opcode.JumpOp.JSGT) == "JumpOp.JSGT" and isinstance(opcode.Class.ALU, int)
    assert repr(register.R3) == "R3" and str(register.R3) == "r3" and register.R3.w == "w3"
    assert alu.Arith.MOVSX8.sign_extends and alu.Arith.SDIV.wire == (opcode.AluOp.DIV, 1)
    assert memory.AtomicKind.XCHG.fetches and not memory.AtomicKind.ADD.fetches
    assert hash(alu.Arith.ADD) == object.__hash__(alu.Arith.ADD)
    assert uapi.IntEncoding.SIGNED | uapi.IntEncoding.CHAR == uapi.IntEncoding(3)
