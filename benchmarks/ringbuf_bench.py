"""Ring buffer and perf buffer readers: records per second consumed from Python, vs C.

    sudo .venv/bin/python benchmarks/ringbuf_bench.py [--records N]

Producer: an XDP program run by BPF_PROG_TEST_RUN (``repeat`` times in the
kernel) that emits one 32-byte record {seq, cpu, magic, seq*3} per run.

* drain: the producer fills the buffer with N records first, then the reader
  consumes them all; the figure is the reader's own rate (records/s).
* live: a producer thread runs while the reader polls; the figure is what the
  reader consumed per second, and "lost" what the producer could not place
  (the program keeps producing at kernel speed, far faster than any reader).
* C: benchmarks/ringbuf_reader.c (gcc, raw mmap, no libbpf) drains the same
  prefilled buffer, copying every record out.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "attach"))

import kit  # noqa: E402  (hand-encoded producer programs, until pybpf.asm is used here)

from pybpf.syscall._uapi import MapType  # noqa: E402
from pybpf.syscall.events import RingBuffer  # noqa: E402
from pybpf.syscall.perf import PerfBuffer, online_cpus  # noqa: E402
from pybpf.syscall.testrun import test_run  # noqa: E402
from pybpf.types import Struct, u64  # noqa: E402

PACKET = bytes(64)


class Record(Struct):
    seq: u64
    cpu: u64
    magic: u64
    seq_x3: u64


def _pow2_at_least(n: int) -> int:
    return 1 << max(12, (n - 1).bit_length())


def _fill(prog, n: int) -> None:
    left = n
    while left:
        step = min(left, 1_000_000)
        test_run(prog, PACKET, repeat=step)
        left -= step


def build_c_reader() -> str | None:
    if not shutil.which("gcc"):
        return None
    out = os.path.join(tempfile.mkdtemp(prefix="pybpf-bench-"), "ringbuf_reader")
    subprocess.run(["gcc", "-O2", "-o", out, os.path.join(HERE, "ringbuf_reader.c")],
                   check=True)
    return out


def ring_drain(n: int, mode: str) -> float:
    seq = kit.counter_map()
    size = _pow2_at_least(n * 40)
    with kit.Map(MapType.RINGBUF, 0, 0, size) as ring:
        prog = kit.ringbuf_producer(seq, ring)
        decode = None if mode == "bytes" else Record
        with RingBuffer(ring, decode=decode, tuples=mode == "tuples") as rb:
            _fill(prog, n)
            t = time.perf_counter()
            got = rb.drain()
            dt = time.perf_counter() - t
    assert len(got) == n, (len(got), n)
    return n / dt


def ring_drain_c(reader: str, n: int) -> float:
    seq = kit.counter_map()
    size = _pow2_at_least(n * 40)
    with kit.Map(MapType.RINGBUF, 0, 0, size) as ring:
        prog = kit.ringbuf_producer(seq, ring)
        _fill(prog, n)
        out = subprocess.run([reader, "ring", str(ring.fd), str(size), str(n)],
                             pass_fds=(ring.fd,), capture_output=True, text=True, check=True)
    count, secs = out.stdout.split()
    assert int(count) == n
    return n / float(secs)


def ring_live(seconds: float, mode: str) -> tuple[float, int, int]:
    seq = kit.counter_map()
    with kit.Map(MapType.RINGBUF, 0, 0, 1 << 24) as ring:
        prog = kit.ringbuf_producer(seq, ring)
        decode = None if mode == "bytes" else Record
        stop = threading.Event()

        def produce():
            while not stop.is_set():
                test_run(prog, PACKET, repeat=20_000)

        with RingBuffer(ring, decode=decode, tuples=mode == "tuples") as rb:
            worker = threading.Thread(target=produce)
            consumed, t = 0, time.perf_counter()
            worker.start()
            while time.perf_counter() - t < seconds:
                consumed += len(rb.poll(0.1))
            stop.set()
            worker.join()
            consumed += len(rb.drain())
            dt = time.perf_counter() - t
        produced = seq.u64()
    return consumed / dt, produced, produced - consumed


def perf_drain(n: int, tuples: bool, reader: str | None = None) -> float:
    seq = kit.counter_map()
    pages = _pow2_at_least(n * 48) // os.sysconf("SC_PAGESIZE")
    with kit.Map(MapType.PERF_EVENT_ARRAY, 4, 4, len(online_cpus())) as perf:
        prog = kit.perf_producer(seq, perf)
        with PerfBuffer(perf, decode=Record, tuples=tuples, pages=pages) as pb:
            _fill(prog, n)
            if reader:
                fds = [r.event.fd for r in pb.rings]
                out = subprocess.run([reader, "perf", str(pages), str(n), *map(str, fds)],
                                     pass_fds=fds, capture_output=True, text=True, check=True)
                count, secs = out.stdout.split()
                assert int(count) == n
                return n / float(secs)
            t = time.perf_counter()
            got = pb.drain()
            dt = time.perf_counter() - t
            assert len(got) == n and pb.lost == 0, (len(got), pb.lost)
    return n / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--live-seconds", type=float, default=2.0)
    args = ap.parse_args()
    n = args.records
    os.sched_setaffinity(0, {0})  # test_run then fills one CPU's perf buffer only
    reader = build_c_reader()
    print(f"{n} records of 32 bytes, best of 3 (records/s)")
    rows = []
    for mode in ("tuples", "bytes", "objects"):
        rows.append((f"ringbuf drain, Python ({mode})", max(ring_drain(n, mode)
                                                            for _ in range(3))))
    c_ring = max(ring_drain_c(reader, n) for _ in range(3)) if reader else None
    for tuples in (True, False):
        rows.append((f"perfbuf drain, Python ({'tuples' if tuples else 'objects'})",
                     max(perf_drain(n, tuples) for _ in range(3))))
    c_perf = max(perf_drain(n, True, reader) for _ in range(3)) if reader else None
    for name, rate in rows:
        ref = c_ring if name.startswith("ringbuf") else c_perf
        ratio = f"  ({rate / ref:.2f} of C)" if ref else ""
        print(f"  {name:36s} {rate / 1e6:7.2f} M/s{ratio}")
    if c_ring:
        print(f"  {'ringbuf drain, C reference':36s} {c_ring / 1e6:7.2f} M/s")
    if c_perf:
        print(f"  {'perfbuf drain, C reference':36s} {c_perf / 1e6:7.2f} M/s")
    os.sched_setaffinity(0, set(online_cpus()))
    for mode in ("tuples", "objects"):
        rate, produced, lost = ring_live(args.live_seconds, mode)
        print(f"  ringbuf live ({mode}): consumed {rate / 1e6:.2f} M/s; produced {produced}, "
              f"lost {lost} (producer unthrottled, at kernel speed)")


if __name__ == "__main__":
    main()
