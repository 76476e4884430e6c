"""BTF benchmarks: cold-process lookups and full parses of the running kernel's BTF.

Each figure is measured in a fresh interpreter (subprocess), so imports and
the vmlinux index are paid every time, as a user's first call pays them.

    .venv/bin/python benchmarks/btf_bench.py [--repeat N] [--construct]

Targets (issue 5): struct sk_buff field offsets < 300 ms cold; full parse < 3 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

SETUP = "import time; t0 = time.perf_counter()\n"
REPORT = "\nprint(time.perf_counter() - t0)"

CASES = {
    "sk_buff field offsets (import + index + lookup)": (
        "from pybpf.btf.kernel import vmlinux\n"
        "skb = vmlinux().struct('sk_buff')\n"
        "offs = [skb.offsetof(n) for n in ('len', 'protocol', 'data', 'cb', 'mark')]",
        0.300),
    "full parse, fast reader (all types decoded, ids checked)": (
        "from pybpf.btf.reader import TypeIndex\n"
        "spec = TypeIndex(open('/sys/kernel/btf/vmlinux', 'rb').read()).spec()",
        3.0),
}
CONSTRUCT_CASES = {
    "full parse, construct (checked declaration)": (
        "from pybpf.btf import codec\n"
        "spec = codec.parse(open('/sys/kernel/btf/vmlinux', 'rb').read())", None),
    "rebuild vmlinux bytes, construct build": (
        "from pybpf.btf import codec\nfrom pybpf.btf.reader import TypeIndex\n"
        "s = TypeIndex(open('/sys/kernel/btf/vmlinux', 'rb').read()).spec()\n"
        "t0 = time.perf_counter()\n"
        "codec.encode(s.types, strings=s.strings)", None),
}


def run(body: str) -> tuple[float, float]:
    """(seconds inside the process, wall seconds of the whole process)."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", SETUP + body + REPORT], check=True,
                         capture_output=True, text=True).stdout
    return float(out.split()[-1]), time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--construct", action="store_true", help="also time construct paths")
    args = parser.parse_args()
    cases = dict(CASES, **(CONSTRUCT_CASES if args.construct else {}))
    failed = False
    for name, (body, target) in cases.items():
        runs = [run(body) for _ in range(args.repeat)]
        inner = statistics.median(r[0] for r in runs)
        wall = statistics.median(r[1] for r in runs)
        verdict = ""
        if target is not None:
            ok = wall < target
            failed |= not ok
            verdict = f"  target < {target * 1000:.0f} ms: {'ok' if ok else 'MISSED'}"
        print(f"{name}: {inner * 1000:.0f} ms in process, {wall * 1000:.0f} ms whole "
              f"process (median of {args.repeat}){verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
