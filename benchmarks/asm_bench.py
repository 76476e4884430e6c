"""Assembler and codec throughput, against llvm-mc in the same run.

    python benchmarks/asm_bench.py [--lines 1000000]

Prints instructions/s for binary encode and decode, lines/s for text
assembly, and the ratio to `llvm-mc -triple bpfel -mcpu=v4 -filetype=obj`
on the same text (when llvm-mc-19 or llvm-mc is installed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from pybpf.asm import decode, encode  # noqa: E402
from pybpf.asm.llvm import assemble  # noqa: E402

# A realistic mix (packet parsing, map calls, stores, jumps, 64-bit constants)
# whose offsets and constants vary from block to block, so that a generated
# program of a million lines has few verbatim repeats beyond the ones real
# code has (`r2 = r10`, `exit`, ...).
BLOCK = """\
r2 = *(u32 *)(r1 + {a})
r3 = *(u32 *)(r1 + 4)
r4 = r2
r4 += {b}
if r4 > r3 goto +{c}
r5 = *(u16 *)(r2 + {d})
if r5 != {e} goto +7
w5 = *(u8 *)(r2 + {d})
*(u32 *)(r10 - {f}) = w5
r6 = {g:#x} ll
r2 = r10
r2 += -{f}
lock *(u64 *)(r0 + {a}) += r6
call {h}
r0 = {e}
exit
"""


def make_text(lines: int) -> str:
    """Deterministic pseudo-random program text of about ``lines`` lines."""
    out, x = [], 12345
    for _ in range(max(1, lines // BLOCK.count("\n"))):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out.append(BLOCK.format(a=x % 512, b=x % 1500, c=x % 9, d=x % 64 * 2, e=x % 65536,
                                f=(x % 63 + 1) * 8, g=x * 7919 + (1 << 33), h=x % 200))
    return "".join(out)


def _time(fn, *args):
    t0 = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    text = make_text(args.lines)
    nlines = text.count("\n")

    t_asm, prog = _time(assemble, text)
    insns = prog.instructions
    t_enc, code = _time(encode, insns)
    t_dec, decoded = _time(decode, code)
    assert decoded == insns
    print(f"lines: {nlines}, instructions: {len(insns)}")
    print(f"text assembly : {nlines / t_asm:12,.0f} lines/s  ({t_asm:.2f} s)")
    print(f"binary encode : {len(insns) / t_enc:12,.0f} insns/s  ({t_enc:.2f} s)")
    print(f"binary decode : {len(insns) / t_dec:12,.0f} insns/s  ({t_dec:.2f} s)")

    mc = shutil.which("llvm-mc-19") or shutil.which("llvm-mc")
    if not mc:
        print("llvm-mc not installed: no reference")
        return
    with tempfile.TemporaryDirectory() as tmp:
        src, obj = os.path.join(tmp, "in.s"), os.path.join(tmp, "out.o")
        with open(src, "w") as f:
            f.write(text)
        t0 = time.perf_counter()
        subprocess.run([mc, "-triple", "bpfel", "-mcpu=v4", "-filetype=obj", src, "-o", obj],
                       check=True)
        t_mc = time.perf_counter() - t0
    print(f"llvm-mc ({os.path.basename(mc)}): {nlines / t_mc:12,.0f} lines/s  ({t_mc:.2f} s)")
    print(f"ratio pybpf/llvm-mc time: {t_asm / t_mc:.2f} (<= 1.0 meets the target)")


if __name__ == "__main__":
    main()
