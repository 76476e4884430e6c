"""Warm build time of the DSL: running the program function, the optimisation
passes, register allocation and assembly, again in a live process.

    .venv/bin/python benchmarks/dsl_build.py [--repeat 30] [--only NAME ...] [--profile NAME]

Prints the median milliseconds per ``ProgramDef.build()`` for the programs the tools
load. No kernel needed: nothing is loaded. ``--profile NAME`` prints the cProfile
report of ``--repeat`` builds of one program instead.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import os
import pstats
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

PROGRAMS = {
    "proto_counter": "programs.proto_counter:proto_counter",
    "tc_logger": "programs.tc_logger:tc_log_ingress",
    "syn_filter": "programs.syn_filter:syn_filter",
    "tc_dnat": "programs.dnat:tc_dnat",
    "xdp_dnat": "programs.dnat:xdp_dnat",
    "xdp_blocker": "programs.xdp_blocker:xdp_blocker",
}


def program(name: str):
    mod, attr = PROGRAMS[name].split(":")
    return getattr(importlib.import_module(mod), attr)


def time_builds(prog, repeat: int) -> float:
    """Median seconds of one build, after one untimed build (caches warm)."""
    prog.build()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        prog.build()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=30, help="builds per program (median)")
    ap.add_argument("--only", nargs="*", choices=PROGRAMS, help="these programs only")
    ap.add_argument("--profile", choices=PROGRAMS, help="cProfile one program's builds")
    args = ap.parse_args()
    if args.profile:
        prog = program(args.profile)
        prog.build()
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.repeat):
            prog.build()
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)
        return
    print(f"{'program':<16} {'build ms':>9}")
    for name in args.only or PROGRAMS:
        print(f"{name:<16} {time_builds(program(name), args.repeat) * 1e3:9.2f}", flush=True)


if __name__ == "__main__":
    main()
