"""Batch map commands (5.6+), with a per-key fallback where the kernel lacks them.

BPF_MAP_LOOKUP_BATCH walks a map in chunks: ``in_batch``/``out_batch`` carry
an opaque position token (a bucket index for hash maps), ``keys``/``values``
point at arrays of ``count`` elements, and ``count`` comes back as the number
filled.  ENOENT means the walk is over (the last chunk may still hold
elements); ENOSPC means one hash bucket did not fit into ``count``.
MAP_UPDATE_BATCH and MAP_DELETE_BATCH take the same arrays.

Map types without batch support answer ENOTSUPP (524); kernels before 5.6
answer EINVAL to the unknown command.  Either way we fall back, once per map.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

from pybpf.errors import BPFError
from pybpf.syscall._ffi import address, ffi
from pybpf.syscall._uapi import Cmd
from pybpf.syscall.bpf import ENOTSUPP, bpf, new_attr

#: Elements per batch call: large chunks amortise the syscall, 4096 keeps buffers modest.
CHUNK = 4096
_UNSUPPORTED = (errno.EINVAL, ENOTSUPP, errno.EOPNOTSUPP)


def _supported(m, e: BPFError) -> bool:
    """Record that ``m`` has no batch ops when ``e`` says so; return False then."""
    if e.errno in _UNSUPPORTED and m._batch_ok is not True:
        m._batch_ok = False
        return False
    return True


def lookup_batches(m, *, delete: bool = False, chunk: int = CHUNK) -> Iterator[tuple[bytes, bytes, int]]:
    """Raw chunks ``(keys, values, count)`` of MAP_LOOKUP[_AND_DELETE]_BATCH."""
    cmd = Cmd.MAP_LOOKUP_AND_DELETE_BATCH if delete else Cmd.MAP_LOOKUP_BATCH
    ksize, vsize = m.key.size, m.value.size
    token_in = ffi.new("char[]", max(ksize, 8))
    token_out = ffi.new("char[]", max(ksize, 8))
    first = True
    while True:
        keys = ffi.new("char[]", ksize * chunk)
        values = ffi.new("char[]", vsize * chunk)
        attr = new_attr()
        attr.batch.map_fd = m.fd
        attr.batch.in_batch = 0 if first else address(token_in)
        attr.batch.out_batch = address(token_out)
        attr.batch.keys = address(keys)
        attr.batch.values = address(values)
        attr.batch.count = chunk
        done = False
        try:
            bpf(cmd, attr)
        except BPFError as e:
            if e.errno == errno.ENOENT:
                done = True
            elif e.errno == errno.ENOSPC and attr.batch.count == 0:
                chunk *= 2  # one hash bucket holds more than `chunk` elements
                continue
            else:
                raise
        n = attr.batch.count
        if n:
            yield ffi.buffer(keys, ksize * n)[:], ffi.buffer(values, vsize * n)[:], n
        if done:
            return
        m._batch_ok = True
        ffi.memmove(token_in, token_out, ffi.sizeof(token_out))
        first = False


def items(m, *, chunk: int = CHUNK) -> Iterator[tuple]:
    """All (key, value) pairs of ``m``: batched, or by MAP_GET_NEXT_KEY + lookup."""
    if m._batch_ok is not False:
        batches = lookup_batches(m, chunk=chunk)
        try:
            first = next(batches, None)
        except BPFError as e:
            if _supported(m, e):
                raise
        else:
            if first is None:
                return
            yield from _decode(m, *first)
            for raw in batches:
                yield from _decode(m, *raw)
            return
    for key in m:
        value = m.lookup(key, _MISSING)
        if value is not _MISSING:
            yield key, value


_MISSING = object()


def _decode(m, keys: bytes, values: bytes, n: int) -> Iterator[tuple]:
    return zip(m.key.unpack_many(keys, n), m.value.unpack_many(values, n), strict=True)


def update(m, pairs: list[tuple], flags: int = 0, *, chunk: int = CHUNK) -> None:
    """Write all ``pairs`` (MAP_UPDATE_BATCH per chunk, else one MAP_UPDATE_ELEM each)."""
    if not pairs:
        return
    if m._batch_ok is not False:
        try:
            for start in range(0, len(pairs), chunk):
                part = pairs[start:start + chunk]
                keys = b"".join(m.key.pack(k) for k, _ in part)
                values = b"".join(m._value_bytes(v) for _, v in part)
                _write_batch(m, Cmd.MAP_UPDATE_BATCH, keys, values, len(part), flags)
            return
        except BPFError as e:
            if _supported(m, e) or start:
                raise
    for key, value in pairs:
        m._update_one(key, value, flags)


def delete(m, keys: list, *, chunk: int = CHUNK) -> None:
    """Delete all ``keys`` (MAP_DELETE_BATCH per chunk, else one MAP_DELETE_ELEM each)."""
    if not keys:
        return
    if m._batch_ok is not False:
        try:
            for start in range(0, len(keys), chunk):
                part = keys[start:start + chunk]
                raw = b"".join(m.key.pack(k) for k in part)
                _write_batch(m, Cmd.MAP_DELETE_BATCH, raw, None, len(part), 0)
            return
        except BPFError as e:
            if _supported(m, e) or start:
                raise
    for key in keys:
        m.delete(key)


def _write_batch(m, cmd: Cmd, keys: bytes, values: bytes | None, count: int, flags: int) -> None:
    kbuf = ffi.from_buffer(keys)
    vbuf = ffi.from_buffer(values) if values is not None else ffi.NULL
    attr = new_attr()
    attr.batch.map_fd = m.fd
    attr.batch.keys = address(kbuf)
    attr.batch.values = address(vbuf) if values is not None else 0
    attr.batch.count = count
    attr.batch.elem_flags = int(flags)
    try:
        bpf(cmd, attr)
    except BPFError as e:
        done = attr.batch.count
        raise BPFError(e.errno, e.command,
                       f"{e.detail} after {done} of {count} elements") from e
    m._batch_ok = True
