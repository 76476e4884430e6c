"""Maps declared in Python and used from DSL programs.

A declaration names the map's kind, key and value types and size::

    blocked = LpmTrie(BlockKey, u64, max_entries=1024)

Inside a program it is referenced symbolically (``r1 = blocked ll``); the
loader creates it (or reuses a map you give) and patches the fd in. Methods
take the builder from their DSL arguments, so no global state is needed::

    with blocked.lookup(key) as hits:   # the body runs only if the entry exists
        hits.atomic_add(1)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from pybpf.asm import Jump, JumpOp
from pybpf.dsl.calls import call
from pybpf.dsl.pointers import MapValueRegion, Ptr, Region
from pybpf.dsl.values import DSLError, Value
from pybpf.types import Scalar, as_type, u32

NO_PREALLOC = 1  # BPF_F_NO_PREALLOC
_BPF_RB_NO_WAKEUP, _BPF_F_CURRENT_CPU = 1, 0xFFFFFFFF


def builder_of(*args):
    """The builder of the first DSL value among ``args``."""
    for a in args:
        if isinstance(a, Ptr):
            return a._b
        if isinstance(a, Value):
            return a.b
    raise DSLError("give at least one DSL value (a pointer or p.const(n, u32)) so the map "
                   "knows which program it is used in")


class MapDef:
    """A map declaration: kind, key/value types, max_entries, flags and name."""

    kind = "hash"
    default_flags = 0

    def __init__(self, key=u32, value=u32, max_entries: int = 1, *, flags: int | None = None,
                 name: str | None = None, pinning: str | None = None):
        self.key = as_type(key) if not isinstance(key, int) else key
        self.value = as_type(value) if not isinstance(value, int) else value
        self.max_entries = max_entries
        self.flags = self.default_flags if flags is None else flags
        self.name = name
        self.pinning = pinning

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name or '?'})"

    # -- element operations -----------------------------------------------------------

    @contextlib.contextmanager
    def lookup(self, key) -> Iterator[Ptr]:
        """``bpf_map_lookup_elem``: the body runs with a pointer to the value if it exists."""
        b = builder_of(key)
        ptr = call(b, "map_lookup_elem", self, b.pointer_to(self.key, key, "key"))
        end = b.label("miss")
        b.emit(Jump, op=JumpOp.JEQ, dst=ptr.loc, src=0, target=end, width=64)
        region = MapValueRegion(self.name or "?")
        try:
            yield Ptr(b, self.value, ptr.loc, 0, region)
        finally:
            region.valid = False
        index = len(b.ops)
        body_dead = b.dead
        b.mark(end)
        b._pending_else = (index, end, body_dead)

    def update(self, key, value, flags: int = 0) -> Value:
        """``bpf_map_update_elem`` (flags: 0 any, 1 BPF_NOEXIST, 2 BPF_EXIST); returns 0 or -errno."""
        b = builder_of(key, value)
        return call(b, "map_update_elem", self, b.pointer_to(self.key, key, "key"),
                    b.pointer_to(self.value, value, "value"), flags)

    def delete(self, key) -> Value:
        """``bpf_map_delete_elem``; returns 0 or -errno."""
        b = builder_of(key)
        return call(b, "map_delete_elem", self, b.pointer_to(self.key, key, "key"))


class Hash(MapDef):
    kind = "hash"


class Array(MapDef):
    kind = "array"


class PerCpuHash(MapDef):
    kind = "percpu_hash"


class PerCpuArray(MapDef):
    kind = "percpu_array"


class LruHash(MapDef):
    kind = "lru_hash"


class LruPerCpuHash(MapDef):
    kind = "lru_percpu_hash"


class LpmTrie(MapDef):
    kind = "lpm_trie"
    default_flags = NO_PREALLOC


class RingBuf(MapDef):
    """A ring buffer of ``size`` bytes (a power of two, multiple of the page size)."""

    kind = "ringbuf"

    def __init__(self, size: int = 256 * 1024, *, name: str | None = None):
        super().__init__(0, 0, size, name=name)

    def output(self, data: Ptr, flags: int = 0) -> Value:
        """``bpf_ringbuf_output``: copy ``data`` (a pointer to a struct) into the ring."""
        b = builder_of(data)
        return call(b, "ringbuf_output", self, data, data._type.size, flags)

    def reserve(self, t):
        """``bpf_ringbuf_reserve``: fill the record in the body; it is submitted at the end.

        Call ``discard()`` on the yielded record to drop it instead. The body is
        skipped when the ring is full. Use it as ``with p.reserve(ring, Type) as e:``.
        """
        b = self._builder  # read now: the context manager's body runs later, in __enter__
        if b is None:
            raise DSLError("use p.reserve(ring, Type) inside a program")
        return self._reserve(b, as_type(t))

    @contextlib.contextmanager
    def _reserve(self, b, t) -> Iterator[Ptr]:
        rec = call(b, "ringbuf_reserve", self, t.size, 0)
        end = b.label("full")
        b.emit(Jump, op=JumpOp.JEQ, dst=rec.loc, src=0, target=end, width=64)
        record = Record(b, t, rec.loc, 0, Region())
        yield record
        if b.dead:
            raise b.error("return_ inside a ring buffer reservation would leak the record; "
                          "discard() or let the block end first")
        if not record._done:
            call(b, "ringbuf_submit", Ptr(b, t, rec.loc, 0, Region()), 0)
        b.mark(end)

    _builder = None


class Record(Ptr):
    """A reserved ring buffer record."""

    __slots__ = ("_done",)

    def __init__(self, *args):
        super().__init__(*args)
        object.__setattr__(self, "_done", False)

    def discard(self) -> None:
        """``bpf_ringbuf_discard``: drop this record instead of submitting it."""
        call(self._b, "ringbuf_discard", Ptr(self._b, self._type, self._base, 0, Region()), 0)
        object.__setattr__(self, "_done", True)


class PerfEventArray(MapDef):
    """Per-CPU perf buffers; ``output(ctx, data)`` writes to the current CPU's."""

    kind = "perf_event_array"

    def __init__(self, *, max_entries: int = 0, name: str | None = None):
        super().__init__(4, 4, max_entries, name=name)

    def output(self, ctx, data: Ptr) -> Value:
        b = builder_of(data)
        return call(b, "perf_event_output", ctx, self, _BPF_F_CURRENT_CPU, data, data._type.size)


class ProgArray(MapDef):
    kind = "prog_array"

    def __init__(self, max_entries: int, *, name: str | None = None):
        super().__init__(4, 4, max_entries, name=name)

    def tail_call(self, ctx, index) -> None:
        """``bpf_tail_call``: jump to program ``index``; falls through if it is empty."""
        b = ctx._b
        call(b, "tail_call", ctx, self, index)


class _Redirect(MapDef):
    def redirect(self, key, flags: int = 0) -> Value:
        """``bpf_redirect_map``: the verdict to return (XDP_REDIRECT, or ``flags`` on a miss)."""
        b = builder_of(key)
        return call(b, "redirect_map", self, key, flags)


class DevMap(_Redirect):
    kind = "devmap"

    def __init__(self, max_entries: int, *, name: str | None = None):
        super().__init__(u32, u32, max_entries, name=name)


class DevMapHash(DevMap):
    kind = "devmap_hash"


class CpuMap(_Redirect):
    kind = "cpumap"

    def __init__(self, max_entries: int, *, qsize_value: Scalar = u32, name: str | None = None):
        super().__init__(u32, qsize_value, max_entries, name=name)


class XskMap(_Redirect):
    kind = "xskmap"

    def __init__(self, max_entries: int, *, name: str | None = None):
        super().__init__(u32, u32, max_entries, name=name)


class SockMap(MapDef):
    kind = "sockmap"

    def __init__(self, max_entries: int, *, name: str | None = None):
        super().__init__(u32, u32, max_entries, name=name)


class SockHash(MapDef):
    kind = "sockhash"

    def __init__(self, key, max_entries: int, *, name: str | None = None):
        super().__init__(key, u32, max_entries, name=name)


class Queue(MapDef):
    kind = "queue"

    def __init__(self, value, max_entries: int, *, name: str | None = None):
        super().__init__(0, value, max_entries, name=name)


class Stack(Queue):
    kind = "stack"
