"""Checked conversion between BTF bytes and the type model, through construct.

This is the one place where construct containers become model records and
back.  ``parse`` checks what the kernel's BTF verifier would reject at the
encoding level: unknown kinds, vlen or kind_flag on kinds that have none,
names on anonymous-only kinds, string offsets outside the section, and type
ids that point past the last type.  Semantic checks (member offsets within
the struct, DATASEC members being VARs) are left to the kernel.

``encode`` here is the reference build through the declarations; the load
path uses ``emit.encode``, which tests hold to the same bytes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from construct import ConstructError

from pybpf.btf import model as m
from pybpf.btf.emit import enum32, member_offset
from pybpf.btf.spec import Spec, check_references
from pybpf.btf.strings import StringTable, string_at
from pybpf.btf.wire import (
    MAX_VLEN,
    BtfFile,
    BtfTypeSection,
    FuncLinkage,
    IntEncoding,
    Kind,
    VarLinkage,
)
from pybpf.errors import BTFError

# Kinds that may set kind_flag, and kinds that must be anonymous.
_KFLAG_KINDS = {Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.FWD, Kind.DECL_TAG,
                Kind.TYPE_TAG}
_ANON_KINDS = {Kind.PTR, Kind.ARRAY, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT,
               Kind.FUNC_PROTO}
_NO_VLEN_KINDS = {Kind.INT, Kind.PTR, Kind.ARRAY, Kind.FWD, Kind.TYPEDEF, Kind.VOLATILE,
                  Kind.CONST, Kind.RESTRICT, Kind.VAR, Kind.FLOAT, Kind.DECL_TAG,
                  Kind.TYPE_TAG}
_TYPE_ONLY = {Kind.PTR: m.Ptr, Kind.VOLATILE: m.Volatile, Kind.CONST: m.Const,
              Kind.RESTRICT: m.Restrict}


def parse(data: bytes, base: Spec | None = None) -> Spec:
    """Parse a BTF blob with the construct declarations and check it.

    ``base`` is the vmlinux Spec when ``data`` is split (module) BTF.
    """
    try:
        blob = BtfFile.parse(data)
    except ConstructError as e:
        raise BTFError(f"bad BTF header or section bounds: {e}") from e
    hdr = blob.header
    if hdr.version != 1 or hdr.flags != 0:
        raise BTFError(f"unsupported BTF version {hdr.version} flags {hdr.flags}")
    if hdr.hdr_len < 24 or hdr.type_off % 4:
        raise BTFError(f"bad BTF header: hdr_len {hdr.hdr_len}, type_off {hdr.type_off}")
    if hdr.type_off + hdr.type_len > hdr.str_off and hdr.type_len:
        raise BTFError(f"type section ({hdr.type_off}+{hdr.type_len}) overlaps "
                       f"the string section at {hdr.str_off}")
    if hdr.hdr_len + hdr.str_off + hdr.str_len > len(data):
        raise BTFError("string section runs past the end of the BTF data")
    try:
        # construct's compiled parser is the same declaration, ~2x faster on vmlinux.
        section = _compiled_type_section() if len(blob.type_data) > 65536 else BtfTypeSection
        records = section.parse(blob.type_data)
    except ConstructError as e:
        raise BTFError(f"bad BTF type section: {e}") from e
    consumed = sum(12 + _extra_len(r) for r in records)
    if consumed != len(blob.type_data):
        raise BTFError(f"type section has {len(blob.type_data) - consumed} trailing bytes "
                       "that do not form a btf_type")
    strings = bytes(blob.str_data)
    base_strings = base.strings if base else b""
    if strings and (strings[-1:] != b"\0" or (base is None and strings[:1] != b"\0")):
        raise BTFError("string section must start and end with a NUL byte")
    first_id = base.first_id + len(base.types) if base else 1
    types = tuple(from_container(r, first_id + i, strings, base_strings)
                  for i, r in enumerate(records))
    spec = Spec(types, strings, base)
    check_references(spec)
    return spec


@functools.cache
def _compiled_type_section():
    return BtfTypeSection.compile()


def _extra_len(r) -> int:
    d = r.data
    if d is None:
        return 0
    if isinstance(d, list):
        return 12 * len(d) if r.info.kind in (Kind.STRUCT, Kind.UNION, Kind.DATASEC,
                                              Kind.ENUM64) else 8 * len(d)
    return 12 if r.info.kind == Kind.ARRAY else 4


def from_container(r, type_id: int, strings: bytes, base_strings: bytes = b"") -> m.Type:
    """One parsed btf_type container -> model record (checking kind, vlen, flags)."""
    kind, kflag, vlen = r.info.kind, r.info.kind_flag, r.info.vlen
    where = f"type id {type_id}"
    try:
        kind = Kind(kind)
    except ValueError:
        raise BTFError(f"{where}: unknown BTF kind {kind}") from None
    if kind == Kind.UNKN:
        raise BTFError(f"{where}: kind UNKN (0) is not a type")
    if kflag and kind not in _KFLAG_KINDS:
        raise BTFError(f"{where}: kind_flag set on {kind.name}")
    if vlen and kind in _NO_VLEN_KINDS:
        raise BTFError(f"{where}: vlen {vlen} on {kind.name}")
    if r.name_off and kind in _ANON_KINDS:
        raise BTFError(f"{where}: {kind.name} must not have a name")

    def s(off: int) -> str:
        try:
            return string_at(strings, off, base_strings)
        except BTFError as e:
            raise BTFError(f"{where}: {e}") from None

    name, st, d = s(r.name_off), r.size_or_type, r.data
    if kind in _TYPE_ONLY:
        return _TYPE_ONLY[kind](st)
    if kind == Kind.INT:
        return m.Int(name, st, d.bits, IntEncoding(d.encoding), d.offset)
    if kind == Kind.ARRAY:
        return m.Array(d.type, d.index_type, d.nelems)
    if kind in (Kind.STRUCT, Kind.UNION):
        members = tuple(
            m.Member(s(x.name_off), x.type, x.offset & 0xFFFFFF, x.offset >> 24) if kflag
            else m.Member(s(x.name_off), x.type, x.offset) for x in d)
        cls = m.Struct if kind == Kind.STRUCT else m.Union
        return cls(name, st, members, kflag)
    if kind == Kind.ENUM:
        # btf_enum.val is an s32 on the wire; an unsigned enum means its u32 bits.
        return m.Enum(name, st, tuple(m.EnumValue(s(x.name_off), x.val if kflag
                                                  else x.val & 0xFFFFFFFF) for x in d), kflag)
    if kind == Kind.ENUM64:
        values = []
        for x in d:
            v = x.val_hi32 << 32 | x.val_lo32
            values.append(m.EnumValue(s(x.name_off), v - (1 << 64) if kflag and v >> 63 else v))
        return m.Enum64(name, st, tuple(values), kflag)
    if kind == Kind.FWD:
        if st:
            raise BTFError(f"{where}: FWD has size_or_type {st}, expected 0")
        return m.Fwd(name, kflag)
    if kind == Kind.TYPEDEF:
        return m.Typedef(name, st)
    if kind == Kind.FUNC:
        if vlen > FuncLinkage.EXTERN:
            raise BTFError(f"{where}: FUNC linkage {vlen} is unknown")
        return m.Func(name, st, FuncLinkage(vlen))
    if kind == Kind.FUNC_PROTO:
        return m.FuncProto(st, tuple(m.Param(s(x.name_off), x.type) for x in d))
    if kind == Kind.VAR:
        if d.linkage > VarLinkage.GLOBAL_EXTERN:
            raise BTFError(f"{where}: VAR linkage {d.linkage} is unknown")
        return m.Var(name, st, VarLinkage(d.linkage))
    if kind == Kind.DATASEC:
        return m.Datasec(name, st, tuple(m.VarSecinfo(x.type, x.offset, x.size) for x in d))
    if kind == Kind.FLOAT:
        return m.Float(name, st)
    if kind == Kind.DECL_TAG:
        return m.DeclTag(name, st, d.component_idx, kflag)
    return m.TypeTag(name, st, kflag)


def to_container(t: m.Type, strings: StringTable) -> dict:
    """One model record -> the dict BtfType builds from (vlen is rebuilt)."""
    kind = t.kind
    name_off = strings.add(m.type_name(t)) if hasattr(t, "name") else 0
    info = {"kind": int(kind), "kind_flag": False}
    st, data = 0, None
    if isinstance(t, m.REFERENCE_KINDS):
        st = t.type
        info["kind_flag"] = getattr(t, "kflag", False)
    elif isinstance(t, m.Int):
        st, data = t.size, {"encoding": int(t.encoding), "offset": t.offset, "bits": t.bits}
    elif isinstance(t, m.Array):
        data = {"type": t.type, "index_type": t.index_type, "nelems": t.nelems}
    elif isinstance(t, (m.Struct, m.Union)):
        st, info["kind_flag"] = t.size, t.kflag
        data = [{"name_off": strings.add(x.name), "type": x.type,
                 "offset": member_offset(t, x)} for x in t.members]
    elif isinstance(t, m.Enum):
        st, info["kind_flag"] = t.size, t.signed
        data = [{"name_off": strings.add(x.name), "val": enum32(t, x)} for x in t.values]
    elif isinstance(t, m.Enum64):
        st, info["kind_flag"] = t.size, t.signed
        data = [{"name_off": strings.add(x.name), "val_lo32": (x.value & (2**64 - 1)) & 0xFFFFFFFF,
                 "val_hi32": (x.value & (2**64 - 1)) >> 32} for x in t.values]
    elif isinstance(t, m.Fwd):
        info["kind_flag"] = t.union
    elif isinstance(t, m.Func):
        st, info["vlen"] = t.type, int(t.linkage)
    elif isinstance(t, m.FuncProto):
        st = t.return_type
        data = [{"name_off": strings.add(p.name), "type": p.type} for p in t.params]
    elif isinstance(t, m.Var):
        st, data = t.type, {"linkage": int(t.linkage)}
    elif isinstance(t, m.Datasec):
        st = t.size
        data = [{"type": v.type, "offset": v.offset, "size": v.size} for v in t.vars]
    elif isinstance(t, m.Float):
        st = t.size
    elif isinstance(t, m.DeclTag):
        st, info["kind_flag"] = t.type, t.kflag
        data = {"component_idx": t.component_idx}
    else:
        raise BTFError(f"{t!r} is not a BTF type record")
    return {"name_off": name_off, "info": info, "size_or_type": st, "data": data}


def encode(types: Sequence[m.Type], *, strings: bytes | None = None,
           base: Spec | None = None) -> bytes:
    """Encode ``types`` (ids first_id, first_id+1, ...) as a BTF blob.

    ``strings`` seeds the string section (a parsed Spec's, to rebuild its
    exact bytes); ``base`` makes split BTF whose strings follow the base's.
    """
    table = StringTable(strings if strings is not None else b"\0",
                        len(base.strings) if base else 0)
    records = [to_container(t, table) for t in types]
    for t, r in zip(types, records, strict=True):
        if isinstance(r["data"], list) and len(r["data"]) > MAX_VLEN:
            raise BTFError(f"{type(t).__name__} {m.type_name(t)!r} has {len(r['data'])} "
                           f"members/values; BTF allows at most {MAX_VLEN}")
    try:
        type_data = BtfTypeSection.build(records)
        return BtfFile.build({"header": {}, "type_data": type_data, "str_data": table.data})
    except ConstructError as e:
        raise BTFError(f"cannot encode BTF: {e}") from e
