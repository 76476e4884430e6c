"""Generate tests/asm/data/llvm_mc_v4.txt, pybpf's encodings checked by llvm-mc 19.

Every opcode form of the instruction model that llvm-mc 19 can encode is
built here as a pybpf instruction with edge values (offsets -32768..32767,
imm -2^31..2^31-1, every register), printed with ``str()``, and assembled by
``llvm-mc-19 -triple bpfel -mcpu=v4 -show-encoding``. The table keeps
llvm-mc's bytes as the expected encoding, one row per instruction::

    pybpf text <TAB> llvm-mc bytes (hex) <TAB> llvm-mc's own printing <TAB> constructor

Forms llvm-mc 19 cannot encode (load-acquire/store-release, gotol beyond
s16, kfunc and local calls by number, map value offsets, LD_IND with an
offset) are in the hand-written tests/asm/data/kernel_encodings.txt.

    python tools/gen_llvm_oracle.py            # rewrite the table
    python tools/gen_llvm_oracle.py --check    # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pybpf.asm import (  # noqa: E402
    AddrSpaceCast,
    Alu,
    Arith,
    Atomic,
    AtomicKind,
    ByteOrder,
    Call,
    CallX,
    Endian,
    Exit,
    Goto,
    GotoLong,
    Jump,
    Load,
    LoadAbs,
    LoadBtfId,
    LoadFunc,
    LoadImm64,
    LoadInd,
    LoadMap,
    LoadSX,
    MayGoto,
    Neg,
    Reg,
    Size,
    Store,
    StoreImm,
)
from pybpf.asm.instruction import Instruction  # noqa: E402
from pybpf.asm.jump import CONDITIONS  # noqa: E402

TABLE = ROOT / "tests" / "asm" / "data" / "llvm_mc_v4.txt"
LLVM_MC = "llvm-mc-19"
COMMAND = ["-triple", "bpfel", "-mcpu=v4", "-show-encoding"]

S16 = (-32768, -1, 0, 1, 32767)
S32 = (-2147483648, -1, 0, 1, 0x7FFFFFFF)
IMM64 = (0, 1, -1, 0xFFFFFFFF, 0x80000000, 0x123456789, -(1 << 63), (1 << 63) - 1, 0xFFFF, -0x10000)
R = list(Reg)


def _regs(i: int) -> tuple[Reg, Reg]:
    """A (dst, src) pair that walks all writable dsts and all srcs including r10."""
    return R[i % 10], R[(i * 3 + 1) % 11]


def instructions() -> list[Instruction]:
    """One instruction per opcode form and edge value that llvm-mc 19 can encode."""
    out: list[Instruction] = []
    n = 0
    for width in (64, 32):
        for op in Arith:
            if op == Arith.MOVSX32 and width == 32:
                continue
            dst, src = _regs(n)
            n += 1
            out.append(Alu(op, dst, src, width))
            if op.sign_extends:
                continue
            for imm in S32:
                out.append(Alu(op, dst, imm, width))
        out.append(Neg(R[n % 10], width))
    for order in ByteOrder:
        for bits in (16, 32, 64):
            out.append(Endian(order, R[bits % 10], bits))
    out += [AddrSpaceCast(R[1], R[2], 1, 0), AddrSpaceCast(R[3], R[10], 0, 1)]
    for width in (64, 32):
        for op in CONDITIONS:
            dst, src = _regs(n)
            n += 1
            out.append(Jump(op, dst, src, S16[n % 5], width))
            out.append(Jump(op, R[10], src, 1, width))
            for k, imm in enumerate(S32):
                out.append(Jump(op, dst, imm, S16[k], width))
    for off in S16:
        out += [Goto(off), GotoLong(off), MayGoto(off)]
    out += [Call(0), Call(1), Call(212), Call(0x7FFFFFFF), Exit()]
    out += [CallX(r) for r in (R[0], R[2], R[10])]
    for size in Size:
        for k, off in enumerate(S16):
            dst, src = _regs(n + k)
            out.append(Load(dst, src, off, size))
            if size != Size.DW:
                out.append(LoadSX(dst, src, off, size))
            out.append(Store(src, dst, off, size))
            out.append(StoreImm(src, S32[k], off, size))
        n += 5
    for size in (Size.W, Size.DW):
        for k, kind in enumerate(AtomicKind):
            dst, src = _regs(n + k)
            off = S16[k % 5]
            if kind == AtomicKind.CMPXCHG:
                out.append(Atomic(kind, R[10], R[2], off, size))
            else:
                out.append(Atomic(kind, dst, src if src != R[10] else R[5], off, size))
    for k, imm in enumerate(IMM64):
        out.append(LoadImm64(R[k % 10], imm))
    out += [LoadMap(R[1], 3), LoadMap(R[2], 0x7FFFFFFF), LoadMap(R[3], 4, by_index=True),
            LoadMap(R[4], 5, value_offset=0), LoadMap(R[5], 6, value_offset=0, by_index=True),
            LoadBtfId(R[6], 1234), LoadFunc(R[7], 3), LoadFunc(R[8], -2)]
    for size in (Size.B, Size.H, Size.W):
        out += [LoadAbs(size, 0), LoadAbs(size, 14), LoadAbs(size, 0x7FFFFFFF),
                LoadInd(size, R[1], 0), LoadInd(size, R[9], 0)]
    return out


_ENC = re.compile(r"^\s*(.*?)\s*# encoding: \[([^\]]*)\]\s*$")
_ERR = re.compile(r":(\d+):\d+: error: (.*)")


def run_llvm_mc(lines: list[str], llvm_mc: str = LLVM_MC) -> list[tuple[str, bytes] | str]:
    """Assemble each line; per line, (llvm's printing, bytes) or the error message."""
    proc = subprocess.run([llvm_mc, *COMMAND], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, check=False)
    errors = {int(m.group(1)): m.group(2) for m in map(_ERR.search, proc.stderr.splitlines()) if m}
    encodings = [m for m in map(_ENC.match, proc.stdout.splitlines()) if m]
    results: list[tuple[str, bytes] | str] = []
    it = iter(encodings)
    for number, _ in enumerate(lines, 1):
        if number in errors:
            results.append(errors[number])
            continue
        m = next(it)
        raw = m.group(2).split(",")
        if not all(re.fullmatch(r"0x[0-9a-f]{2}", b) for b in raw):
            results.append(f"needs a fixup: [{m.group(2)}]")
            continue
        results.append((" ".join(m.group(1).split()), bytes(int(b, 16) for b in raw)))
    if next(it, None) is not None:
        raise RuntimeError("llvm-mc printed more encodings than it was given lines")
    return results


def rows(llvm_mc: str = LLVM_MC) -> list[tuple[str, str, str, str]]:
    """(pybpf text, llvm-mc hex, llvm-mc text, constructor) for every instruction."""
    insns = instructions()
    texts = [str(i) for i in insns]
    out = []
    for insn, text, result in zip(insns, texts, run_llvm_mc(texts, llvm_mc), strict=True):
        if isinstance(result, str):
            raise RuntimeError(f"llvm-mc rejects {text!r} ({insn!r}): {result}")
        printed, data = result
        out.append((text, data.hex(" "), printed, repr(insn)))
    return out


HEADER = """\
# generated by tools/gen_llvm_oracle.py; do not edit
# llvm-mc-19 -triple bpfel -mcpu=v4 -show-encoding, fed the str() of each pybpf instruction.
# columns (tab-separated): pybpf text, llvm-mc encoding, llvm-mc's printing, pybpf constructor
"""


def render(table: list[tuple[str, str, str, str]]) -> str:
    return HEADER + "".join("\t".join(row) + "\n" for row in table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--llvm-mc", default=LLVM_MC)
    args = parser.parse_args(argv)
    if shutil.which(args.llvm_mc) is None:
        print(f"{args.llvm_mc} not found (apt-get install llvm-19)", file=sys.stderr)
        return 1
    text = render(rows(args.llvm_mc))
    if args.check:
        if TABLE.read_text() != text:
            print(f"{TABLE} is stale: run tools/gen_llvm_oracle.py", file=sys.stderr)
            return 1
        return 0
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    TABLE.write_text(text)
    print(f"wrote {TABLE.relative_to(ROOT)}: {text.count(chr(10)) - 3} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
