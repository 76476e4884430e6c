"""``pybpf doctor``: what this machine offers BPF, in one report.

Kernel release, kernel BTF, the capabilities BPF needs, the filesystems
pybpf uses (bpffs for pins, tracefs for tracepoints, cgroup v2 for cgroup
programs) and every feature probe with the kernel release that brought it.
"""

from __future__ import annotations

import os
import platform

from pybpf.errors import BPFError
from pybpf.syscall import probes
from pybpf.syscall._uapi import MapType, ProgType
from pybpf.syscall.bpf import effective_capabilities, unprivileged_bpf_disabled

FILESYSTEMS = {"bpf": "bpffs (pins)", "tracefs": "tracefs (tracepoints)",
               "cgroup2": "cgroup v2 (cgroup programs)"}


def mounts() -> dict[str, list[str]]:
    """Mount points of bpffs, tracefs and cgroup2 (/proc/self/mounts)."""
    found: dict[str, list[str]] = {fs: [] for fs in FILESYSTEMS}
    with open("/proc/self/mounts") as f:
        for line in f:
            _dev, mnt, fstype = line.split()[:3]
            if fstype in found:
                found[fstype].append(mnt)
    return found


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def report() -> str:
    """The doctor report as text (the ``pybpf doctor`` command prints it)."""
    out = [f"kernel          {platform.release()} ({platform.machine()})"]
    btf = "/sys/kernel/btf/vmlinux"
    if os.path.exists(btf):
        out.append(f"kernel BTF      yes, {btf} ({os.path.getsize(btf)} bytes)")
    else:
        out.append("kernel BTF      missing (kernel built without CONFIG_DEBUG_INFO_BTF)")
    jit = _read("/proc/sys/net/core/bpf_jit_enable")
    out.append(f"JIT             {'on' if jit and jit != '0' else 'off'}")
    out.append(f"unprivileged    unprivileged_bpf_disabled={unprivileged_bpf_disabled()}")
    caps = effective_capabilities()
    out.append("capabilities    " + " ".join(f"{n}={'yes' if v else 'no'}" for n, v in caps.items()))
    for fs, where in mounts().items():
        out.append(f"{FILESYSTEMS[fs]:<28}{', '.join(where) if where else 'not mounted'}")
    out.append("")
    try:
        results = list(probes.features()) + list(probes.isa())
        results += [probes.prog_type(t) for t in ProgType if t != ProgType.UNSPEC]
        results += [probes.map_type(t) for t in MapType if t != MapType.UNSPEC]
        results += list(probes.links())
    except BPFError as e:
        out.append(f"probes failed: {e}")
        return "\n".join(out) + "\n"
    out.extend(str(p) for p in results)
    return "\n".join(out) + "\n"
