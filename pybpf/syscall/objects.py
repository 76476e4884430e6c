"""BPF objects as owned file descriptors: close, pin, open pinned, open by id, info.

Every map, program, link and BTF object in the kernel is reached through an
fd.  ``FdObject`` owns exactly one: ``close()`` is idempotent, ``with`` closes
it, and the fd is closed exactly once (also when the object is garbage
collected).  The kernel frees the object when its last fd, pin and link are
gone.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

from pybpf.errors import BPFError
from pybpf.syscall._ffi import address, ffi
from pybpf.syscall._uapi import Cmd
from pybpf.syscall.bpf import bpf, new_attr

KIND_COMMANDS = {
    # kind: (GET_FD_BY_ID, GET_NEXT_ID, info struct)
    "map": (Cmd.MAP_GET_FD_BY_ID, Cmd.MAP_GET_NEXT_ID, "struct bpf_map_info"),
    "prog": (Cmd.PROG_GET_FD_BY_ID, Cmd.PROG_GET_NEXT_ID, "struct bpf_prog_info"),
    "link": (Cmd.LINK_GET_FD_BY_ID, Cmd.LINK_GET_NEXT_ID, "struct bpf_link_info"),
    "btf": (Cmd.BTF_GET_FD_BY_ID, Cmd.BTF_GET_NEXT_ID, "struct bpf_btf_info"),
}


class FdObject:
    """Owner of one BPF object fd; a context manager whose ``close()`` is idempotent."""

    kind = "object"
    _fd: int = -1

    def __init__(self, fd: int, name: str = ""):
        if not isinstance(fd, int) or fd < 0:
            raise ValueError(f"{self.kind} fd must be a non-negative int, not {fd!r}")
        self._fd = fd
        self.name = name

    @property
    def fd(self) -> int:
        """The fd; raises BPFError(EBADF) once closed."""
        if self._fd < 0:
            raise BPFError(errno.EBADF, self.kind, f"{self.kind} {self.name!r} is closed")
        return self._fd

    @property
    def closed(self) -> bool:
        """True once ``close()`` ran."""
        return self._fd < 0

    def close(self) -> None:
        """Close the fd (once; later calls do nothing)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def detach_fd(self) -> int:
        """Give up ownership: return the fd, which the caller must now close."""
        fd, self._fd = self.fd, -1
        return fd

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd}"
        return f"<{type(self).__name__} {self.name!r} {state}>"

    def fileno(self) -> int:
        """The fd, so the object can be passed where Python expects a file-like fd."""
        return self.fd

    def pin(self, path: str | os.PathLike) -> None:
        """BPF_OBJ_PIN: keep the object alive under ``path`` on a bpffs mount."""
        obj_pin(self.fd, path)

    def info(self):
        """BPF_OBJ_GET_INFO_BY_FD into this kind's ``struct bpf_*_info`` (cdata)."""
        return get_info(self.fd, KIND_COMMANDS[self.kind][2])


def _path(path: str | os.PathLike):
    raw = os.fsencode(path)
    if b"\0" in raw:
        raise ValueError(f"pin path {path!r} contains a NUL byte")
    return ffi.new("char[]", raw)


def obj_pin(fd: int, path: str | os.PathLike) -> None:
    """BPF_OBJ_PIN ``fd`` at ``path`` (the directory must be on a bpffs mount)."""
    attr = new_attr()
    buf = _path(path)
    attr.pathname = address(buf)
    attr.bpf_fd = fd
    try:
        bpf(Cmd.OBJ_PIN, attr)
    except BPFError as e:
        if e.errno == errno.EPERM and not on_bpffs(os.path.dirname(os.fspath(path)) or "."):
            raise BPFError(e.errno, e.command, f"{os.fspath(path)!r} is not on a bpffs "
                           "mount (mount -t bpf bpf /sys/fs/bpf)") from e
        raise


def obj_get(path: str | os.PathLike, *, flags: int = 0) -> int:
    """BPF_OBJ_GET: a new fd for the object pinned at ``path``."""
    attr = new_attr()
    buf = _path(path)
    attr.pathname = address(buf)
    attr.file_flags = flags
    return bpf(Cmd.OBJ_GET, attr)


def unpin(path: str | os.PathLike) -> None:
    """Remove a pin (the object lives on while other fds or pins hold it)."""
    os.unlink(path)


def on_bpffs(path: str | os.PathLike) -> bool:
    """True if ``path`` is on a bpffs mount (statfs magic BPF_FS_MAGIC)."""
    target = os.path.realpath(path)
    best = ("", "")
    with open("/proc/self/mounts") as f:
        for line in f:
            _dev, mnt, fstype = line.split()[:3]
            if (target == mnt or target.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(
                best[0]
            ):
                best = (mnt, fstype)
    return best[1] == "bpf"


def fd_by_id(kind: str, obj_id: int) -> int:
    """BPF_*_GET_FD_BY_ID for ``kind`` in map, prog, link, btf."""
    attr = new_attr()
    if kind == "btf":
        attr.btf_id = obj_id
    elif kind == "link":
        attr.link_id = obj_id
    elif kind == "map":
        attr.map_id = obj_id
    else:
        attr.prog_id = obj_id
    return bpf(KIND_COMMANDS[kind][0], attr)


def next_ids(kind: str) -> Iterator[int]:
    """All ids of ``kind`` objects alive in the kernel (BPF_*_GET_NEXT_ID)."""
    cmd = KIND_COMMANDS[kind][1]
    current = 0
    while True:
        attr = new_attr()
        attr.start_id = current
        try:
            bpf(cmd, attr)
        except BPFError as e:
            if e.errno == errno.ENOENT:
                return
            raise
        current = attr.next_id
        yield current


def get_info(fd: int, ctype: str, fill=None):
    """BPF_OBJ_GET_INFO_BY_FD into a fresh ``ctype`` (``fill`` may preset pointer fields)."""
    info = ffi.new(ctype + " *")
    if fill is not None:
        fill(info)
    attr = new_attr()
    attr.info.bpf_fd = fd
    attr.info.info_len = ffi.sizeof(ctype)
    attr.info.info = address(info)
    bpf(Cmd.OBJ_GET_INFO_BY_FD, attr)
    return info


def cstring(chars) -> str:
    """A NUL-terminated char array from an info struct as str."""
    return ffi.string(chars).decode(errors="replace")
