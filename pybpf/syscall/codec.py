"""Keys and values of map elements: Python values <-> the bytes the kernel copies.

A map declares its key and value as pybpf types (``u32``, ``be16``, a
``Struct`` subclass, ``Bytes(n)``, ``Array(t, n)``) or as a bare size, which
means raw ``bytes`` of exactly that length.  Per-CPU maps hold one value per
*possible* CPU, each slot rounded up to 8 bytes (``round_up(value_size, 8)``
in kernel/bpf/syscall.c ``bpf_map_value_size``).
"""

from __future__ import annotations

import functools
import struct as _struct

from pybpf import types as _types
from pybpf.errors import PyBPFError


class CodecError(PyBPFError, ValueError):
    """A key or value from Python does not fit the map's declared layout."""


class Codec:
    """Packs and unpacks one key or value layout, checking sizes before the kernel sees them."""

    __slots__ = ("what", "size", "type", "_pack", "_unpack")

    def __init__(self, what: str, spec):
        self.what = what
        if isinstance(spec, int) and not isinstance(spec, bool):
            if spec < 0:
                raise CodecError(f"{what} size must be >= 0, not {spec}")
            self.size, self.type = spec, None
            self._pack, self._unpack = self._raw_pack, bytes
        else:
            t = _types.as_type(spec)
            self.size, self.type = t.size, t
            self._pack, self._unpack = t.pack, t.unpack

    def _raw_pack(self, value) -> bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise CodecError(
                f"{self.what} of this map is raw bytes[{self.size}]; got {type(value).__name__} "
                f"{value!r} (declare a type such as u32 to pass Python values)"
            )
        return bytes(value)

    def pack(self, value) -> bytes:
        """``value`` as exactly ``size`` bytes, or CodecError naming both sizes."""
        try:
            data = self._pack(value)
        except CodecError:
            raise
        except (PyBPFError, TypeError, ValueError, OverflowError) as e:
            raise CodecError(f"cannot pack {self.what} {value!r}: {e}") from e
        if len(data) != self.size:
            raise CodecError(
                f"{self.what} is {len(data)} bytes but the map's {self.what} size is {self.size}"
            )
        return data

    def unpack(self, data):
        """The Python value of ``size`` bytes."""
        return self._unpack(data)

    def unpack_many(self, data, n: int) -> list:
        """``n`` consecutive values (one struct.iter_unpack pass for integer scalars)."""
        t = self.type
        if isinstance(t, _types.Scalar):
            code = {1: "b", 2: "h", 4: "i", 8: "q"}[t.size]
            fmt = ("<" if t.byteorder == "little" else ">") + (code if t.signed else code.upper())
            return [v for (v,) in _struct.iter_unpack(fmt, data[:n * t.size])]
        mv, size, unpack = memoryview(data), self.size, self._unpack
        return [unpack(mv[i * size:(i + 1) * size]) for i in range(n)]

    def __repr__(self) -> str:
        return f"Codec({self.what}, {self.type or f'bytes[{self.size}]'})"


class PerCpuCodec:
    """A per-CPU value: a list with one value per possible CPU, 8-byte aligned slots."""

    __slots__ = ("what", "elem", "ncpus", "stride", "size")

    def __init__(self, elem: Codec, ncpus: int):
        self.what = elem.what
        self.elem = elem
        self.ncpus = ncpus
        self.stride = (elem.size + 7) & ~7
        self.size = self.stride * ncpus

    def pack(self, values) -> bytes:
        """One value per possible CPU (a list of exactly ``ncpus`` items)."""
        if not isinstance(values, (list, tuple)) or len(values) != self.ncpus:
            got = f"{len(values)} items" if isinstance(values, (list, tuple)) else repr(values)
            raise CodecError(
                f"per-CPU {self.what} needs a list of {self.ncpus} values "
                f"(one per possible CPU), got {got}"
            )
        pad = bytes(self.stride - self.elem.size)
        return b"".join(self.elem.pack(v) + pad for v in values)

    def unpack_many(self, data, n: int) -> list:
        """``n`` consecutive per-CPU value lists."""
        mv, size = memoryview(data), self.size
        return [self.unpack(mv[i * size:(i + 1) * size]) for i in range(n)]

    def unpack(self, data) -> list:
        """The list of per-CPU values."""
        mv = memoryview(data)
        step, n = self.stride, self.elem.size
        return [self.elem.unpack(bytes(mv[i * step: i * step + n])) for i in range(self.ncpus)]


@functools.cache
def possible_cpus() -> int:
    """Number of possible CPUs (/sys/devices/system/cpu/possible, e.g. "0-3" or "0,2-5")."""
    with open("/sys/devices/system/cpu/possible") as f:
        text = f.read().strip()
    count = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count  # num_possible_cpus(): the kernel copies one slot per possible CPU
