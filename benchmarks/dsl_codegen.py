"""Code the DSL generates for every program in programs/ and tests/dsl/golden/.

    sudo .venv/bin/python benchmarks/dsl_codegen.py [--no-load]

For each DSL program: instruction slots, how many are moves / bounds checks
/ returns (the usual waste), build time, and, when loaded, the verifier's
processed-instruction count. Run before and after a code generation change
to see what it bought; benchmarks/dsl_vs_clang.py compares against clang.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from pybpf.asm import Alu, Arith, Exit, Jump, Reg  # noqa: E402
from pybpf.dsl import ProgramDef  # noqa: E402


def programs() -> dict[str, ProgramDef]:
    found: dict[str, ProgramDef] = {}
    for name in sorted(os.listdir(os.path.join(ROOT, "programs"))):
        if not name.endswith(".py") or name.startswith("_"):
            continue
        try:
            mod = importlib.import_module(f"programs.{name[:-3]}")
        except Exception as e:  # a program module another helper is still writing
            print(f"# programs/{name}: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        for attr, obj in vars(mod).items():
            if isinstance(obj, ProgramDef):
                found[f"{name[:-3]}.{attr}"] = obj
    path = os.path.join(ROOT, "tests", "dsl", "golden", "golden_programs.py")
    spec = importlib.util.spec_from_file_location("golden_programs", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for attr, obj in mod.PROGRAMS.items():
        found[f"golden.{attr}"] = obj
    return found


def census(built) -> dict:
    insns = list(built.program)
    moves = sum(isinstance(i, Alu) and i.op is Arith.MOV and isinstance(i.src, Reg)
                for i in insns)
    checks = sum(isinstance(i, Jump) and isinstance(i.src, Reg) for i in insns)
    exits = sum(isinstance(i, Exit) for i in insns)
    return {"slots": sum(i.slots for i in insns), "moves": moves, "reg-jumps": checks,
            "exits": exits}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-load", action="store_true", help="skip loading (no verifier counts)")
    args = ap.parse_args()
    print(f"{'program':38} {'slots':>5} {'moves':>5} {'rjmp':>4} {'exits':>5} "
          f"{'build ms':>8} {'verified':>8}")
    total = 0
    for name, prog in programs().items():
        t0 = time.perf_counter()
        try:
            built = prog.build()
        except Exception as e:
            print(f"{name:38} build failed: {e}")
            continue
        ms = (time.perf_counter() - t0) * 1000
        c = census(built)
        total += c["slots"]
        verified = "-"
        if not args.no_load:
            try:
                with prog.load(stats=True) as loaded:
                    stats = getattr(loaded.program, "stats", None)
                    verified = str(stats.processed_insns) if stats else "?"
            except Exception as e:
                verified = f"load failed ({type(e).__name__})"
        print(f"{name:38} {c['slots']:5} {c['moves']:5} {c['reg-jumps']:4} {c['exits']:5} "
              f"{ms:8.1f} {verified:>8}")
    print(f"{'total slots':38} {total:5}")


if __name__ == "__main__":
    main()
