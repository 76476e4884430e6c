"""The bpf(2) system call: one function, errno turned into BPFError.

    long syscall(__NR_bpf, int cmd, union bpf_attr *attr, unsigned int size);

Every command fills a zeroed ``union bpf_attr``; the kernel accepts a union
larger than the one it knows as long as the unknown tail is zero
(``bpf_check_uarg_tail_zero``), so the full generated size is always passed.
"""

from __future__ import annotations

import errno
import os

from pybpf.errors import BPFError
from pybpf.syscall._ffi import NR_BPF, ffi, libc
from pybpf.syscall._uapi import Cmd
from pybpf.syscall.attr_tail import fields_beyond, kernel_attr_size

ATTR_SIZE = ffi.sizeof("union bpf_attr")
#: The kernel-internal "not supported" errno (include/linux/errno.h) some commands leak.
ENOTSUPP = 524

#: Which capability each command family needs (kernel/bpf/syscall.c, bpf_token_capable()).
_CAPS_FOR = {
    Cmd.PROG_LOAD: "CAP_BPF (plus CAP_NET_ADMIN for networking and CAP_PERFMON for tracing "
    "program types)",
    Cmd.MAP_CREATE: "CAP_BPF (CAP_NET_ADMIN for devmap/cpumap/xskmap/sockmap maps)",
    Cmd.LINK_CREATE: "CAP_BPF plus CAP_NET_ADMIN or CAP_PERFMON depending on the attach point",
    Cmd.PROG_ATTACH: "CAP_NET_ADMIN",
    Cmd.PROG_GET_FD_BY_ID: "CAP_SYS_ADMIN",
    Cmd.MAP_GET_FD_BY_ID: "CAP_SYS_ADMIN",
    Cmd.LINK_GET_FD_BY_ID: "CAP_SYS_ADMIN",
    Cmd.BTF_GET_FD_BY_ID: "CAP_SYS_ADMIN",
    Cmd.PROG_GET_NEXT_ID: "CAP_SYS_ADMIN",
    Cmd.MAP_GET_NEXT_ID: "CAP_SYS_ADMIN",
    Cmd.ENABLE_STATS: "CAP_SYS_ADMIN",
    Cmd.BTF_LOAD: "CAP_BPF",
}


#: Capability bits (include/uapi/linux/capability.h) that BPF work needs.
CAPABILITIES = {"CAP_NET_ADMIN": 12, "CAP_SYS_ADMIN": 21, "CAP_PERFMON": 38, "CAP_BPF": 39}


def effective_capabilities() -> dict[str, bool]:
    """Which BPF-related capabilities this process holds (CapEff in /proc/self/status)."""
    with open("/proc/self/status") as f:
        eff = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    return {name: bool(eff >> bit & 1) for name, bit in CAPABILITIES.items()}


def _read_first_line(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.readline().strip()
    except OSError:
        return None


def policy_hint() -> str:
    """Why a process holding every BPF capability still gets EPERM."""
    hint = ("this process holds CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN and CAP_SYS_ADMIN, so a "
            "kernel policy refused it: kernel lockdown, an LSM (SELinux, AppArmor, landlock, "
            "BPF LSM) or a rule about this attach target")
    lockdown = _read_first_line("/sys/kernel/security/lockdown")
    lsms = _read_first_line("/sys/kernel/security/lsm")
    if lockdown:
        hint += f"; lockdown: {lockdown}"
    if lsms:
        hint += f"; active LSMs: {lsms}"
    if lockdown is None and lsms is None:
        hint += " (mount securityfs on /sys/kernel/security to see lockdown and LSMs)"
    return hint


def new_attr():
    """A zeroed ``union bpf_attr`` (cdata pointer)."""
    return ffi.new("union bpf_attr *")


def uapi_member(enum, value, what: str):
    """A member of the uapi ``enum`` from a member, its int or its name in any case
    ("hash", "xdp"); an unknown one raises ValueError naming ``what`` and the known ones."""
    if isinstance(value, str):
        try:
            return enum[value.upper()]
        except KeyError:
            known = ", ".join(t.name.lower() for t in enum if t.name != "UNSPEC")
            raise ValueError(f"unknown {what} {value!r}; known: {known}") from None
    try:
        return enum(value)
    except ValueError:
        raise ValueError(f"unknown {what} {value!r} (this pybpf knows 0..{max(enum)})") from None


def bpf(cmd: Cmd, attr, *, size: int = ATTR_SIZE) -> int:
    """Issue ``bpf(cmd, attr, size)``; return the result or raise BPFError(errno, command)."""
    ret = libc.syscall(NR_BPF, ffi.cast("int", cmd), attr, ffi.cast("unsigned int", size))
    if ret < 0:
        err = ffi.errno
        detail = explain(cmd, err)
        if err == errno.E2BIG:
            detail = explain_e2big(cmd, attr, size) or detail
        raise BPFError(err, f"BPF_{Cmd(cmd).name}", detail)
    return ret


def explain_e2big(cmd: int, attr, size: int) -> str | None:
    """Name the attributes set beyond the kernel's ``union bpf_attr``, if that caused E2BIG."""
    kernel_size = kernel_attr_size()
    if size <= kernel_size:
        return None
    fields = fields_beyond(cmd, attr, size, kernel_size)
    if not fields:
        return None
    return (f"{os.strerror(errno.E2BIG)}: this kernel's union bpf_attr has {kernel_size} bytes "
            f"and does not know {', '.join(fields)} (a newer kernel feature); leave "
            f"{'it' if len(fields) == 1 else 'them'} unset")


def bpf_retry(cmd: Cmd, attr, *, attempts: int = 5) -> int:
    """bpf() retried on EAGAIN, as libbpf does for BPF_PROG_LOAD under memory pressure."""
    for _ in range(attempts - 1):
        try:
            return bpf(cmd, attr)
        except BPFError as e:
            if e.errno != errno.EAGAIN:
                raise
    return bpf(cmd, attr)


def unprivileged_bpf_disabled() -> int | None:
    """The value of /proc/sys/kernel/unprivileged_bpf_disabled (None if absent)."""
    try:
        with open("/proc/sys/kernel/unprivileged_bpf_disabled") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def kernel_version() -> tuple[int, int]:
    """(major, minor) of the running kernel, from uname."""
    major, minor = os.uname().release.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def explain(cmd: int, err: int) -> str:
    """A message for errno ``err`` of command ``cmd`` that says what to do about it."""
    text = os.strerror(err)
    if err == errno.EPERM:
        if all(effective_capabilities().values()):
            return f"{text}: {policy_hint()}"
        need = _CAPS_FOR.get(cmd, "CAP_BPF or CAP_SYS_ADMIN")
        hint = f"{text}: needs {need}; run as root or grant the capabilities"
        if os.geteuid() != 0:
            disabled = unprivileged_bpf_disabled()
            if disabled:
                hint += (
                    f" (/proc/sys/kernel/unprivileged_bpf_disabled={disabled}: unprivileged "
                    "bpf() is off)"
                )
        if kernel_version() < (5, 11):
            hint += "; kernels before 5.11 also charge RLIMIT_MEMLOCK (raise it: ulimit -l)"
        return hint
    if err == errno.E2BIG:
        return f"{text}: a size or count is above this kernel's limit"
    if err == errno.EBADF:
        return f"{text}: a file descriptor passed to the kernel is closed or not a BPF object"
    if err == errno.ENOSPC and cmd == Cmd.PROG_LOAD:
        return f"{text}: the verifier log buffer is too small"
    if err == ENOTSUPP:
        return "operation not supported by this kernel or object type (ENOTSUPP)"
    return text
