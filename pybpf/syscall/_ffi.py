"""cffi in out-of-line ABI mode: the uapi layouts of linux/bpf.h and libc's ``syscall()``.

Nothing is compiled: ``ffi.dlopen(None)`` opens the C library already loaded
into the interpreter.  The declarations (the generated ``_uapi.CDEF`` plus a
few libc functions) were parsed once by tools/gen_ffi.py into
``_ffi_compiled``, a pure-Python module, so importing this costs no pycparser
run.  At import the layouts are checked against the sizes gcc measured when
``_uapi`` was generated, so a layout mistake fails loudly instead of
corrupting attributes.
"""

from __future__ import annotations

import os

from pybpf.syscall import _uapi
from pybpf.syscall._ffi_compiled import ffi

libc = ffi.dlopen(None)

for _name, _size in _uapi.SIZES.items():
    if ffi.sizeof(_name) != _size:
        raise ImportError(
            f"cffi lays out {_name} in {ffi.sizeof(_name)} bytes, gcc in {_size}; "
            "regenerate pybpf/syscall/_uapi.py with tools/gen_bpf_uapi.py, "
            "then _ffi_compiled.py with tools/gen_ffi.py"
        )

#: __NR_bpf per architecture (arch/x86/entry/syscalls/syscall_64.tbl,
#: include/uapi/asm-generic/unistd.h for arm64 and riscv64).
SYSCALL_NUMBERS = {"x86_64": 321, "aarch64": 280, "arm64": 280, "riscv64": 280}
#: __NR_perf_event_open, used by probes and the attach layer.
PERF_EVENT_OPEN_NUMBERS = {"x86_64": 298, "aarch64": 241, "arm64": 241, "riscv64": 241}

MACHINE = os.uname().machine
try:
    NR_BPF = SYSCALL_NUMBERS[MACHINE]
    NR_PERF_EVENT_OPEN = PERF_EVENT_OPEN_NUMBERS[MACHINE]
except KeyError:
    raise ImportError(
        f"pybpf does not know the bpf() syscall number on {MACHINE!r} "
        f"(known: {', '.join(sorted(SYSCALL_NUMBERS))})"
    ) from None


def address(buf) -> int:
    """The address of a cdata buffer as the u64 the kernel expects in bpf_attr."""
    return int(ffi.cast("uintptr_t", buf))
