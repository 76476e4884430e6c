"""Map operations per second from Python, against the same calls from C (and bpftool).

    .venv/bin/python benchmarks/maps_bench.py [--single N] [--big N]

Measures single-element lookups and updates, a batch update of a large hash
map and its dump (items(), batched), then runs the same operations in a
small C program (benchmarks/maps_bench_ref.c, built here with gcc) and
``bpftool map dump`` when present, and prints the ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

from pybpf.syscall import Map, map_batch
from pybpf.types import u32, u64

HERE = os.path.dirname(os.path.abspath(__file__))


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds else float("inf")


def python_figures(single: int, big: int) -> dict[str, float]:
    out = {}
    with Map.create("hash", u32, u64, single, name="bench_small") as m:
        t = time.perf_counter()
        for k in range(single):
            m[k] = 1
        out["update"] = rate(single, time.perf_counter() - t)
        t = time.perf_counter()
        for k in range(single):
            m[k]
        out["lookup"] = rate(single, time.perf_counter() - t)
    with Map.create("hash", u32, u64, big, name="bench_big") as m:
        pairs = [(k, k) for k in range(big)]
        t = time.perf_counter()
        m.update(pairs)
        out["batch_update"] = rate(big, time.perf_counter() - t)
        t = time.perf_counter()
        n = sum(1 for _ in m.items())
        out["batch_dump_seconds"] = time.perf_counter() - t
        out["batch_dump_entries"] = n
        t = time.perf_counter()
        raw = sum(count for _, _, count in map_batch.lookup_batches(m))
        out["raw_batch_dump_seconds"] = time.perf_counter() - t
        assert raw == big
        if shutil.which("bpftool"):
            t = time.perf_counter()
            subprocess.run(["bpftool", "map", "dump", "id", str(m.id)], check=True,
                           stdout=subprocess.DEVNULL)
            out["bpftool_dump_seconds"] = time.perf_counter() - t
    return out


def c_figures(single: int, big: int) -> dict[str, float] | None:
    if not shutil.which("gcc"):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "ref")
        subprocess.run(["gcc", "-O2", "-o", exe, os.path.join(HERE, "maps_bench_ref.c")],
                       check=True)
        text = subprocess.run([exe, str(single), str(big)], check=True, capture_output=True,
                              text=True).stdout
    return {name: float(value) for name, value in (line.split() for line in text.splitlines())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--single", type=int, default=100_000)
    ap.add_argument("--big", type=int, default=1_000_000)
    args = ap.parse_args()
    py = python_figures(args.single, args.big)
    c = c_figures(args.single, args.big)
    print(f"{'operation':<26}{'pybpf':>14}{'C (gcc)':>14}{'C/pybpf':>10}")
    for name in ("update", "lookup", "batch_update"):
        cv = c.get(name) if c else None
        ratio = f"{cv / py[name]:.1f}x" if cv else "-"
        print(f"{name + ' /s':<26}{py[name]:>14,.0f}{cv or 0:>14,.0f}{ratio:>10}")
    for name in ("batch_dump_seconds",):
        cv = c.get(name) if c else None
        ratio = f"{py[name] / cv:.1f}x" if cv else "-"
        print(f"{'dump ' + str(args.big) + ' (s)':<26}{py[name]:>14.3f}{cv or 0:>14.3f}{ratio:>10}")
    print(f"{'  raw chunks, no decode (s)':<26}{py['raw_batch_dump_seconds']:>14.3f}")
    if "bpftool_dump_seconds" in py:
        print(f"{'bpftool map dump (s)':<26}{py['bpftool_dump_seconds']:>14.3f}"
              f"   (pybpf is {py['bpftool_dump_seconds'] / py['batch_dump_seconds']:.1f}x faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
