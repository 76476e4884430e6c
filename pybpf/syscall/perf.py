"""perf_event_open(2) and the perf ring buffer (BPF_MAP_TYPE_PERF_EVENT_ARRAY output).

A perf event fd is two things here: the anchor of a tracepoint attachment
(PERF_TYPE_TRACEPOINT, see attach/tracing.py), and, for
PERF_COUNT_SW_BPF_OUTPUT events, one CPU's buffer for bpf_perf_event_output().

Buffer layout (include/uapi/linux/perf_event.h), mmap()ed as 1 + 2^n pages:

    page 0   struct perf_event_mmap_page: ... data_head @1024, data_tail @1032,
             data_offset @1040, data_size @1048
    pages 1.. data: records { u32 type; u16 misc; u16 size; payload }, wrapping
             PERF_RECORD_SAMPLE (9): u32 raw_size; raw bytes (PERF_SAMPLE_RAW)
             PERF_RECORD_LOST (2):   u64 id; u64 lost

The kernel advances data_head after writing; the reader consumes up to it and
publishes data_tail.  When the reader falls behind the kernel drops samples and
later writes one PERF_RECORD_LOST with their count.
"""

from __future__ import annotations

import mmap
import os
import select
import struct
from collections.abc import Callable
from typing import Any

from pybpf.errors import BPFError
from pybpf.syscall._ffi import NR_PERF_EVENT_OPEN, address
from pybpf.syscall._ffi import ffi as _ffi
from pybpf.syscall._ffi import libc as _libc
from pybpf.syscall._perf_uapi import (
    MMAP_PAGE_DATA_HEAD,
    MMAP_PAGE_DATA_TAIL,
    PERF_ATTR_WATERMARK,
    PERF_COUNT_SW_BPF_OUTPUT,
    PERF_EVENT_IOC_DISABLE,
    PERF_EVENT_IOC_ENABLE,
    PERF_EVENT_IOC_SET_BPF,
    PERF_FLAG_FD_CLOEXEC,
    PERF_RECORD_LOST,
    PERF_RECORD_SAMPLE,
    PERF_SAMPLE_RAW,
    PERF_SIZES,
    PERF_TYPE_SOFTWARE,
    PERF_TYPE_TRACEPOINT,
)
from pybpf.syscall._uapi import Cmd
from pybpf.syscall.bpf import bpf, new_attr
from pybpf.syscall.events import flat_codec, gc_paused, object_builder

__all__ = ["PerfBuffer", "PerfEvent", "perf_event_open", "PERF_TYPE_TRACEPOINT",
           "PERF_TYPE_SOFTWARE", "PERF_COUNT_SW_BPF_OUTPUT", "PERF_EVENT_IOC_ENABLE",
           "PERF_EVENT_IOC_DISABLE", "PERF_EVENT_IOC_SET_BPF"]

for _name, _size in PERF_SIZES.items():
    if _ffi.sizeof(_name) != _size:
        raise ImportError(f"cffi lays out {_name} in {_ffi.sizeof(_name)} bytes, gcc in {_size}; "
                          "regenerate with tools/gen_attach_uapi.py, then tools/gen_ffi.py")

_DATA_HEAD, _DATA_TAIL = MMAP_PAGE_DATA_HEAD, MMAP_PAGE_DATA_TAIL
_HDR = struct.Struct("<IHH")
_U32 = struct.Struct("<I")
_LOST = struct.Struct("<QQ")
_U64 = struct.Struct("<Q")


class PerfEvent:
    """An owned perf event fd."""

    def __init__(self, fd: int, what: str):
        self.fd, self.what = fd, what

    def ioctl(self, request: int, arg: int = 0) -> None:
        """ioctl() on the event (PERF_EVENT_IOC_*); OSError with errno on failure."""
        if _libc.ioctl(self.fd, _ffi.cast("unsigned long", request), _ffi.cast("long", arg)) < 0:
            err = _ffi.errno
            raise BPFError(err, f"ioctl {request:#x} on perf event", f"{self.what}: "
                           f"{os.strerror(err)}")

    def fileno(self) -> int:
        """The fd."""
        return self.fd

    def close(self) -> None:
        """Close the fd (idempotent); a program set with PERF_EVENT_IOC_SET_BPF goes with it."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def perf_event_open(type_: int, config: int, *, pid: int = -1, cpu: int = 0,
                    sample_type: int = 0, sample_period: int = 0, wakeup_events: int = 0,
                    flags: int = 0, what: str = "perf event") -> PerfEvent:
    """perf_event_open(attr, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC) -> PerfEvent."""
    attr = _ffi.new("struct perf_event_attr *")
    attr.type = type_
    attr.size = _ffi.sizeof("struct perf_event_attr")
    attr.config = config
    attr.sample_type = sample_type
    attr.sample_period = sample_period
    attr.wakeup_events = wakeup_events
    attr.flags = flags
    fd = _libc.syscall(NR_PERF_EVENT_OPEN, attr, _ffi.cast("int", pid), _ffi.cast("int", cpu),
                       _ffi.cast("int", -1), _ffi.cast("unsigned long", PERF_FLAG_FD_CLOEXEC))
    if fd < 0:
        err = _ffi.errno
        raise BPFError(err, "perf_event_open", f"{what}: {os.strerror(err)}")
    return PerfEvent(int(fd), what)


def online_cpus() -> list[int]:
    """CPUs listed in /sys/devices/system/cpu/online ("0-3,5")."""
    with open("/sys/devices/system/cpu/online") as f:
        text = f.read().strip()
    cpus: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def _map_set(map_fd: int, key: int, value: int) -> None:
    k = _ffi.new("uint32_t *", key)
    v = _ffi.new("uint32_t *", value)
    attr = new_attr()
    attr.map_fd = map_fd
    attr.key = address(k)
    attr.value = address(v)
    bpf(Cmd.MAP_UPDATE_ELEM, attr)


class _Decoder:
    """Turns raw sample bytes into records: bytes, tuples or pybpf.types values."""

    def __init__(self, decode: Any, tuples: bool):
        self.decode, self.tuples = decode, tuples
        self.codec = flat_codec(decode) if decode is not None else None
        self.build = object_builder(decode, self.codec[1]) if self.codec else None
        self._runs: dict[tuple[int, int], struct.Struct] = {}

    def one(self, buf: memoryview) -> Any:
        if self.decode is None:
            return bytes(buf)
        if self.tuples and self.codec:
            return self.codec[0].unpack_from(buf)
        return self.decode.unpack(buf)

    def run(self, span: memoryview, stride: int, raw: int) -> list:
        """Decode k samples laid out every ``stride`` bytes, raw data at +12."""
        if self.codec is not None and self.codec[0].size <= raw:
            codec = self._runs.get((stride, raw))
            if codec is None:
                inner = self.codec[0]
                codec = struct.Struct(f"<12x{inner.format[1:]}{stride - 12 - inner.size}x")
                self._runs[(stride, raw)] = codec
            if self.tuples:
                return list(codec.iter_unpack(span))
            return self.build(codec.iter_unpack(span))
        blob = bytes(span)
        chunks = [blob[i:i + raw] for i in range(12, len(blob), stride)]
        if self.decode is None:
            return chunks
        return [self.decode.unpack(c) for c in chunks]


class _CpuRing:
    """One CPU's mmap()ed perf buffer."""

    def __init__(self, cpu: int, pages: int, watermark: int):
        self.cpu = cpu
        if watermark:
            flags, wake = PERF_ATTR_WATERMARK, watermark
        else:
            flags, wake = 0, 1
        self.event = perf_event_open(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_BPF_OUTPUT, cpu=cpu,
                                     sample_type=PERF_SAMPLE_RAW, sample_period=1,
                                     wakeup_events=wake, flags=flags,
                                     what=f"BPF output buffer of CPU {cpu}")
        page = mmap.PAGESIZE
        self.size = pages * page
        self.mm = mmap.mmap(self.event.fd, page + self.size, mmap.MAP_SHARED,
                            mmap.PROT_READ | mmap.PROT_WRITE)
        self.view = memoryview(self.mm)
        self.data = self.view[page:]
        self.lost = 0

    def drain(self, out: list, decoder: _Decoder, limit: int | None) -> int:
        """Append (cpu, record) for the samples available now; return how many."""
        head = int.from_bytes(self.view[_DATA_HEAD:_DATA_HEAD + 8], "little")
        tail = int.from_bytes(self.view[_DATA_TAIL:_DATA_TAIL + 8], "little")
        size, data, cpu, start = self.size, self.data, self.cpu, len(out)
        while tail < head and (limit is None or len(out) - start < limit):
            off = tail % size
            if off + 8 <= size:
                word = _U64.unpack_from(data, off)[0]
            else:
                word = _U64.unpack(self._wrapped(off, 8))[0]
            rtype, rsize = word & 0xFFFFFFFF, word >> 48
            if rtype == PERF_RECORD_SAMPLE and off + rsize <= size:
                # a run of same-sized samples that does not cross the end: decode at once
                n = min((head - tail) // rsize, (size - off) // rsize)
                if limit is not None:
                    n = min(n, limit - (len(out) - start))
                heads = data[off:off + n * rsize].cast("Q")[::rsize // 8].tolist()
                k = n if heads.count(word) == n else next(
                    i for i, h in enumerate(heads) if h != word)
                raw = _U32.unpack_from(data, off + 8)[0]
                out.extend((cpu, r) for r in decoder.run(data[off:off + k * rsize], rsize, raw))
                tail += k * rsize
                continue
            rec = memoryview(self._wrapped(off, rsize)) if off + rsize > size else \
                data[off:off + rsize]
            if rtype == PERF_RECORD_SAMPLE:
                raw = _U32.unpack_from(rec, 8)[0]
                out.append((cpu, decoder.one(rec[12:12 + raw])))
            elif rtype == PERF_RECORD_LOST:
                self.lost += _LOST.unpack_from(rec, 8)[1]
            tail += rsize
        self.view[_DATA_TAIL:_DATA_TAIL + 8] = tail.to_bytes(8, "little")
        return len(out) - start

    def _wrapped(self, off: int, length: int) -> bytes:
        first = self.size - off
        return bytes(self.data[off:]) + bytes(self.data[:length - first])

    def close(self) -> None:
        self.data.release()
        self.view.release()
        self.mm.close()
        self.event.close()


class PerfBuffer:
    """Reader of a BPF_MAP_TYPE_PERF_EVENT_ARRAY: one perf buffer per online CPU.

    ``decode`` (e.g. a pybpf.types Struct) turns raw sample bytes into values
    with ``decode.unpack(buf)``; ``lost`` totals the samples the kernel dropped.
    """

    def __init__(self, perf_map: Any, *, pages: int = 8, decode: Any = None,
                 tuples: bool = False, watermark: int = 0, cpus: list[int] | None = None):
        if pages & (pages - 1):
            raise ValueError(f"pages must be a power of two, not {pages}")
        self.map_fd = perf_map if isinstance(perf_map, int) else perf_map.fd
        self._decoder = _Decoder(decode, tuples)
        self.rings: list[_CpuRing] = []
        self.epoll = select.epoll()
        try:
            for cpu in cpus if cpus is not None else online_cpus():
                ring = _CpuRing(cpu, pages, watermark)
                self.rings.append(ring)
                _map_set(self.map_fd, cpu, ring.event.fd)
                self.epoll.register(ring.event.fd, select.EPOLLIN)
                ring.event.ioctl(PERF_EVENT_IOC_ENABLE)
        except BaseException:
            self.close()
            raise
        self._by_fd = {r.event.fd: r for r in self.rings}

    @property
    def lost(self) -> int:
        """Samples the kernel dropped because a buffer was full (PERF_RECORD_LOST)."""
        return sum(r.lost for r in self.rings)

    def drain(self, limit: int | None = None) -> list[tuple[int, Any]]:
        """(cpu, record) for every sample available now, in order within each CPU."""
        out: list[tuple[int, Any]] = []
        with gc_paused():
            for ring in self.rings:
                ring.drain(out, self._decoder, limit)
        return out

    def poll(self, timeout: float | None = None) -> list[tuple[int, Any]]:
        """Wait up to ``timeout`` s (None: forever) for samples, then drain()."""
        out = self.drain()
        if not out:
            self.epoll.poll(-1 if timeout is None else timeout)
            out = self.drain()
        return out

    def consume(self, callback: Callable[[int, Any], Any]) -> int:
        """Call ``callback(cpu, record)`` for every sample available now; return how many."""
        records = self.drain()
        for cpu, rec in records:
            callback(cpu, rec)
        return len(records)

    def fileno(self) -> int:
        """The epoll fd (readable when some buffer has data), for outer event loops."""
        return self.epoll.fileno()

    def close(self) -> None:
        """Unmap the buffers and close the events (idempotent)."""
        for r in self.rings:
            r.close()
        self.rings = []
        self.epoll.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
