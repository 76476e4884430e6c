"""Typed pointers: fields of structs on the stack, in packets, in map values.

``ptr.field`` loads a field (sign-extending for signed types, raw for
big-endian ones); ``ptr.field = v`` stores; nested structs and arrays give
further pointers. Each pointer knows its region, so the builder can refuse,
at build time, a packet access beyond the checked range or a map value used
outside its null check.
"""

from __future__ import annotations

from pybpf.asm import Alu, Arith, Atomic, AtomicKind, Load, LoadSX, Reg
from pybpf.dsl.ir import ACCESS_SIZE
from pybpf.dsl.values import DSLError, Value
from pybpf.types import Array, Bytes, Scalar, StructMeta, u8

_set = object.__setattr__
# (struct type, name) -> (field type, offset) of the fields read through a Ptr: a
# read is then one lookup, not the computed-attribute test and the struct's field table.
_FIELDS: dict = {}


class computed:
    """A value derived from a header's fields, read like a field (``ip.ihl``, ``tcp.syn``).

    Declared in a Struct body: ``ihl = computed(lambda h: h.ver_ihl & 0xF)``.
    """

    def __init__(self, fn):
        self.fn = fn


class Region:
    """Where a pointer points; ``check(off, size)`` refuses invalid accesses."""

    name = "memory"

    def check(self, b, off: int, size: int) -> None:
        pass


class StackRegion(Region):
    name = "stack"


class MapValueRegion(Region):
    """A map value returned by a lookup: valid only inside its null check."""

    name = "map value"

    def __init__(self, map_name: str):
        self.map_name = map_name
        self.valid = True

    def check(self, b, off: int, size: int) -> None:
        if not self.valid:
            raise b.error(f"value of map {self.map_name!r} used outside the `with ... lookup()` "
                          "block that checked it for NULL")


class Ptr:
    """A pointer to a value of a pybpf type at ``base + off``."""

    __slots__ = ("_b", "_type", "_base", "_off", "_region")

    def __init__(self, b, t, base, off: int, region: Region):
        _set(self, "_b", b)  # past __setattr__, which stores to the pointee
        _set(self, "_type", t)
        _set(self, "_base", base)
        _set(self, "_off", off)
        _set(self, "_region", region)

    @property
    def type(self):
        """The pointee's type (or the field ``type``, when the pointee struct has one: ICMP)."""
        if "type" in _field_names(self._type):
            return self._at_field("type")
        return self._type

    def __bool__(self):
        raise DSLError("a DSL pointer has no truth value at build time", self._b.where())

    # -- struct fields --------------------------------------------------------------------

    def _field(self, name: str):
        t = self._type
        if not isinstance(t, StructMeta):
            raise self._b.error(f"{t.name} is not a struct; it has no field {name!r}")
        try:
            return t.field(name)
        except Exception as e:
            raise self._b.error(str(e)) from None

    def __getattr__(self, name: str):
        t = self._type
        field = _FIELDS.get((t, name))
        if field is None:
            if name.startswith("__"):
                raise AttributeError(name)
            derived = getattr(t, name, None)
            if isinstance(derived, computed):
                return derived.fn(self)
            field = self._layout(name)
        return self._at(field[0], self._off + field[1])

    def __setattr__(self, name: str, value) -> None:
        t, off = _FIELDS.get((self._type, name)) or self._layout(name)
        if not isinstance(t, Scalar):
            raise self._b.error(f"field {name!r} is a {t.name}; assign its fields one by one")
        self._store(t, self._off + off, value)

    def _layout(self, name: str) -> tuple:
        """The (type, offset) of field ``name``, kept in _FIELDS unless a computed value
        has the same name (a read then computes it)."""
        t = self._type
        f = self._field(name)
        field = (f.type, f.offset)
        if not isinstance(getattr(t, name, None), computed):
            _FIELDS[t, name] = field
        return field

    def _at(self, t, off: int):
        if isinstance(t, Scalar):
            return self._load(t, off)
        if isinstance(t, (Array, Bytes)):
            return ArrayPtr(self._b, t, self._base, off, self._region)
        return Ptr(self._b, t, self._base, off, self._region)

    # -- raw access -----------------------------------------------------------------------

    def _load(self, t: Scalar, off: int) -> Value:
        self._region.check(self._b, off, t.size)
        dst = self._b.new_vreg(t.name)
        cls = LoadSX if t.signed and t.bits < 64 else Load
        self._b.emit(cls, dst=dst, src=self._base, off=off, size=ACCESS_SIZE[t.size])
        return FieldValue(self._b, t, dst, self, off)

    def _store(self, t: Scalar, off: int, value) -> None:
        self._region.check(self._b, off, t.size)
        self._b.store_value(self._base, off, t, value)

    # -- whole-value access (scalar pointees) ------------------------------------------------

    @property
    def value(self) -> Value:
        """Load the pointee (a scalar), or the field ``value`` of a struct that has one."""
        if "value" in _field_names(self._type):
            return self._at_field("value")
        if not isinstance(self._type, Scalar):
            raise self._b.error(f"{self._type.name} is not a scalar; read its fields")
        return self._load(self._type, self._off)

    def set(self, value) -> None:
        """Store into the pointee (a scalar)."""
        if not isinstance(self._type, Scalar):
            raise self._b.error(f"{self._type.name} is not a scalar; assign its fields")
        self._store(self._type, self._off, value)

    def atomic_add(self, value, *, fetch: bool = False) -> Value | None:
        """``lock *ptr += value`` (32 or 64-bit pointee); with fetch=True returns the old value."""
        return self._atomic(AtomicKind.FETCH_ADD if fetch else AtomicKind.ADD, value)

    def atomic_or(self, value, *, fetch: bool = False):
        return self._atomic(AtomicKind.FETCH_OR if fetch else AtomicKind.OR, value)

    def atomic_and(self, value, *, fetch: bool = False):
        return self._atomic(AtomicKind.FETCH_AND if fetch else AtomicKind.AND, value)

    def atomic_xor(self, value, *, fetch: bool = False):
        return self._atomic(AtomicKind.FETCH_XOR if fetch else AtomicKind.XOR, value)

    def _atomic(self, kind: AtomicKind, value):
        t = self._type
        if not isinstance(t, Scalar) or t.bits not in (32, 64) or t.big_endian:
            raise self._b.error(f"atomic operations need a u32/u64 pointee, not {t.name}")
        self._region.check(self._b, self._off, t.size)
        b = self._b
        v = b.coerce(value, t)
        src = b.new_vreg("atomic")
        if v.is_const:
            b.load_const(src, v.loc, t)
        else:
            b.emit(Alu, op=Arith.MOV, dst=src, src=v.loc, width=64)
        b.emit(Atomic, op=kind, dst=self._base, src=src, off=self._off, size=ACCESS_SIZE[t.size])
        return Value(b, t, src) if kind.fetches else None

    def view(self, t, offset: int = 0):
        """The memory ``offset`` bytes into this pointee seen as type ``t`` (still bounds-checked)."""
        from pybpf.types import as_type
        t = as_type(t)
        off = self._off + offset
        if isinstance(t, (Array, Bytes)):
            return ArrayPtr(self._b, t, self._base, off, self._region)
        return Ptr(self._b, t, self._base, off, self._region)

    def address(self):
        """A register holding this pointer's address (for helper arguments)."""
        b = self._b
        if self._off == 0 and self._base is not Reg.R10:
            return self._base
        dst = b.new_vreg("addr")
        b.emit(Alu, op=Arith.MOV, dst=dst, src=self._base, width=64)
        if self._off:
            b.emit(Alu, op=Arith.ADD, dst=dst, src=self._off, width=64)
        return dst

    @property
    def size(self) -> int:
        """The pointee's size in bytes (or the field ``size`` of a struct that has one)."""
        if "size" in _field_names(self._type):
            return self._at_field("size")
        return self._type.size

    def _at_field(self, name: str):
        f = self._field(name)
        return self._at(f.type, self._off + f.offset)


class FieldValue(Value):
    """A scalar just loaded from memory, which still knows where it came from.

    It is an ordinary value, and ``ptr.count.atomic_add(1)`` works on the
    field itself (the load, if unused, is removed when the program is finished).
    The field's pointer is made only then: most loaded values are just used.
    """

    __slots__ = ("_holder", "_off")

    def __init__(self, b, t, loc, holder: Ptr, off: int):
        # Value.__init__ for a register (never a constant), without the call.
        self.b = b
        self.type = t
        self.loc = loc
        self.is_const = False
        self.hi = None
        self._holder = holder  # the pointer whose field (at ``off``) this is
        self._off = off

    @property
    def ptr(self) -> Ptr:
        """A pointer to the field."""
        holder = self._holder
        return Ptr(self.b, self.type, holder._base, self._off, holder._region)

    def atomic_add(self, value, *, fetch: bool = False):
        """``lock *field += value``; with fetch=True returns the old value."""
        return self.ptr.atomic_add(value, fetch=fetch)

    def atomic_or(self, value, *, fetch: bool = False):
        return self.ptr.atomic_or(value, fetch=fetch)

    def atomic_and(self, value, *, fetch: bool = False):
        return self.ptr.atomic_and(value, fetch=fetch)

    def atomic_xor(self, value, *, fetch: bool = False):
        return self.ptr.atomic_xor(value, fetch=fetch)


def _field_names(t) -> frozenset:
    return frozenset(f.name for f in t.fields) if isinstance(t, StructMeta) else frozenset()


class ArrayPtr(Ptr):
    """A pointer to an Array or Bytes field; index with a constant."""

    __slots__ = ()

    def __getitem__(self, index: int):
        t = self._type
        elem = t.elem if isinstance(t, Array) else u8
        count = t.count if isinstance(t, Array) else t.size
        if not isinstance(index, int):
            raise self._b.error("array index must be a constant int (variable indices need "
                                "explicit pointer arithmetic and bounds checks)")
        if not 0 <= index < count:
            raise self._b.error(f"index {index} is outside {t.name} (0..{count - 1})")
        return self._at(elem, self._off + index * elem.size)

    def __setitem__(self, index: int, value) -> None:
        t = self._type
        elem = t.elem if isinstance(t, Array) else u8
        count = t.count if isinstance(t, Array) else t.size
        if not isinstance(index, int) or not 0 <= index < count:
            raise self._b.error(f"index {index!r} is outside {t.name} (0..{count - 1})")
        if not isinstance(elem, Scalar):
            raise self._b.error(f"elements of {t.name} are structs; assign their fields")
        self._store(elem, self._off + index * elem.size, value)
