"""Tracing hooks: tracepoints, raw tracepoints, and fentry/fexit on kernel functions.

tracepoint   BPF_PROG_TYPE_TRACEPOINT on a perf event of PERF_TYPE_TRACEPOINT
             (config = events/<category>/<name>/id in tracefs).
             "link": BPF_LINK_CREATE with BPF_PERF_EVENT on the perf fd (5.15+);
             "perf_ioctl": PERF_EVENT_IOC_SET_BPF + ENABLE (4.7+).  Either way the
             program goes when the perf fd (kept by the attachment) is closed.
raw tracepoint  BPF_PROG_TYPE_RAW_TRACEPOINT by tracepoint name, through
             BPF_RAW_TRACEPOINT_OPEN (4.17+); sees the raw tracepoint arguments.
fentry/fexit BPF_PROG_TYPE_TRACING loaded with expected_attach_type
             BPF_TRACE_FENTRY/FEXIT and attach_btf_id = the kernel function's BTF
             id (``kernel_func_id("tcp_v4_connect")``); attached with
             BPF_RAW_TRACEPOINT_OPEN (5.5+) or BPF_LINK_CREATE (5.10+).
"""

from __future__ import annotations

from typing import Any

from pybpf import btf
from pybpf.errors import BPFError, BTFError
from pybpf.syscall._uapi import AttachType, ProgType
from pybpf.syscall.links import (
    AttachError,
    Attachment,
    LinkInfo,
    hook_error,
    kernel_version,
    link_create,
    prog_fd,
    raw_tracepoint_open,
    require_prog_type,
)
from pybpf.syscall.perf import (
    PERF_EVENT_IOC_DISABLE,
    PERF_EVENT_IOC_ENABLE,
    PERF_EVENT_IOC_SET_BPF,
    PERF_TYPE_TRACEPOINT,
    PerfEvent,
    perf_event_open,
)
from pybpf.syscall.tracefs import tracepoint_id

__all__ = ["PerfEventAttachment", "attach_raw_tracepoint", "attach_tracepoint",
           "attach_tracing", "kernel_func_id"]

PERF_LINK_KERNEL = (5, 15)


def attach_tracepoint(prog: Any, category: str, name: str, *, mechanism: str = "auto"
                      ) -> Attachment:
    """Attach a tracepoint program to ``category:name`` (e.g. "syscalls", "sys_enter_getpid")."""
    if mechanism not in ("auto", "link", "perf_ioctl"):
        raise AttachError(f"tracepoint mechanism {mechanism!r} is not one of auto, link, "
                          "perf_ioctl")
    hook = f"tracepoint {category}:{name}"
    require_prog_type(prog, ProgType.TRACEPOINT, hook)
    event = perf_event_open(PERF_TYPE_TRACEPOINT, tracepoint_id(category, name), pid=-1, cpu=0,
                            what=hook)
    try:
        if mechanism == "auto":
            mechanism = "link" if kernel_version() >= PERF_LINK_KERNEL else "perf_ioctl"
        if mechanism == "link":
            return link_create(prog, event.fd, AttachType.PERF_EVENT, hook,
                               needs=PERF_LINK_KERNEL, keepalive=event)
        return PerfEventAttachment(prog, event, hook)
    except BaseException:
        event.close()
        raise


class PerfEventAttachment(Attachment):
    """A program set on a perf event with PERF_EVENT_IOC_SET_BPF; closing the event detaches."""

    mechanism = "perf_ioctl"

    def __init__(self, prog: Any, event: PerfEvent, hook: str):
        super().__init__(hook, prog)
        self.event = event
        try:
            event.ioctl(PERF_EVENT_IOC_SET_BPF, prog_fd(prog))
            event.ioctl(PERF_EVENT_IOC_ENABLE)
        except BPFError as e:
            raise hook_error(e, hook, (4, 7)) from e

    def _detach(self) -> None:
        try:
            self.event.ioctl(PERF_EVENT_IOC_DISABLE)
        finally:
            self.event.close()

    def info(self) -> LinkInfo:
        """The perf event fd and the program id."""
        return LinkInfo(self.mechanism, self.hook, super().info().prog_id,
                        target={"perf_fd": self.event.fd})


def attach_raw_tracepoint(prog: Any, name: str) -> Attachment:
    """Attach a raw tracepoint program to tracepoint ``name`` (e.g. "sys_enter")."""
    hook = f"raw tracepoint {name}"
    require_prog_type(prog, (ProgType.RAW_TRACEPOINT, ProgType.RAW_TRACEPOINT_WRITABLE), hook)
    return raw_tracepoint_open(prog, name, hook)


def kernel_func_id(name: str) -> int:
    """BTF id of kernel function ``name`` in vmlinux (the attach_btf_id of fentry/fexit)."""
    try:
        return btf.vmlinux().func(name).type_id
    except BTFError as e:
        raise AttachError(f"no kernel function {name!r} in /sys/kernel/btf/vmlinux (inlined, "
                          "static without BTF, or misspelt)") from e


def attach_tracing(prog: Any, *, attach_type: AttachType | None = None,
                   mechanism: str = "auto") -> Attachment:
    """Attach a BPF_PROG_TYPE_TRACING program (fentry/fexit/fmod_ret/tp_btf) to its target.

    The target was fixed at load time by attach_btf_id; "link" needs the
    program's ``attach_type`` (BPF_TRACE_FENTRY, ...), "raw_tp" does not.
    """
    if mechanism not in ("auto", "link", "raw_tp"):
        raise AttachError(f"tracing mechanism {mechanism!r} is not one of auto, link, raw_tp")
    hook = "tracing program" + (f" ({attach_type.name})" if attach_type is not None else "")
    require_prog_type(prog, (ProgType.TRACING, ProgType.LSM, ProgType.EXT), hook)
    if mechanism == "auto":
        mechanism = "link" if attach_type is not None else "raw_tp"
    if mechanism == "link":
        if attach_type is None:
            raise AttachError("mechanism='link' needs attach_type= (e.g. "
                              "AttachType.TRACE_FENTRY), the program's expected_attach_type")
        return link_create(prog, 0, attach_type, hook, needs=(5, 10))
    return raw_tracepoint_open(prog, None, hook)
