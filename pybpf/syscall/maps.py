"""BPF maps: BPF_MAP_CREATE and the per-element commands, with a dict-like face.

    m = Map.create("hash", key=u32, value=u64, max_entries=1024, name="counts")
    m[1] = 10; m[1]; del m[1]; 1 in m; for k in m: ...; m.items(); m.update({...})

Element commands (kernel/bpf/syscall.c): MAP_LOOKUP_ELEM, MAP_UPDATE_ELEM
(flags BPF_ANY / BPF_NOEXIST / BPF_EXIST / BPF_F_LOCK), MAP_DELETE_ELEM,
MAP_GET_NEXT_KEY, MAP_LOOKUP_AND_DELETE_ELEM, MAP_FREEZE.  Bulk reads and
writes go through the batch commands (map_batch.py) when the kernel has them.
"""

from __future__ import annotations

import errno
import mmap
import os
from collections.abc import Iterator

from pybpf._record import record
from pybpf.errors import BPFError
from pybpf.syscall import map_batch
from pybpf.syscall._ffi import address, ffi
from pybpf.syscall._uapi import BPF_OBJ_NAME_LEN, Cmd, MapFlags, MapType, UpdateFlags
from pybpf.syscall.bpf import bpf, new_attr, uapi_member
from pybpf.syscall.codec import Codec, CodecError, PerCpuCodec, possible_cpus
from pybpf.syscall.objects import FdObject, cstring, fd_by_id, get_info, obj_get
from pybpf.types import u32

PERCPU_TYPES = frozenset({
    MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH,
    MapType.PERCPU_CGROUP_STORAGE,
})
#: Map types whose values from user space are fds of other objects (u32 on the wire).
FD_VALUE_TYPES = frozenset({
    MapType.PROG_ARRAY, MapType.PERF_EVENT_ARRAY, MapType.CGROUP_ARRAY,
    MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS, MapType.SOCKMAP, MapType.SOCKHASH, MapType.XSKMAP,
})
#: Map types without keys: pushed and popped (queue: FIFO, stack: LIFO).
KEYLESS_TYPES = frozenset({MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER})

_HINTS = {
    MapType.LPM_TRIE: "needs flags=NO_PREALLOC and a key starting with a u32 prefix length",
    MapType.ARRAY: "needs a 4-byte key",
    MapType.PERCPU_ARRAY: "needs a 4-byte key",
    MapType.RINGBUF: "needs key and value size 0 and max_entries a power-of-2 multiple of the "
    "page size",
    MapType.QUEUE: "needs key size 0",
    MapType.STACK: "needs key size 0",
    MapType.SK_STORAGE: "needs flags=NO_PREALLOC, max_entries=0, a 4-byte key and BTF key/value "
    "type ids",
    MapType.ARRAY_OF_MAPS: "needs inner_map (a template map) and a 4-byte value",
    MapType.HASH_OF_MAPS: "needs inner_map (a template map) and a 4-byte value",
}

_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.")


def map_type(value) -> MapType:
    """A MapType from a MapType, its int or its name ("hash", "lru_percpu_hash")."""
    return uapi_member(MapType, value, "map type")


def check_name(name: str) -> bytes:
    """An object name as the kernel accepts it (bpf_obj_name_cpy: <16 chars of [A-Za-z0-9_.])."""
    raw = name.encode()
    if len(raw) >= BPF_OBJ_NAME_LEN or not _NAME_CHARS.issuperset(name):
        raise ValueError(
            f"name {name!r} must be at most {BPF_OBJ_NAME_LEN - 1} characters of A-Z a-z 0-9 _ ."
        )
    return raw


@record(slots=False)
class MapInfo:
    """struct bpf_map_info, as the kernel reports it."""

    id: int
    type: MapType | int
    name: str
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    btf_id: int
    btf_key_type_id: int
    btf_value_type_id: int
    map_extra: int


class Map(FdObject):
    """A BPF map owned through its fd, with typed keys and values."""

    kind = "map"

    def __init__(self, fd: int, type: MapType, key, value, max_entries: int,
                 flags: int = 0, name: str = ""):
        super().__init__(fd, name)
        self.type = type
        self.max_entries = max_entries
        self.flags = flags
        self.key = Codec("key", key)
        if type in FD_VALUE_TYPES and value == 4:
            value = u32  # fds going in, ids coming out
        plain = Codec("value", value)
        self.percpu = type in PERCPU_TYPES
        self.value = PerCpuCodec(plain, possible_cpus()) if self.percpu else plain
        self._vbuf = ffi.new("char[]", max(self.value.size, 8))
        self._kbuf = ffi.new("char[]", max(self.key.size, 8))
        self._batch_ok: bool | None = None
        # One attr for the element commands (map_fd, key, value, flags rewritten every call):
        # saves an allocation per lookup. A Map is therefore not safe to share between threads.
        self._elem = new_attr()

    # -- creation and opening ------------------------------------------------------------

    @classmethod
    def create(cls, type, key=0, value=0, max_entries: int = 1, *, flags: int = 0,
               name: str = "", inner_map: Map | int | None = None, map_extra: int = 0,
               numa_node: int | None = None, ifindex: int = 0, btf_fd: int = 0,
               btf_key_type_id: int = 0, btf_value_type_id: int = 0,
               btf_vmlinux_value_type_id: int = 0) -> Map:
        """BPF_MAP_CREATE; ``key``/``value`` are pybpf types or byte sizes."""
        mtype = map_type(type)
        kc, vc = Codec("key", key), Codec("value", value)
        if not isinstance(max_entries, int) or not 0 <= max_entries < 1 << 32:
            raise ValueError(f"max_entries must be a u32, not {max_entries!r}")
        attr = new_attr()
        attr.map_type = mtype
        attr.key_size = kc.size
        attr.value_size = vc.size
        attr.max_entries = max_entries
        attr.map_flags = int(flags)
        raw_name = check_name(name)
        ffi.memmove(attr.map_name, raw_name, len(raw_name))
        if inner_map is not None:
            attr.inner_map_fd = inner_map.fd if isinstance(inner_map, Map) else inner_map
        if numa_node is not None:
            attr.numa_node = numa_node
            attr.map_flags |= MapFlags.NUMA_NODE
        attr.map_extra = map_extra
        attr.map_ifindex = ifindex
        attr.btf_fd = btf_fd
        attr.btf_key_type_id = btf_key_type_id
        attr.btf_value_type_id = btf_value_type_id
        attr.btf_vmlinux_value_type_id = btf_vmlinux_value_type_id
        try:
            fd = bpf(Cmd.MAP_CREATE, attr)
        except BPFError as e:
            if e.errno != errno.EINVAL:
                raise
            hint = _HINTS.get(mtype, "check sizes and flags for this map type")
            raise BPFError(
                e.errno, e.command,
                f"{e.detail}: {mtype.name.lower()} map with key_size={kc.size} "
                f"value_size={vc.size} max_entries={max_entries} flags={int(flags):#x} "
                f"rejected; {mtype.name.lower()} {hint}",
            ) from e
        return cls(fd, mtype, key, value, max_entries, int(attr.map_flags), name)

    @classmethod
    def _from_fd(cls, fd: int, key=None, value=None) -> Map:
        try:
            info = _info(fd)
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, info.type, key if key is not None else info.key_size,
                   value if value is not None else info.value_size, info.max_entries,
                   info.flags, info.name)

    @classmethod
    def from_pinned(cls, path: str | os.PathLike, key=None, value=None) -> Map:
        """BPF_OBJ_GET: open a pinned map (sizes from the kernel; types optional)."""
        return cls._from_fd(obj_get(path), key, value)

    @classmethod
    def from_id(cls, map_id: int, key=None, value=None) -> Map:
        """BPF_MAP_GET_FD_BY_ID (needs CAP_SYS_ADMIN)."""
        return cls._from_fd(fd_by_id("map", map_id), key, value)

    def info(self) -> MapInfo:
        """BPF_OBJ_GET_INFO_BY_FD: the kernel's view of this map."""
        return _info(self.fd)

    @property
    def id(self) -> int:
        """The kernel's map id."""
        return self.info().id

    # -- element commands ------------------------------------------------------------------

    def _key_ptr(self, key):
        if self.type in KEYLESS_TYPES:
            if key is not None:
                raise CodecError(f"{self.type.name.lower()} maps have no keys; use push/pop/peek")
            return ffi.NULL, None
        data = self.key.pack(key)
        ffi.memmove(self._kbuf, data, len(data))
        return self._kbuf, data

    def _value_bytes(self, value) -> bytes:
        if self.type in FD_VALUE_TYPES and isinstance(value, FdObject):
            value = value.fd
        return self.value.pack(value)

    def _read(self, cmd: Cmd, key, flags: int = 0):
        """One element command that fills the value buffer; KeyError when ``key`` is absent."""
        attr = self._elem
        attr.map_fd = self.fd
        attr.key = address(self._key_ptr(key)[0])
        attr.value = address(self._vbuf)
        attr.flags = flags
        try:
            bpf(cmd, attr)
        except BPFError as e:
            if e.errno == errno.ENOENT:
                raise KeyError(key) from None
            raise
        return self.value.unpack(ffi.buffer(self._vbuf, self.value.size)[:])

    def lookup(self, key, default=None, *, flags: int = 0):
        """BPF_MAP_LOOKUP_ELEM: the value at ``key``, or ``default`` when absent."""
        try:
            return self._read(Cmd.MAP_LOOKUP_ELEM, key, flags)
        except KeyError:
            return default

    def __getitem__(self, key):
        return self._read(Cmd.MAP_LOOKUP_ELEM, key)

    def __contains__(self, key) -> bool:
        return self.lookup(key, _MISSING) is not _MISSING

    def update(self, *args, flags: int = UpdateFlags.ANY) -> None:
        """``update(key, value)``: BPF_MAP_UPDATE_ELEM; ``update(mapping)``: all pairs, batched.

        ``flags``: UpdateFlags.ANY (create or replace), NOEXIST (create only),
        EXIST (replace only), F_LOCK (with a bpf_spin_lock in the value).
        """
        if len(args) == 2:
            self._update_one(args[0], args[1], flags)
        elif len(args) == 1:
            pairs = args[0].items() if hasattr(args[0], "items") else args[0]
            map_batch.update(self, list(pairs), flags)
        else:
            raise TypeError(f"update() takes (key, value) or (mapping), got {len(args)} arguments")

    def _update_one(self, key, value, flags) -> None:
        attr = self._elem
        attr.map_fd = self.fd
        attr.key = address(self._key_ptr(key)[0])
        data = self._value_bytes(value)
        buf = ffi.from_buffer(data)
        attr.value = address(buf)
        attr.flags = int(flags)
        try:
            bpf(Cmd.MAP_UPDATE_ELEM, attr)
        except BPFError as e:
            if e.errno == errno.EEXIST and flags == UpdateFlags.NOEXIST:
                raise BPFError(e.errno, e.command, f"key {key!r} exists (flags=NOEXIST)") from e
            if e.errno == errno.ENOENT and flags == UpdateFlags.EXIST:
                raise KeyError(key) from e
            if e.errno == errno.E2BIG:
                raise BPFError(e.errno, e.command,
                               f"map {self.name!r} is full ({self.max_entries} entries)") from e
            raise

    def __setitem__(self, key, value) -> None:
        self._update_one(key, value, UpdateFlags.ANY)

    def delete(self, key) -> None:
        """BPF_MAP_DELETE_ELEM; KeyError when ``key`` is absent."""
        attr = self._elem
        attr.map_fd = self.fd
        attr.key = address(self._key_ptr(key)[0])
        attr.value = attr.flags = 0
        try:
            bpf(Cmd.MAP_DELETE_ELEM, attr)
        except BPFError as e:
            if e.errno == errno.ENOENT:
                raise KeyError(key) from None
            raise

    __delitem__ = delete

    def lookup_and_delete(self, key=None):
        """BPF_MAP_LOOKUP_AND_DELETE_ELEM: remove ``key`` and return its value (KeyError)."""
        return self._read(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, key)

    def push(self, value, *, flags: int = UpdateFlags.ANY) -> None:
        """Queue/stack: push ``value`` (flags=EXIST replaces the oldest when full)."""
        self._update_one(None, value, flags)

    def pop(self):
        """Queue/stack: remove and return the next value; KeyError when empty."""
        return self.lookup_and_delete(None)

    def peek(self):
        """Queue/stack: the next value without removing it; None when empty."""
        return self.lookup(None)

    def next_key(self, key=None):
        """BPF_MAP_GET_NEXT_KEY: the key after ``key`` (the first for None); None at the end."""
        attr = new_attr()
        attr.map_fd = self.fd
        attr.key = 0 if key is None else address(self._key_ptr(key)[0])
        out = ffi.new("char[]", max(self.key.size, 1))
        attr.next_key = address(out)
        try:
            bpf(Cmd.MAP_GET_NEXT_KEY, attr)
        except BPFError as e:
            if e.errno == errno.ENOENT:
                return None
            raise
        return self.key.unpack(ffi.buffer(out, self.key.size)[:])

    def __iter__(self) -> Iterator:
        """Keys in the kernel's order (MAP_GET_NEXT_KEY); deleting while iterating may restart."""
        key = self.next_key()
        while key is not None:
            yield key
            key = self.next_key(key)

    def keys(self) -> Iterator:
        """Keys, as iteration."""
        return iter(self)

    def items(self) -> Iterator[tuple]:
        """(key, value) pairs, read in batches when the kernel supports it."""
        return map_batch.items(self)

    def values(self) -> Iterator:
        """Values, read like items()."""
        return (v for _, v in self.items())

    def clear(self) -> None:
        """Delete every element (batched when possible)."""
        map_batch.delete(self, list(self))

    def freeze(self) -> None:
        """BPF_MAP_FREEZE: no more changes from user space (BPF programs may still write)."""
        attr = new_attr()
        attr.map_fd = self.fd
        bpf(Cmd.MAP_FREEZE, attr)

    def mmap(self, *, writable: bool = True) -> mmap.mmap:
        """Map the values of an array created with flags=MMAPABLE into this process."""
        if not self.flags & MapFlags.MMAPABLE:
            raise BPFError(errno.EINVAL, "mmap", f"map {self.name!r} was not created with "
                           "flags=MapFlags.MMAPABLE")
        size = ((self.value.size + 7) & ~7) * self.max_entries
        size = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE * mmap.PAGESIZE
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        return mmap.mmap(self.fd, size, mmap.MAP_SHARED, prot)


_MISSING = object()


def _info(fd: int) -> MapInfo:
    i = get_info(fd, "struct bpf_map_info")
    try:
        mtype = MapType(i.type)
    except ValueError:
        mtype = i.type
    return MapInfo(i.id, mtype, cstring(i.name), i.key_size, i.value_size, i.max_entries,
                   i.map_flags, i.btf_id, i.btf_key_type_id, i.btf_value_type_id, i.map_extra)
