"""cgroup hooks: programs that see the sockets and packets of the tasks in a cgroup v2.

Hook names and what runs there (program type; the kernel that added it):

    ingress, egress                 CGROUP_SKB, per packet (return 1 pass, 0 drop)   4.10
    sock_create, sock_release       CGROUP_SOCK, socket(2) / final close        4.10, 5.9
    post_bind4, post_bind6          CGROUP_SOCK, after bind(2)                          4.17
    sock_ops                        SOCK_OPS, TCP events (connect, established, ...)    4.13
    bind4/6, connect4/6             CGROUP_SOCK_ADDR, may rewrite the address           4.17
    sendmsg4/6                      CGROUP_SOCK_ADDR (UDP)                              4.18
    recvmsg4/6                      CGROUP_SOCK_ADDR (UDP)                              5.2
    getpeername4/6, getsockname4/6  CGROUP_SOCK_ADDR                                    5.8
    connect_unix, sendmsg_unix, recvmsg_unix,
    getpeername_unix, getsockname_unix   CGROUP_SOCK_ADDR (AF_UNIX)                     6.7
    sysctl, getsockopt, setsockopt, device                             5.2, 5.3, 5.3, 4.15

CGROUP_SOCK and CGROUP_SOCK_ADDR programs must be loaded with
expected_attach_type set to the hook's attach type.

Mechanisms: "link" (BPF_LINK_CREATE, 5.7+; detached when the fd closes) or
"prog_attach" (BPF_PROG_ATTACH with ``multi=`` BPF_F_ALLOW_MULTI or
``override=`` BPF_F_ALLOW_OVERRIDE; undone by pybpf on detach/exit/signals).
"""

from __future__ import annotations

import errno
import os
from typing import Any

from pybpf.errors import BPFError
from pybpf.syscall._ffi import address, ffi
from pybpf.syscall._uapi import (
    BPF_F_ALLOW_MULTI,
    BPF_F_ALLOW_OVERRIDE,
    BPF_F_QUERY_EFFECTIVE,
    AttachType,
    Cmd,
)
from pybpf.syscall._uapi import ProgType as P
from pybpf.syscall.attach._progattach import ProgAttachment
from pybpf.syscall.bpf import bpf, new_attr
from pybpf.syscall.links import (
    AttachError,
    Attachment,
    kernel_version,
    link_create,
    require_prog_type,
)

__all__ = ["CGROUP_HOOKS", "attach_cgroup", "query_cgroup"]

A = AttachType
#: hook name -> (attach type, program type, first kernel with it)
CGROUP_HOOKS: dict[str, tuple[AttachType, P, tuple[int, int]]] = {
    "ingress": (A.CGROUP_INET_INGRESS, P.CGROUP_SKB, (4, 10)),
    "egress": (A.CGROUP_INET_EGRESS, P.CGROUP_SKB, (4, 10)),
    "sock_create": (A.CGROUP_INET_SOCK_CREATE, P.CGROUP_SOCK, (4, 10)),
    "sock_release": (A.CGROUP_INET_SOCK_RELEASE, P.CGROUP_SOCK, (5, 9)),
    "post_bind4": (A.CGROUP_INET4_POST_BIND, P.CGROUP_SOCK, (4, 17)),
    "post_bind6": (A.CGROUP_INET6_POST_BIND, P.CGROUP_SOCK, (4, 17)),
    "sock_ops": (A.CGROUP_SOCK_OPS, P.SOCK_OPS, (4, 13)),
    "bind4": (A.CGROUP_INET4_BIND, P.CGROUP_SOCK_ADDR, (4, 17)),
    "bind6": (A.CGROUP_INET6_BIND, P.CGROUP_SOCK_ADDR, (4, 17)),
    "connect4": (A.CGROUP_INET4_CONNECT, P.CGROUP_SOCK_ADDR, (4, 17)),
    "connect6": (A.CGROUP_INET6_CONNECT, P.CGROUP_SOCK_ADDR, (4, 17)),
    "sendmsg4": (A.CGROUP_UDP4_SENDMSG, P.CGROUP_SOCK_ADDR, (4, 18)),
    "sendmsg6": (A.CGROUP_UDP6_SENDMSG, P.CGROUP_SOCK_ADDR, (4, 18)),
    "recvmsg4": (A.CGROUP_UDP4_RECVMSG, P.CGROUP_SOCK_ADDR, (5, 2)),
    "recvmsg6": (A.CGROUP_UDP6_RECVMSG, P.CGROUP_SOCK_ADDR, (5, 2)),
    "getpeername4": (A.CGROUP_INET4_GETPEERNAME, P.CGROUP_SOCK_ADDR, (5, 8)),
    "getpeername6": (A.CGROUP_INET6_GETPEERNAME, P.CGROUP_SOCK_ADDR, (5, 8)),
    "getsockname4": (A.CGROUP_INET4_GETSOCKNAME, P.CGROUP_SOCK_ADDR, (5, 8)),
    "getsockname6": (A.CGROUP_INET6_GETSOCKNAME, P.CGROUP_SOCK_ADDR, (5, 8)),
    "connect_unix": (A.CGROUP_UNIX_CONNECT, P.CGROUP_SOCK_ADDR, (6, 7)),
    "sendmsg_unix": (A.CGROUP_UNIX_SENDMSG, P.CGROUP_SOCK_ADDR, (6, 7)),
    "recvmsg_unix": (A.CGROUP_UNIX_RECVMSG, P.CGROUP_SOCK_ADDR, (6, 7)),
    "getpeername_unix": (A.CGROUP_UNIX_GETPEERNAME, P.CGROUP_SOCK_ADDR, (6, 7)),
    "getsockname_unix": (A.CGROUP_UNIX_GETSOCKNAME, P.CGROUP_SOCK_ADDR, (6, 7)),
    "sysctl": (A.CGROUP_SYSCTL, P.CGROUP_SYSCTL, (5, 2)),
    "getsockopt": (A.CGROUP_GETSOCKOPT, P.CGROUP_SOCKOPT, (5, 3)),
    "setsockopt": (A.CGROUP_SETSOCKOPT, P.CGROUP_SOCKOPT, (5, 3)),
    "device": (A.CGROUP_DEVICE, P.CGROUP_DEVICE, (4, 15)),
}
CGROUP_LINK_KERNEL = (5, 7)


def _cgroup_fd(cgroup: Any) -> tuple[int, bool]:
    """(fd, opened_here) for a Cgroup object, a directory path, or an fd."""
    if isinstance(cgroup, int):
        return cgroup, False
    fd = getattr(cgroup, "fd", None)
    if isinstance(fd, int):
        return fd, False
    path = os.fspath(cgroup)
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY), True
    except FileNotFoundError:
        raise AttachError(f"no cgroup directory {path!r}") from None
    except NotADirectoryError:
        raise AttachError(f"{path!r} is not a cgroup directory") from None


def _hook(name: str) -> tuple[AttachType, P, tuple[int, int]]:
    try:
        return CGROUP_HOOKS[name]
    except KeyError:
        raise AttachError(f"unknown cgroup hook {name!r}; known: {', '.join(CGROUP_HOOKS)}"
                          ) from None


def attach_cgroup(prog: Any, cgroup: Any, hook: str, *, mechanism: str = "auto",
                  multi: bool = True, override: bool = False, replace: Any = None
                  ) -> Attachment:
    """Attach ``prog`` to ``hook`` (a CGROUP_HOOKS name) of ``cgroup`` (Cgroup, path or fd)."""
    attach_type, prog_type, needs = _hook(hook)
    if mechanism not in ("auto", "link", "prog_attach"):
        raise AttachError(f"cgroup mechanism {mechanism!r} is not one of auto, link, "
                          "prog_attach")
    if kernel_version() < needs:
        raise AttachError(f"cgroup hook {hook} needs Linux {needs[0]}.{needs[1]} or newer; "
                          f"this kernel is {os.uname().release}")
    fd, opened = _cgroup_fd(cgroup)
    try:
        label = f"cgroup {hook} on {getattr(cgroup, 'path', cgroup)}"
        require_prog_type(prog, prog_type, label)
        if mechanism == "auto":
            mechanism = "link" if kernel_version() >= CGROUP_LINK_KERNEL else "prog_attach"
        try:
            if mechanism == "link":
                if replace is not None or override:
                    raise AttachError("replace=/override= are BPF_PROG_ATTACH flags; with a link "
                                      "use Link.update() (links always allow multi)")
                return link_create(prog, fd, attach_type, label, needs=CGROUP_LINK_KERNEL)
            if multi and override:
                raise AttachError("multi= and override= exclude each other")
            flags = BPF_F_ALLOW_MULTI if multi else (BPF_F_ALLOW_OVERRIDE if override else 0)
            if replace is not None and not multi:
                raise AttachError("replace= needs multi=True (BPF_F_REPLACE with ALLOW_MULTI)")
            return ProgAttachment(prog, fd, attach_type, label, flags=flags, replace=replace,
                                  needs=needs, target={"cgroup": getattr(cgroup, "path", cgroup)})
        except BPFError as e:
            if e.errno == errno.EINVAL and prog_type in (P.CGROUP_SOCK_ADDR, P.CGROUP_SOCK):
                e.add_note(f"{prog_type.name} programs must be loaded with "
                           f"expected_attach_type=BPF_{attach_type.name} for {hook}")
            raise
    finally:
        if opened:
            os.close(fd)


def query_cgroup(cgroup: Any, hook: str, *, effective: bool = False) -> dict[str, Any]:
    """BPF_PROG_QUERY: {"prog_ids": [...], "attach_flags": n} of ``hook`` on ``cgroup``."""
    attach_type = _hook(hook)[0]
    fd, opened = _cgroup_fd(cgroup)
    try:
        ids = ffi.new("uint32_t[]", 64)
        attr = new_attr()
        attr.query.target_fd = fd
        attr.query.attach_type = attach_type
        attr.query.query_flags = BPF_F_QUERY_EFFECTIVE if effective else 0
        attr.query.prog_ids = address(ids)
        attr.query.prog_cnt = 64
        bpf(Cmd.PROG_QUERY, attr)
        return {"prog_ids": list(ids[0:attr.query.prog_cnt]),
                "attach_flags": attr.query.attach_flags}
    finally:
        if opened:
            os.close(fd)
