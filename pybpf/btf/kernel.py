"""The running kernel's BTF: /sys/kernel/btf/vmlinux and module BTF.

pybpf assembles on the machine that runs the program, so it can read field
offsets straight from the kernel's own BTF instead of relocating them at
load time (what CO-RE does for compiled objects).  Only the types asked for
are decoded: ``struct("sk_buff")`` costs the one-pass index plus a handful
of records, not the ~130k types of vmlinux.
"""

from __future__ import annotations

import functools
import os

from pybpf._record import record
from pybpf.btf import model as m
from pybpf.btf.reader import TypeIndex
from pybpf.errors import BTFError

SYSFS_BTF = "/sys/kernel/btf"
_QUALIFIERS = (m.Typedef, m.Volatile, m.Const, m.Restrict, m.TypeTag)


@record
class FieldLayout:
    """One member of a struct or union as the running kernel lays it out."""

    name: str
    offset: int
    bit_offset: int
    bitfield_size: int
    size: int
    type_id: int
    type_name: str

    @property
    def is_bitfield(self) -> bool:
        """True for ``unsigned x:3``-style members (load and mask to read them)."""
        return self.bitfield_size != 0


@record
class StructLayout:
    """A struct or union of the running kernel: size, id and members in order."""

    name: str
    kind: str
    type_id: int
    size: int
    fields: tuple[FieldLayout, ...]
    _btf: KernelBTF

    def field(self, path: str) -> FieldLayout:
        """The member at ``path`` ("len", "tstamp", "hdr.saddr"), looking through anonymous
        unions and structs the way C does; offsets are from the start of this struct."""
        found = self._btf._member_path(self.type_id, path.split("."), 0)
        if found is None:
            raise BTFError(f"{self.kind} {self.name} has no member {path!r}")
        return found

    def offsetof(self, path: str) -> int:
        """Byte offset of ``path``; raises for bitfields (use ``field(path).bit_offset``)."""
        f = self.field(path)
        if f.is_bitfield or f.bit_offset % 8:
            raise BTFError(f"{self.name}.{path} is a bitfield at bit {f.bit_offset}; "
                           "read it with field(path).bit_offset and bitfield_size")
        return f.offset


@record
class FuncInfo:
    """A kernel function (BTF_KIND_FUNC): its BTF id, signature and linkage."""

    name: str
    type_id: int
    return_type: str
    params: tuple[tuple[str, str], ...]
    linkage: m.FuncLinkage


class KernelBTF:
    """Lazy lookups in one kernel BTF blob (vmlinux, or a module split on vmlinux)."""

    def __init__(self, index: TypeIndex, name: str = "vmlinux"):
        self.index = index
        self.name = name

    @classmethod
    def load(cls, path: str | os.PathLike = f"{SYSFS_BTF}/vmlinux",
             base: KernelBTF | None = None) -> KernelBTF:
        """Index the BTF file at ``path`` (split on ``base`` for a module)."""
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise BTFError(f"cannot read kernel BTF {path}: {e.strerror} "
                           "(needs CONFIG_DEBUG_INFO_BTF)") from e
        return cls(TypeIndex(data, base.index if base else None),
                   os.path.basename(os.fspath(path)))

    def type_id(self, name: str, kind: type | tuple[type, ...] | None = None) -> int:
        """The id of the type called ``name`` (of model class ``kind`` if given)."""
        ids = self.index.ids_named(name)
        if kind is not None:
            ids = [i for i in ids if isinstance(self.index.type(i), kind)]
        if not ids:
            what = kind.__name__ if isinstance(kind, type) else "type"
            raise BTFError(f"no {what} named {name!r} in {self.name} BTF")
        return ids[0]

    def type(self, type_id: int) -> m.Type | None:
        """The model record of ``type_id``."""
        return self.index.type(type_id)

    def struct(self, name: str) -> StructLayout:
        """Layout of ``struct name``."""
        return self.layout(self.type_id(name, m.Struct))

    def union(self, name: str) -> StructLayout:
        """Layout of ``union name``."""
        return self.layout(self.type_id(name, m.Union))

    def layout(self, type_id: int) -> StructLayout:
        """Layout of the struct or union ``type_id`` (typedefs followed)."""
        tid = self.resolve(type_id)
        t = self.index.type(tid)
        if not isinstance(t, (m.Struct, m.Union)):
            raise BTFError(f"type id {type_id} is {self.type_name(type_id)}, not a struct/union")
        fields = tuple(self._field(x, 0) for x in t.members)
        kind = "struct" if isinstance(t, m.Struct) else "union"
        return StructLayout(t.name, kind, tid, t.size, fields, self)

    def _field(self, x: m.Member, base_bits: int) -> FieldLayout:
        bits = base_bits + x.bit_offset
        size = (x.bitfield_size + 7) // 8 if x.bitfield_size else self.size_of(x.type)
        return FieldLayout(x.name, bits // 8, bits, x.bitfield_size, size, x.type,
                           self.type_name(x.type))

    def _member_path(self, type_id: int, path: list[str], base_bits: int):
        t = self.index.type(self.resolve(type_id))
        if not isinstance(t, (m.Struct, m.Union)):
            return None
        for x in t.members:
            if x.name == path[0]:
                if len(path) == 1:
                    return self._field(x, base_bits)
                found = self._member_path(x.type, path[1:], base_bits + x.bit_offset)
                if found is not None:
                    return found
            elif not x.name:
                found = self._member_path(x.type, path, base_bits + x.bit_offset)
                if found is not None:
                    return found
        return None

    def enum(self, name: str) -> dict[str, int]:
        """Enumerators of ``enum name`` (ENUM or ENUM64) as a dict."""
        t = self.index.type(self.type_id(name, (m.Enum, m.Enum64)))
        return {v.name: v.value for v in t.values}

    def typedef(self, name: str) -> int:
        """The type id that typedef ``name`` finally stands for (modifiers skipped)."""
        return self.resolve(self.type_id(name, m.Typedef))

    def func(self, name: str) -> FuncInfo:
        """A kernel function: its BTF id (for fentry/fexit and kfunc calls) and signature."""
        fid = self.type_id(name, m.Func)
        f = self.index.type(fid)
        proto = self.func_proto(f.type)
        return FuncInfo(name, fid, proto[0], proto[1], f.linkage)

    def func_proto(self, type_id: int) -> tuple[str, tuple[tuple[str, str], ...]]:
        """(return type, ((param name, param type), ...)) of FUNC_PROTO ``type_id``."""
        p = self.index.type(self.resolve(type_id))
        if not isinstance(p, m.FuncProto):
            raise BTFError(f"type id {type_id} is {self.type_name(type_id)}, not a FUNC_PROTO")
        return (self.type_name(p.return_type),
                tuple((x.name, self.type_name(x.type) if x.type else "...") for x in p.params))

    def resolve(self, type_id: int) -> int:
        """Follow typedefs, const, volatile, restrict and type tags to the underlying id."""
        for _ in range(64):
            t = self.index.type(type_id)
            if not isinstance(t, _QUALIFIERS):
                return type_id
            type_id = t.type
        raise BTFError(f"type id {type_id}: typedef/modifier chain longer than 64")

    def size_of(self, type_id: int) -> int:
        """sizeof() of ``type_id`` in bytes (0 for void and functions)."""
        t = self.index.type(self.resolve(type_id))
        if t is None or isinstance(t, (m.Func, m.FuncProto, m.Fwd)):
            return 0
        if isinstance(t, m.Ptr):
            return 8
        if isinstance(t, m.Array):
            return t.nelems * self.size_of(t.type)
        return t.size

    def type_name(self, type_id: int) -> str:
        """C-like spelling of ``type_id``: ``struct sock *``, ``unsigned int[4]``."""
        t = self.index.type(type_id)
        if t is None:
            return "void"
        if isinstance(t, m.Ptr):
            return self.type_name(t.type) + " *"
        if isinstance(t, (m.Const, m.Volatile, m.Restrict)):
            return f"{type(t).__name__.lower()} {self.type_name(t.type)}"
        if isinstance(t, m.TypeTag):
            return f"{self.type_name(t.type)} __attribute__((btf_type_tag(\"{t.name}\")))"
        if isinstance(t, m.Array):
            return f"{self.type_name(t.type)}[{t.nelems}]"
        if isinstance(t, m.Struct):
            return f"struct {t.name or '(anon)'}"
        if isinstance(t, m.Union):
            return f"union {t.name or '(anon)'}"
        if isinstance(t, (m.Enum, m.Enum64)):
            return f"enum {t.name or '(anon)'}"
        if isinstance(t, m.Fwd):
            return f"{'union' if t.union else 'struct'} {t.name}"
        if isinstance(t, m.FuncProto):
            return "func_proto"
        return t.name


@functools.cache
def vmlinux() -> KernelBTF:
    """The running kernel's BTF, indexed once per process."""
    return KernelBTF.load()


def modules() -> list[str]:
    """Names of kernel modules that have BTF in /sys/kernel/btf."""
    try:
        return sorted(n for n in os.listdir(SYSFS_BTF) if n != "vmlinux")
    except OSError:
        return []


@functools.cache
def module(name: str) -> KernelBTF:
    """BTF of kernel module ``name`` (split BTF whose base is vmlinux)."""
    return KernelBTF.load(f"{SYSFS_BTF}/{name}", base=vmlinux())
