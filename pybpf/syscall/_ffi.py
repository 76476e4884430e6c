"""cffi in ABI mode: the uapi layouts of linux/bpf.h and libc's ``syscall()``.

Nothing is compiled: ``ffi.dlopen(None)`` opens the C library already loaded
into the interpreter.  The layouts come from the generated ``_uapi.CDEF``;
at import they are checked against the sizes gcc measured when the table was
generated, so a layout mistake fails loudly instead of corrupting attributes.
"""

from __future__ import annotations

import platform

import cffi

from pybpf.syscall import _uapi

ffi = cffi.FFI()
ffi.cdef(_uapi.CDEF)
ffi.cdef(
    """
    long syscall(long number, ...);
    void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset);
    int munmap(void *addr, size_t length);
    int prctl(int option, unsigned long arg2, unsigned long arg3,
              unsigned long arg4, unsigned long arg5);
    """
)
libc = ffi.dlopen(None)

for _name, _size in _uapi.SIZES.items():
    if ffi.sizeof(_name) != _size:
        raise ImportError(
            f"cffi lays out {_name} in {ffi.sizeof(_name)} bytes, gcc in {_size}; "
            "regenerate pybpf/syscall/_uapi.py with tools/gen_bpf_uapi.py"
        )

#: __NR_bpf per architecture (arch/x86/entry/syscalls/syscall_64.tbl,
#: include/uapi/asm-generic/unistd.h for arm64 and riscv64).
SYSCALL_NUMBERS = {"x86_64": 321, "aarch64": 280, "arm64": 280, "riscv64": 280}
#: __NR_perf_event_open, used by probes and the attach layer.
PERF_EVENT_OPEN_NUMBERS = {"x86_64": 298, "aarch64": 241, "arm64": 241, "riscv64": 241}

MACHINE = platform.machine()
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
