"""Structured data types shared by maps, BTF and the DSL.

One declaration describes a value's layout the way C does (natural
alignment, explicit byte order), and knows how to pack a Python value into
bytes and back::

    class FlowKey(Struct):
        saddr: be32
        daddr: be32
        sport: be16
        dport: be16
        proto: u8

    FlowKey.size                          # 16 (padded to 4-byte alignment)
    FlowKey.pack(FlowKey(saddr=1, ...))   # bytes
    u64.pack(7), u64.unpack(b"...")       # scalars work the same way

Every type offers ``size``, ``align``, ``pack(value) -> bytes`` and
``unpack(buffer) -> value``; ``pack`` rejects values that do not fit rather
than truncating them.
"""

from __future__ import annotations

import struct as _struct
import sys

from pybpf._record import record
from pybpf.errors import PyBPFError

TYPE_CHECKING = False  # as typing's: importing typing costs ~5 ms (with re) at start-up
if TYPE_CHECKING:
    from typing import ClassVar


class LayoutError(PyBPFError, TypeError):
    """A value does not fit the declared type."""


@record
class Field:
    """One member of a Struct: its name, type and byte offset."""

    name: str
    type: object
    offset: int


class Type:
    """Base of every layout type (scalars, arrays, bytes, structs)."""

    size: int
    align: int
    name: str

    def pack(self, value) -> bytes:
        raise NotImplementedError

    def unpack(self, buffer):
        raise NotImplementedError


class Scalar(Type):
    """An integer of 1, 2, 4 or 8 bytes, signed or not, little or big endian."""

    # bits and big_endian are read ~1200 times a DSL build: plain slots, set once.
    __slots__ = ("name", "size", "align", "signed", "byteorder", "bits", "big_endian",
                 "_codec", "_min", "_max")

    _CODES = {1: "b", 2: "h", 4: "i", 8: "q"}

    def __init__(self, name: str, size: int, signed: bool, byteorder: str = "little"):
        code = self._CODES[size]
        self.name = name
        self.size = size
        self.align = size
        self.signed = signed
        self.byteorder = byteorder
        self._codec = _struct.Struct(("<" if byteorder == "little" else ">")
                                     + (code if signed else code.upper()))
        bits = self.bits = size * 8
        self.big_endian = byteorder == "big"
        self._min = -(1 << (bits - 1)) if signed else 0
        self._max = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1

    def check(self, value: int) -> int:
        """Return ``value`` if it fits this type, else raise naming the range."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise LayoutError(f"{self.name} needs an int, got {value!r}")
        if not self._min <= value <= self._max:
            raise LayoutError(
                f"value {value} does not fit {self.name} (range {self._min}..{self._max})")
        return value

    def pack(self, value: int) -> bytes:
        return self._codec.pack(self.check(value))

    def unpack(self, buffer) -> int:
        return self._codec.unpack_from(buffer)[0]

    def __repr__(self) -> str:
        return self.name


u8 = Scalar("u8", 1, False)
u16 = Scalar("u16", 2, False)
u32 = Scalar("u32", 4, False)
u64 = Scalar("u64", 8, False)
s8 = Scalar("s8", 1, True)
s16 = Scalar("s16", 2, True)
s32 = Scalar("s32", 4, True)
s64 = Scalar("s64", 8, True)
be16 = Scalar("be16", 2, False, "big")
be32 = Scalar("be32", 4, False, "big")
be64 = Scalar("be64", 8, False, "big")

SCALARS = {t.name: t for t in (u8, u16, u32, u64, s8, s16, s32, s64, be16, be32, be64)}


class Bytes(Type):
    """A fixed-size byte string (``char name[n]``); shorter values are zero-padded."""

    __slots__ = ("size", "align", "name")

    def __init__(self, size: int):
        if size <= 0:
            raise LayoutError(f"Bytes size must be positive, got {size}")
        self.size = size
        self.align = 1
        self.name = f"char[{size}]"

    def pack(self, value) -> bytes:
        if isinstance(value, str):
            value = value.encode()
        value = bytes(value)
        if len(value) > self.size:
            raise LayoutError(f"{len(value)} bytes do not fit {self.name}")
        return value.ljust(self.size, b"\0")

    def unpack(self, buffer) -> bytes:
        return bytes(buffer[: self.size])

    def __eq__(self, other):
        return isinstance(other, Bytes) and other.size == self.size

    def __hash__(self):
        return hash(("Bytes", self.size))

    def __repr__(self) -> str:
        return f"Bytes({self.size})"


class Array(Type):
    """``count`` consecutive elements of one type; packs from and unpacks to a list."""

    __slots__ = ("elem", "count", "size", "align", "name")

    def __init__(self, elem, count: int):
        if count <= 0:
            raise LayoutError(f"Array count must be positive, got {count}")
        self.elem = as_type(elem)
        self.count = count
        self.size = self.elem.size * count
        self.align = self.elem.align
        self.name = f"{self.elem.name}[{count}]"

    def pack(self, value) -> bytes:
        items = list(value)
        if len(items) != self.count:
            raise LayoutError(f"{self.name} needs {self.count} elements, got {len(items)}")
        return b"".join(self.elem.pack(v) for v in items)

    def unpack(self, buffer) -> list:
        step = self.elem.size
        view = memoryview(buffer)
        return [self.elem.unpack(view[i * step:(i + 1) * step]) for i in range(self.count)]

    def __eq__(self, other):
        return isinstance(other, Array) and (other.elem, other.count) == (self.elem, self.count)

    def __hash__(self):
        return hash(("Array", self.elem, self.count))

    def __repr__(self) -> str:
        return f"Array({self.elem!r}, {self.count})"


class StructMeta(type):
    """Computes a Struct subclass's C layout from its annotations."""

    def __new__(mcls, name, bases, namespace, **kwargs):
        cls = super().__new__(mcls, name, bases, namespace, **kwargs)
        if not any(isinstance(b, StructMeta) for b in bases):
            return cls  # the Struct base class itself
        annotations = namespace.get("__annotations__", {})
        fields, offset, align = [], 0, 1
        for fname, ftype in annotations.items():
            if fname.startswith("_") or fname in ("size", "align", "fields"):
                raise LayoutError(
                    f"{name}.{fname}: the name {fname!r} is reserved by pybpf.types.Struct "
                    f"(class attributes size/align/fields, or a leading underscore); "
                    f"rename the field, e.g. {fname.strip('_')}_")
            if isinstance(ftype, str):
                ftype = _resolve_annotation(ftype, namespace)
            ftype = as_type(ftype)
            offset = _round_up(offset, ftype.align)
            fields.append(Field(fname, ftype, offset))
            offset += ftype.size
            align = max(align, ftype.align)
        cls.fields = tuple(fields)
        cls.align = align
        cls.size = _round_up(offset, align)
        cls._by_name = {f.name: f for f in fields}
        return cls

    # Struct classes are types themselves: FlowKey.pack(...), FlowKey.size.
    def pack(cls, value) -> bytes:
        if not isinstance(value, cls):
            value = cls._coerce(value)
        buf = bytearray(cls.size)
        for f in cls.fields:
            data = f.type.pack(getattr(value, f.name))
            buf[f.offset:f.offset + len(data)] = data
        return bytes(buf)

    def unpack(cls, buffer):
        if len(buffer) < cls.size:
            raise LayoutError(f"{cls.__name__} needs {cls.size} bytes, got {len(buffer)}")
        view = memoryview(buffer)
        return cls(**{f.name: f.type.unpack(view[f.offset:f.offset + f.type.size])
                      for f in cls.fields})

    def _coerce(cls, value):
        if isinstance(value, dict):
            return cls(**value)
        if isinstance(value, (tuple, list)):
            return cls(*value)
        raise LayoutError(f"cannot pack {value!r} as {cls.__name__} (give a {cls.__name__}, "
                         "a dict or a tuple)")

    def field(cls, name: str) -> Field:
        """The Field called ``name``, or an error listing the fields there are."""
        try:
            return cls._by_name[name]
        except KeyError:
            known = ", ".join(f.name for f in cls.fields)
            raise LayoutError(f"{cls.__name__} has no field {name!r} (fields: {known})") from None

    @property
    def name(cls) -> str:
        return cls.__name__


class Struct(metaclass=StructMeta):
    """Base for C-layout structs declared with annotations.

    Instances hold plain Python values; missing fields default to zero
    (or zero bytes / a list of zeros).
    """

    fields: ClassVar[tuple[Field, ...]] = ()
    size: ClassVar[int] = 0
    align: ClassVar[int] = 1

    def __init__(self, *args, **kwargs):
        cls = type(self)
        if len(args) > len(cls.fields):
            raise LayoutError(f"{cls.__name__} has {len(cls.fields)} fields, got {len(args)} values")
        for f, v in zip(cls.fields, args, strict=False):
            kwargs.setdefault(f.name, v)
        for f in cls.fields:
            value = kwargs.pop(f.name) if f.name in kwargs else _zero(f.type)
            object.__setattr__(self, f.name, value)
        if kwargs:
            cls.field(next(iter(kwargs)))  # raises naming the unknown field

    def __eq__(self, other):
        return type(other) is type(self) and all(
            getattr(self, f.name) == getattr(other, f.name) for f in self.fields)

    def __hash__(self):
        return hash(tuple(_freeze(getattr(self, f.name)) for f in self.fields))

    def __iter__(self):
        return (getattr(self, f.name) for f in self.fields)

    def __repr__(self) -> str:
        inner = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in self.fields)
        return f"{type(self).__name__}({inner})"


def as_type(t):
    """Accept a layout type (Scalar, Bytes, Array, Struct subclass) or its name."""
    if isinstance(t, str) and t in SCALARS:
        return SCALARS[t]
    if isinstance(t, Type) or isinstance(t, StructMeta):
        return t
    raise LayoutError(f"{t!r} is not a pybpf type (use u8..u64, s8..s64, be16..be64, "
                     "Bytes(n), Array(t, n) or a Struct subclass)")


def _resolve_annotation(text: str, namespace: dict):
    """A field type written as text (``from __future__ import annotations``), evaluated where
    the class is: its body, then its module's globals (partly run while the class is made)."""
    if text in SCALARS:
        return SCALARS[text]
    module = sys.modules.get(namespace.get("__module__", ""))
    scope = {**globals(), **(vars(module) if module is not None else {})}
    try:
        return eval(text, scope, dict(namespace))
    except Exception as e:
        raise LayoutError(f"cannot resolve field type {text!r}: {e}") from None


def _zero(t):
    if isinstance(t, Scalar):
        return 0
    if isinstance(t, Bytes):
        return bytes(t.size)
    if isinstance(t, Array):
        return [_zero(t.elem) for _ in range(t.count)]
    return t()


def _freeze(v):
    return tuple(_freeze(x) for x in v) if isinstance(v, list) else v


def _round_up(n: int, align: int) -> int:
    return (n + align - 1) // align * align
