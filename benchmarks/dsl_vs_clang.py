"""pybpf DSL programs against their C twins compiled by clang -O2, in one run.

    sudo .venv/bin/python benchmarks/dsl_vs_clang.py [--repeat 200000]

For each pair (benchmarks/twins/*.c and its pybpf twin) it reports:
instruction count (as loaded, xlated), verifier-processed instructions,
JIT size, ns per packet under BPF_PROG_TEST_RUN (same frame, same repeat),
and source-to-loaded time: clang + bpftool, pybpf in a cold Python process,
pybpf warm (the program generated again at run time in a live process).
Needs clang-19 and bpftool (installed for this benchmark only).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from pybpf.syscall import Program  # noqa: E402


def _frame_udp(src="10.0.0.1", dst="10.0.0.2") -> bytes:
    import socket
    eth = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return eth + ip + struct.pack("!HHHH", 1000, 2000, 8, 0) + bytes(18)


# name: (C file, pybpf module:attr, bpftool type, frame)
TWINS = {
    "ip_blocker": ("twins/ip_blocker.c", "benchmarks.twins.dsl_programs:ip_blocker", "xdp",
                   _frame_udp()),
}
EXTRA_TWINS = os.path.join(HERE, "twins", "extra.json")


def _bpffs() -> tuple[str, bool]:
    mounts = open("/proc/mounts").read()
    if " /sys/fs/bpf bpf " in mounts:
        return "/sys/fs/bpf", False
    subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], check=True)
    return "/sys/fs/bpf", True


def _clang_side(cfile: str, btype: str, frame: bytes, repeat: int, pin_dir: str) -> dict:
    clang = shutil.which("clang-19") or shutil.which("clang")
    with tempfile.TemporaryDirectory() as tmp:
        obj, pin = os.path.join(tmp, "prog.o"), os.path.join(pin_dir, f"twin{os.getpid()}")
        t0 = time.perf_counter()
        subprocess.run([clang, "-O2", "-g", "-target", "bpf", "-mcpu=v3",
                        "-I/usr/include/x86_64-linux-gnu", "-c", os.path.join(HERE, cfile),
                        "-o", obj], check=True)
        subprocess.run(["bpftool", "prog", "load", obj, pin, "type", btype], check=True)
        t_load = time.perf_counter() - t0
        try:
            with Program.from_pinned(pin) as prog:
                info = prog.info()
                run = prog.test_run(frame, repeat=repeat)
            return {"insns": info.xlated_len // 8, "verified": info.verified_insns,
                    "jited": info.jited_len, "ns": run.duration_ns, "ret": run.retval,
                    "load_s": t_load}
        finally:
            os.unlink(pin)


def _pybpf_side(spec: str, frame: bytes, repeat: int) -> dict:
    mod, attr = spec.split(":")
    prog_def = getattr(importlib.import_module(mod), attr)
    with prog_def.load() as loaded:
        info = loaded.program.info()
        run = loaded.test_run(frame, repeat=repeat)
        out = {"insns": info.xlated_len // 8, "verified": info.verified_insns,
               "jited": info.jited_len, "ns": run.duration_ns, "ret": run.retval}
    # warm: generate and load again in this live process
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        with prog_def.load():
            pass
        times.append(time.perf_counter() - t0)
    out["warm_s"] = sorted(times)[len(times) // 2]
    # cold: a fresh interpreter that imports pybpf, builds and loads
    code = (f"import sys; sys.path.insert(0, {ROOT!r}); import importlib; "
            f"importlib.import_module({mod!r}).{attr}.load().close()")
    colds = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        colds.append(time.perf_counter() - t0)
    out["cold_s"] = min(colds)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=200_000)
    args = parser.parse_args()
    twins = dict(TWINS)
    if os.path.exists(EXTRA_TWINS):
        for name, (cfile, spec, btype, frame_hex) in json.load(open(EXTRA_TWINS)).items():
            twins[name] = (cfile, spec, btype, bytes.fromhex(frame_hex))
    pin_dir, mounted = _bpffs()
    rows = []
    try:
        for name, (cfile, spec, btype, frame) in twins.items():
            c = _clang_side(cfile, btype, frame, args.repeat, pin_dir)
            p = _pybpf_side(spec, frame, args.repeat)
            assert c["ret"] == p["ret"], f"{name}: clang returns {c['ret']}, pybpf {p['ret']}"
            rows.append((name, c, p))
    finally:
        if mounted:
            subprocess.run(["umount", pin_dir], check=False)
    hdr = (f"{'program':<14} {'insns c/py':>11} {'verified c/py':>14} {'jit bytes c/py':>15} "
           f"{'ns/pkt c/py':>12} {'load ms: clang+bpftool / cold / warm':>38}")
    print(hdr)
    for name, c, p in rows:
        print(f"{name:<14} {c['insns']:>5}/{p['insns']:<5} {c['verified']:>7}/{p['verified']:<6} "
              f"{c['jited']:>7}/{p['jited']:<7} {c['ns']:>5}/{p['ns']:<6} "
              f"{c['load_s'] * 1e3:>14.1f} / {p['cold_s'] * 1e3:.1f} / {p['warm_s'] * 1e3:.2f}")
        print(f"{'':<14} ratios py/c: insns {p['insns'] / c['insns']:.2f}, verified "
              f"{p['verified'] / c['verified']:.2f}, ns {p['ns'] / max(c['ns'], 1):.2f}, "
              f"cold {p['cold_s'] / c['load_s']:.2f}, warm speedup {c['load_s'] / p['warm_s']:.0f}x")


if __name__ == "__main__":
    main()
