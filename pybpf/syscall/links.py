"""Attachments: the one object every hook returns, and bpf_link, its modern form.

A program sits on a hook through one of several kernel mechanisms:

    link        BPF_LINK_CREATE / BPF_RAW_TRACEPOINT_OPEN -> an fd; closing the
                last fd (or process exit) detaches, pinning keeps it alive
    netlink     IFLA_XDP, or a clsact qdisc + cls_bpf filter: survives the process
    prog_attach BPF_PROG_ATTACH on a cgroup or sockmap: survives the process
    sockopt     SO_ATTACH_BPF on a socket: lives as long as the socket
    perf_ioctl  PERF_EVENT_IOC_SET_BPF on a perf event fd: lives as long as the fd

``Attachment`` gives them one interface -- a context manager with detach(),
update(new_prog) where the kernel can swap programs atomically, pin() (links
only) and info().  Mechanisms that outlive the process register an undo action
with pybpf.sandbox.cleanup, so they are removed at exit and on SIGINT/SIGTERM
unless ``keep()`` says they should stay.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from pybpf._record import field, record
from pybpf.errors import BPFError, PyBPFError
from pybpf.syscall._ffi import address, ffi
from pybpf.syscall._uapi import BPF_F_REPLACE as _BPF_F_REPLACE
from pybpf.syscall._uapi import AttachType, Cmd, LinkType, ProgType
from pybpf.syscall.bpf import bpf, new_attr
from pybpf.syscall.objects import FdObject, get_info, obj_pin

__all__ = ["AttachError", "Attachment", "Link", "LinkInfo", "kernel_version", "link_create",
           "prog_fd", "prog_type_of", "require_prog_type", "hook_error"]


#: What an older kernel answers for an attach type it does not know; 524 is the
#: kernel-internal ENOTSUPP (include/linux/errno.h) that some bpf paths leak.
_UNKNOWN_HOOK_ERRNOS = (errno.EINVAL, errno.EOPNOTSUPP, 524)


class AttachError(PyBPFError, ValueError):
    """A program cannot go on this hook: wrong type, missing target, or a misuse of the API."""


def kernel_version() -> tuple[int, int]:
    """(major, minor) of the running kernel, from uname -r."""
    parts = os.uname().release.split(".")
    return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)


def prog_fd(prog: Any) -> int:
    """The fd of a program object (anything with ``.fd``) or of a raw int fd."""
    fd = prog if isinstance(prog, int) else getattr(prog, "fd", None)
    if not isinstance(fd, int) or fd < 0:
        raise AttachError(f"expected a loaded program or its fd, not {prog!r}")
    return fd


def prog_type_of(fd: int) -> ProgType:
    """The BPF_PROG_TYPE_* of a loaded program (BPF_OBJ_GET_INFO_BY_FD)."""
    return ProgType(get_info(fd, "struct bpf_prog_info").type)


def require_prog_type(prog: Any, allowed: ProgType | tuple[ProgType, ...], hook: str) -> int:
    """Return the program's fd if its type fits ``hook``; raise AttachError naming both if not."""
    fd = prog_fd(prog)
    allowed = allowed if isinstance(allowed, tuple) else (allowed,)
    actual = prog_type_of(fd)
    if actual not in allowed:
        want = " or ".join(f"BPF_PROG_TYPE_{t.name}" for t in allowed)
        raise AttachError(f"a BPF_PROG_TYPE_{actual.name} program cannot attach to {hook}: "
                          f"load it as {want}")
    return fd


def hook_error(e: BPFError, hook: str, needs: tuple[int, int] | None) -> BPFError:
    """Reword a failure to create an attachment; name the kernel version a missing hook needs."""
    if needs and kernel_version() < needs and e.errno in _UNKNOWN_HOOK_ERRNOS:
        return BPFError(e.errno, e.command, f"{hook} needs Linux {needs[0]}.{needs[1]} or newer; "
                        f"this kernel is {os.uname().release}")
    if e.errno == errno.EEXIST:
        return BPFError(e.errno, e.command, f"{hook} already has a program and this mechanism "
                        "cannot add another (detach it, or ask for replace)")
    return BPFError(e.errno, e.command, f"attaching to {hook}: {e.detail}")


@record(slots=False)
class LinkInfo:
    """What the kernel reports about an attachment (struct bpf_link_info, or its equivalent)."""

    mechanism: str
    hook: str
    prog_id: int
    link_type: LinkType | None = None
    link_id: int | None = None
    attach_type: AttachType | None = None
    target: dict[str, Any] = field(default_factory=dict)


class Attachment:
    """A program on a hook.  ``with`` detaches at the end; detach() is idempotent."""

    mechanism = "?"

    def __init__(self, hook: str, prog: Any = None):
        self.hook = hook
        self.prog = prog
        self._detached = False

    @property
    def attached(self) -> bool:
        """False once detach() ran."""
        return not self._detached

    def detach(self) -> None:
        """Take the program off the hook (once; later calls do nothing)."""
        if self._detached:
            return
        self._detached = True
        self._detach()

    def _detach(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Same as detach(): releasing an attachment takes the program off its hook."""
        self.detach()

    def update(self, new_prog: Any) -> None:
        """Replace the program on the hook without a gap (where the mechanism can)."""
        raise AttachError(f"{self.mechanism} attachments to {self.hook} cannot swap programs; "
                          "detach and attach again")

    def keep(self) -> None:
        """Leave the program attached when this object goes away or the process exits."""
        raise AttachError(f"{self.mechanism} attachments end with their owner; "
                          + ("pin() the link instead" if self.mechanism == "link" else
                             "keep the object (or its socket/fd) open"))

    def pin(self, path: str | os.PathLike) -> None:
        """Pin to bpffs so the attachment outlives this process (bpf_link only)."""
        raise AttachError(f"only bpf_link attachments can be pinned; {self.hook} was attached "
                          f"with {self.mechanism}")

    def info(self) -> LinkInfo:
        """The kernel's view of this attachment."""
        return LinkInfo(self.mechanism, self.hook, _prog_id(self.prog))

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def __repr__(self) -> str:
        state = "detached" if self._detached else "attached"
        return f"<{type(self).__name__} {self.hook} via {self.mechanism}, {state}>"


def _prog_id(prog: Any) -> int:
    try:
        return get_info(prog_fd(prog), "struct bpf_prog_info").id
    except (AttachError, BPFError):
        return 0


class Link(Attachment, FdObject):
    """A bpf_link: the attachment is the fd; closing the last fd detaches, unless pinned."""

    kind = "link"
    mechanism = "link"

    def __init__(self, fd: int, hook: str, prog: Any = None, *, keepalive: Any = None):
        FdObject.__init__(self, fd, hook)
        Attachment.__init__(self, hook, prog)
        # a perf event link also needs its perf fd open for as long as the link
        self._keepalive = keepalive

    def _detach(self) -> None:
        try:
            if not self.closed:
                attr = new_attr()
                attr.link_detach.link_fd = self.fd
                try:
                    bpf(Cmd.LINK_DETACH, attr)
                except BPFError as e:
                    # links without a detach operation (tracing, perf event) go with their fd
                    if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                        raise
        finally:
            FdObject.close(self)
            if self._keepalive is not None:
                self._keepalive.close()
                self._keepalive = None

    def close(self) -> None:
        """Close the link fd: detaches unless the link is pinned (then it lives on in bpffs)."""
        self._detached = True
        FdObject.close(self)
        if self._keepalive is not None:
            self._keepalive.close()
            self._keepalive = None

    def __del__(self) -> None:
        self.close()

    def update(self, new_prog: Any, *, old_prog: Any = None) -> None:
        """BPF_LINK_UPDATE: swap in ``new_prog`` atomically (if ``old_prog``: only if current)."""
        attr = new_attr()
        attr.link_update.link_fd = self.fd
        attr.link_update.new_prog_fd = prog_fd(new_prog)
        if old_prog is not None:
            attr.link_update.flags = _BPF_F_REPLACE
            attr.link_update.old_prog_fd = prog_fd(old_prog)
        try:
            bpf(Cmd.LINK_UPDATE, attr)
        except BPFError as e:
            if e.errno == errno.EINVAL:
                raise BPFError(e.errno, e.command, f"cannot swap the program of {self.hook}: "
                               "the new program must have the same type and attach type"
                               ) from e
            if e.errno == errno.EOPNOTSUPP:
                raise BPFError(e.errno, e.command, f"{self.hook} links do not support update"
                               ) from e
            raise
        self.prog = new_prog

    def pin(self, path: str | os.PathLike) -> None:
        """BPF_OBJ_PIN the link: it stays attached after this process exits, until unlinked."""
        obj_pin(self.fd, path)

    def info(self) -> LinkInfo:
        """BPF_OBJ_GET_INFO_BY_FD on the link."""
        info = get_info(self.fd, "struct bpf_link_info")
        ltype = LinkType(info.type)
        attach_type, target = _link_target(ltype, info)
        return LinkInfo(self.mechanism, self.hook, info.prog_id, ltype, info.id, attach_type,
                        target)


def _link_target(ltype: LinkType, info) -> tuple[AttachType | None, dict[str, Any]]:
    if ltype == LinkType.XDP:
        return AttachType.XDP, {"ifindex": info.xdp.ifindex}
    if ltype == LinkType.TCX:
        return AttachType(info.tcx.attach_type), {"ifindex": info.tcx.ifindex}
    if ltype == LinkType.CGROUP:
        return AttachType(info.cgroup.attach_type), {"cgroup_id": info.cgroup.cgroup_id}
    if ltype == LinkType.NETNS:
        return AttachType(info.netns.attach_type), {"netns_ino": info.netns.netns_ino}
    if ltype == LinkType.SOCKMAP:
        return AttachType(info.sockmap.attach_type), {"map_id": info.sockmap.map_id}
    if ltype == LinkType.TRACING:
        return AttachType(info.tracing.attach_type), {
            "target_obj_id": info.tracing.target_obj_id,
            "target_btf_id": info.tracing.target_btf_id}
    if ltype == LinkType.PERF_EVENT:
        return None, {"perf_event_type": info.perf_event.type}
    return None, {}


def link_create(prog: Any, target: int, attach_type: AttachType, hook: str, *,
                flags: int = 0, needs: tuple[int, int] | None = None, fill=None,
                keepalive: Any = None) -> Link:
    """BPF_LINK_CREATE ``prog`` on ``target`` (an fd or ifindex); ``fill(attr)`` sets the rest."""
    attr = new_attr()
    attr.link_create.prog_fd = prog_fd(prog)
    attr.link_create.target_fd = target
    attr.link_create.attach_type = attach_type
    attr.link_create.flags = flags
    if fill is not None:
        fill(attr)
    try:
        fd = bpf(Cmd.LINK_CREATE, attr)
    except BPFError as e:
        raise hook_error(e, hook, needs) from e
    return Link(fd, hook, prog, keepalive=keepalive)


def raw_tracepoint_open(prog: Any, name: str | None, hook: str) -> Link:
    """BPF_RAW_TRACEPOINT_OPEN: the link form of raw tracepoints (and of tracing programs)."""
    attr = new_attr()
    buf = ffi.new("char[]", name.encode()) if name else None
    attr.raw_tracepoint.name = address(buf) if buf is not None else 0
    attr.raw_tracepoint.prog_fd = prog_fd(prog)
    try:
        fd = bpf(Cmd.RAW_TRACEPOINT_OPEN, attr)
    except BPFError as e:
        if e.errno == errno.ENOENT and name:
            raise BPFError(e.errno, e.command, f"no raw tracepoint {name!r} in this kernel") from e
        raise hook_error(e, hook, (4, 17)) from e
    return Link(fd, hook, prog)
