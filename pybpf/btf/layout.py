"""From pybpf's layout types (pybpf.types) to BTF.

Scalars become the kernel's own spelling: ``u32`` is ``typedef __u32`` of
``unsigned int``; the big-endian ``be16/be32/be64`` are ``typedef __be16``
of ``__u16`` and so on, as in ``linux/types.h`` (BTF has no byte order; the
name tells the reader).  ``Bytes(n)`` is ``char[n]``, ``Array(t, n)`` is
``t[n]`` indexed by ``__ARRAY_SIZE_TYPE__`` as LLVM emits it, and a Struct
subclass is a STRUCT named after the class with its fields at their byte
offsets.  Maps use ``map_btf`` to get key and value type ids.
"""

from __future__ import annotations

from pybpf import types as lt
from pybpf._record import record
from pybpf.btf import model as m
from pybpf.btf.builder import Builder
from pybpf.btf.uapi import IntEncoding
from pybpf.errors import BTFError

# (typedef, base INT name, signed) per scalar, spelled as GCC's DWARF does.
_SCALARS = {
    (1, False): ("__u8", "unsigned char", False),
    (2, False): ("__u16", "short unsigned int", False),
    (4, False): ("__u32", "unsigned int", False),
    (8, False): ("__u64", "long long unsigned int", False),
    (1, True): ("__s8", "signed char", True),
    (2, True): ("__s16", "short int", True),
    (4, True): ("__s32", "int", True),
    (8, True): ("__s64", "long long int", True),
}


def add_type(b: Builder, t) -> int:
    """Add the BTF for layout type ``t`` (a Scalar, Bytes, Array or Struct subclass)."""
    t = lt.as_type(t)
    if isinstance(t, lt.Scalar):
        return _scalar(b, t)
    if isinstance(t, lt.Bytes):
        return _array(b, b.add(m.Int("char", 1, 8)), t.size)
    if isinstance(t, lt.Array):
        return _array(b, add_type(b, t.elem), t.count)
    if isinstance(t, lt.StructMeta):
        members = tuple(m.Member(f.name, add_type(b, f.type), f.offset * 8) for f in t.fields)
        return b.add(m.Struct(t.__name__, t.size, members))
    raise BTFError(f"no BTF for {t!r}")


def _scalar(b: Builder, t: lt.Scalar) -> int:
    try:
        typedef, base, signed = _SCALARS[(t.size, t.signed)]
    except KeyError:
        raise BTFError(f"no BTF integer for {t!r}") from None
    enc = IntEncoding.SIGNED if signed else IntEncoding.NONE
    tid = b.add(m.Typedef(typedef, b.add(m.Int(base, t.size, t.size * 8, enc))))
    if t.big_endian:
        tid = b.add(m.Typedef(f"__be{t.size * 8}", tid))
    return tid


def _array(b: Builder, elem: int, count: int) -> int:
    index = b.add(m.Int("__ARRAY_SIZE_TYPE__", 4, 32))
    return b.add(m.Array(elem, index, count))


@record
class MapBTF:
    """BTF for BPF_MAP_CREATE: the blob plus ``btf_key_type_id`` / ``btf_value_type_id``."""

    btf: bytes
    key_type_id: int
    value_type_id: int


def map_btf(key, value) -> MapBTF:
    """BTF describing a map's key and value layout types (for ``bpftool map dump``)."""
    b = Builder()
    key_id, value_id = add_type(b, key), add_type(b, value)
    return MapBTF(b.encode(), key_id, value_id)
