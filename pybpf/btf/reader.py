"""Fast, lazy BTF reader: struct.unpack_from over the raw bytes.

construct (``codec.py``) is the declared, checked format but takes seconds
for the ~130k types of vmlinux.  This reader makes one pass that records
where each type id starts, then decodes single types on demand into the
same model records the codec produces (tests check both agree on the real
vmlinux).  Names are looked up by searching the string section for the
exact NUL-delimited name, so no string is decoded until it is needed.
"""

from __future__ import annotations

import struct
from array import array

from pybpf.btf import model as m
from pybpf.btf.spec import Spec, check_references
from pybpf.btf.strings import string_at
from pybpf.btf.uapi import FIXED_EXTRA, PER_VLEN, FuncLinkage, IntEncoding, Kind, VarLinkage
from pybpf.errors import BTFError

_HEADER = struct.Struct("<HBBIIIII")
_TYPE = struct.Struct("<III")
_U32 = struct.Struct("<I")
_S32 = struct.Struct("<i")
_TRIPLE = struct.Struct("<III")
_PAIR = struct.Struct("<II")
_PAIR_S = struct.Struct("<Ii")
_KIND_MAX = max(Kind)
_EXTRA = [FIXED_EXTRA.get(k, 0) for k in range(_KIND_MAX + 1)]
_PER = [PER_VLEN.get(k, 0) for k in range(_KIND_MAX + 1)]
_MODIFIERS = {Kind.PTR: m.Ptr, Kind.VOLATILE: m.Volatile, Kind.CONST: m.Const,
              Kind.RESTRICT: m.Restrict}


def _string_offsets(strings: bytes, needle: bytes) -> list[int]:
    """Offsets of the string ``needle[1:-1]`` (``needle`` is NUL-delimited)."""
    found, start = [], 0
    while (hit := strings.find(needle, start)) >= 0:
        found.append(hit + 1)
        start = hit + 1
    return found


class TypeIndex:
    """Offsets of every type record of one BTF blob, built in a single pass.

    ``base`` is the vmlinux index for split (module) BTF; ids and string
    offsets then continue the base's.
    """

    def __init__(self, data: bytes, base: TypeIndex | None = None):
        self.data = data = bytes(data)
        self.base = base
        if len(data) < _HEADER.size:
            raise BTFError(f"BTF data of {len(data)} bytes is shorter than btf_header")
        magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = \
            _HEADER.unpack_from(data)
        if magic != 0xEB9F:
            raise BTFError(f"bad BTF magic {magic:#x} (big-endian BTF is not supported)")
        if version != 1 or hdr_len < _HEADER.size:
            raise BTFError(f"unsupported BTF version {version} or header length {hdr_len}")
        if hdr_len + max(type_off + type_len, str_off + str_len) > len(data):
            raise BTFError("BTF section runs past the end of the data")
        self.strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
        self.base_strings = base.strings if base else b""
        self.first_id = base.first_id + len(base) if base else 1
        self.offsets = array("I")
        self.name_offs = array("I")
        self._walk(hdr_len + type_off, hdr_len + type_off + type_len)

    def _walk(self, pos: int, end: int) -> None:
        data, unpack, extra, per = self.data, _TYPE.unpack_from, _EXTRA, _PER
        offsets, names = [], []
        add_off, add_name = offsets.append, names.append
        while pos < end:
            if pos + 12 > end:
                raise BTFError(f"truncated btf_type at byte {pos}")
            name_off, info, _ = unpack(data, pos)
            kind = (info >> 24) & 0x1F
            if not 0 < kind <= _KIND_MAX:
                raise BTFError(f"type id {self.first_id + len(offsets)}: unknown BTF kind {kind}")
            add_off(pos)
            add_name(name_off)
            pos += 12 + extra[kind] + (info & 0xFFFF) * per[kind]
        if pos != end:
            raise BTFError("last btf_type runs past the end of the type section")
        self.offsets = array("I", offsets)
        self.name_offs = array("I", names)

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def last_id(self) -> int:
        """The highest type id in this blob."""
        return self.first_id + len(self.offsets) - 1

    def string(self, off: int) -> str:
        """The string at ``off`` (base strings first for split BTF)."""
        return string_at(self.strings, off, self.base_strings)

    def name_of(self, type_id: int) -> str:
        """The name of ``type_id`` without decoding the rest of the type."""
        if self.base is not None and type_id < self.first_id:
            return self.base.name_of(type_id)
        return self.string(self.name_offs[type_id - self.first_id])

    def kind_of(self, type_id: int) -> Kind:
        """The BTF kind of ``type_id``."""
        if self.base is not None and type_id < self.first_id:
            return self.base.kind_of(type_id)
        pos = self._pos(type_id)
        return Kind((_U32.unpack_from(self.data, pos + 4)[0] >> 24) & 0x1F)

    def ids_named(self, name: str) -> list[int]:
        """Every type id called ``name`` (base ids first), found via the string section."""
        found = self.base.ids_named(name) if self.base else []
        needle = b"\0" + name.encode() + b"\0"
        offs = {len(self.base_strings) + off for off in _string_offsets(self.strings, needle)}
        if self.base is not None:
            offs.update(_string_offsets(self.base.strings, needle))
        for off in offs:
            names, i = self.name_offs, -1
            try:
                while True:
                    i = names.index(off, i + 1)
                    found.append(self.first_id + i)
            except ValueError:
                pass
        return sorted(found)

    def _pos(self, type_id: int) -> int:
        index = type_id - self.first_id
        if not 0 <= index < len(self.offsets):
            raise BTFError(f"type id {type_id} does not exist (last id is {self.last_id})")
        return self.offsets[index]

    def type(self, type_id: int) -> m.Type | None:
        """Decode ``type_id`` into its model record (None for void)."""
        if type_id == 0:
            return None
        if self.base is not None and type_id < self.first_id:
            return self.base.type(type_id)
        return self._decode(self._pos(type_id), type_id)

    def _decode(self, pos: int, type_id: int) -> m.Type:  # noqa: C901 - one branch per kind
        data, s = self.data, self.string
        name_off, info, st = _TYPE.unpack_from(data, pos)
        kind, vlen, kflag = (info >> 24) & 0x1F, info & 0xFFFF, bool(info >> 31)
        pos += 12
        if kind in _MODIFIERS:
            return _MODIFIERS[kind](st)
        if kind == Kind.INT:
            word = _U32.unpack_from(data, pos)[0]
            return m.Int(s(name_off), st, word & 0xFF, IntEncoding((word >> 24) & 0x0F),
                         (word >> 16) & 0xFF)
        if kind == Kind.STRUCT or kind == Kind.UNION:
            members = []
            for i in range(vlen):
                n, t, off = _TRIPLE.unpack_from(data, pos + 12 * i)
                members.append(m.Member(s(n), t, off & 0xFFFFFF, off >> 24) if kflag
                               else m.Member(s(n), t, off))
            cls = m.Struct if kind == Kind.STRUCT else m.Union
            return cls(s(name_off), st, tuple(members), kflag)
        if kind == Kind.FUNC:
            return m.Func(s(name_off), st, FuncLinkage(vlen))
        if kind == Kind.FUNC_PROTO:
            return m.FuncProto(st, tuple(m.Param(s(n), t) for n, t in
                                         (_PAIR.unpack_from(data, pos + 8 * i)
                                          for i in range(vlen))))
        if kind == Kind.TYPEDEF:
            return m.Typedef(s(name_off), st)
        if kind == Kind.ARRAY:
            return m.Array(*_TRIPLE.unpack_from(data, pos))
        if kind == Kind.ENUM:
            values = []
            for i in range(vlen):
                n, v = _PAIR_S.unpack_from(data, pos + 8 * i)
                values.append(m.EnumValue(s(n), v if kflag else v & 0xFFFFFFFF))
            return m.Enum(s(name_off), st, tuple(values), kflag)
        if kind == Kind.ENUM64:
            values = []
            for i in range(vlen):
                n, lo, hi = _TRIPLE.unpack_from(data, pos + 12 * i)
                v = hi << 32 | lo
                values.append(m.EnumValue(s(n), v - (1 << 64) if kflag and v >> 63 else v))
            return m.Enum64(s(name_off), st, tuple(values), kflag)
        if kind == Kind.FWD:
            return m.Fwd(s(name_off), kflag)
        if kind == Kind.VAR:
            return m.Var(s(name_off), st, VarLinkage(_U32.unpack_from(data, pos)[0]))
        if kind == Kind.DATASEC:
            return m.Datasec(s(name_off), st, tuple(
                m.VarSecinfo(*_TRIPLE.unpack_from(data, pos + 12 * i)) for i in range(vlen)))
        if kind == Kind.FLOAT:
            return m.Float(s(name_off), st)
        if kind == Kind.DECL_TAG:
            return m.DeclTag(s(name_off), st, _S32.unpack_from(data, pos)[0], kflag)
        if kind == Kind.TYPE_TAG:
            return m.TypeTag(s(name_off), st, kflag)
        raise BTFError(f"type id {type_id}: unknown BTF kind {kind}")

    def spec(self, check: bool = True) -> Spec:
        """Decode every type: the fast equivalent of ``codec.parse``."""
        decode, first = self._decode, self.first_id
        types = tuple(decode(pos, first + i) for i, pos in enumerate(self.offsets))
        spec = Spec(types, self.strings, self.base.spec(check) if self.base else None)
        if check:
            check_references(spec)
        return spec


def read(data: bytes, base: bytes | None = None) -> Spec:
    """Fast, checked full parse of a BTF blob; ``base`` is vmlinux's bytes for split BTF."""
    return TypeIndex(data, TypeIndex(base) if base is not None else None).spec()
