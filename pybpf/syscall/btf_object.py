"""BTF objects in the kernel: BPF_BTF_LOAD and BTF fds.

pybpf/btf builds the raw BTF blob (header, types, strings); this module hands
it to the kernel, which validates it and returns an fd that map creation
(``btf_fd``) and program loading (``prog_btf_fd``) refer to.
"""

from __future__ import annotations

import os

from pybpf.errors import BPFError
from pybpf.syscall._ffi import address, ffi
from pybpf.syscall._uapi import Cmd
from pybpf.syscall.bpf import new_attr
from pybpf.syscall.objects import FdObject, cstring, fd_by_id, get_info, obj_get
from pybpf.syscall.verifier import BTF_LOG, load_with_log


class Btf(FdObject):
    """A loaded BTF object (``struct btf`` in the kernel), owned through its fd."""

    kind = "btf"

    def __init__(self, fd: int, name: str = "", log: str = ""):
        super().__init__(fd, name)
        self.log = log

    @property
    def id(self) -> int:
        """The kernel's BTF id (bpf_btf_info.id)."""
        return self.info().id

    def data(self) -> bytes:
        """The raw BTF blob as the kernel holds it (bpf_btf_info.btf)."""
        size = self.info().btf_size
        buf = ffi.new("char[]", size)

        def fill(info):
            info.btf = address(buf)
            info.btf_size = size

        get_info(self.fd, "struct bpf_btf_info", fill)
        return ffi.buffer(buf, size)[:]

    def kernel_name(self) -> str:
        """bpf_btf_info.name: "vmlinux" or a module name for kernel BTF, else empty."""
        info = self.info()
        return cstring(info.name) if hasattr(info, "name") else ""

    @classmethod
    def from_id(cls, btf_id: int) -> Btf:
        """BPF_BTF_GET_FD_BY_ID."""
        return cls(fd_by_id("btf", btf_id), f"btf#{btf_id}")

    @classmethod
    def from_pinned(cls, path: str | os.PathLike) -> Btf:
        """BPF_OBJ_GET of a pinned BTF object."""
        return cls(obj_get(path), os.path.basename(os.fspath(path)))


def load_btf(data: bytes, *, log_level: int = 0, log_size: int = 64 * 1024,
             name: str = "") -> Btf:
    """BPF_BTF_LOAD ``data`` (a complete BTF blob); the error carries the kernel's BTF log.

    With ``log_level`` 0 the log is only requested after a failure.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"BTF data must be bytes, not {type(data).__name__}")
    if len(data) < 24:
        raise ValueError(f"BTF data of {len(data)} bytes is shorter than struct btf_header (24)")
    blob = ffi.from_buffer(bytes(data))
    attr = new_attr()
    attr.btf = address(blob)
    attr.btf_size = len(data)
    try:
        fd, log = load_with_log(Cmd.BTF_LOAD, attr, BTF_LOG, log_level=log_level,
                                log_size=log_size)
    except BPFError as e:
        log = getattr(e, "log", "")
        last = [ln for ln in log.splitlines() if ln.strip()][-1:] or [e.detail]
        err = BPFError(e.errno, "BPF_BTF_LOAD", f"kernel rejected BTF: {last[0]}")
        err.log = log
        raise err from e
    return Btf(fd, name, log)
