"""Which ``union bpf_attr`` fields a kernel refused as unknown (E2BIG from a non-zero tail).

Every command copies the caller's ``union bpf_attr``; when the caller's union
is larger than the kernel's, the kernel insists that the extra bytes are zero
(``bpf_check_uarg_tail_zero`` in ``__sys_bpf``) and answers E2BIG otherwise.
So an E2BIG can mean "this kernel is older than a field pybpf set".  To name
that field we need the kernel's union size: issue BPF_PROG_GET_FD_BY_ID with a
single non-zero byte at offset *o*; the tail check runs before anything else,
so E2BIG comes back exactly when *o* lies beyond the kernel's union (any other
answer, EINVAL/ENOENT/EPERM, means the kernel knows offset *o*).  A binary
search finds the size in about eight calls; it is done only after an E2BIG.
"""

from __future__ import annotations

import errno
import functools
import os

from pybpf.syscall._ffi import NR_BPF, ffi, libc
from pybpf.syscall._uapi import Cmd

ATTR_TYPE = ffi.typeof("union bpf_attr")
ATTR_SIZE = ffi.sizeof(ATTR_TYPE)

#: First field of each anonymous struct in union bpf_attr (cffi flattens them).
_ANON_GROUPS = ("map_type", "map_fd", "prog_type", "pathname", "target_fd", "start_id", "btf")
#: The union member (named struct or anonymous group) each command reads.
_COMMAND_GROUP = {
    Cmd.MAP_CREATE: "map_type", Cmd.PROG_LOAD: "prog_type", Cmd.BTF_LOAD: "btf",
    **dict.fromkeys((Cmd.MAP_LOOKUP_ELEM, Cmd.MAP_UPDATE_ELEM, Cmd.MAP_DELETE_ELEM,
                     Cmd.MAP_GET_NEXT_KEY, Cmd.MAP_LOOKUP_AND_DELETE_ELEM, Cmd.MAP_FREEZE),
                    "map_fd"),
    **dict.fromkeys((Cmd.MAP_LOOKUP_BATCH, Cmd.MAP_LOOKUP_AND_DELETE_BATCH,
                     Cmd.MAP_UPDATE_BATCH, Cmd.MAP_DELETE_BATCH), "batch"),
    Cmd.OBJ_PIN: "pathname", Cmd.OBJ_GET: "pathname",
    Cmd.PROG_ATTACH: "target_fd", Cmd.PROG_DETACH: "target_fd",
    **dict.fromkeys((Cmd.PROG_GET_NEXT_ID, Cmd.MAP_GET_NEXT_ID, Cmd.BTF_GET_NEXT_ID,
                     Cmd.LINK_GET_NEXT_ID, Cmd.PROG_GET_FD_BY_ID, Cmd.MAP_GET_FD_BY_ID,
                     Cmd.BTF_GET_FD_BY_ID, Cmd.LINK_GET_FD_BY_ID), "start_id"),
    Cmd.PROG_TEST_RUN: "test", Cmd.OBJ_GET_INFO_BY_FD: "info", Cmd.PROG_QUERY: "query",
    Cmd.RAW_TRACEPOINT_OPEN: "raw_tracepoint", Cmd.TASK_FD_QUERY: "task_fd_query",
    Cmd.LINK_CREATE: "link_create", Cmd.LINK_UPDATE: "link_update",
    Cmd.LINK_DETACH: "link_detach", Cmd.ENABLE_STATS: "enable_stats",
    Cmd.ITER_CREATE: "iter_create", Cmd.PROG_BIND_MAP: "prog_bind_map",
    Cmd.TOKEN_CREATE: "token_create",
}


def _leaves(ctype, base: int, prefix: str):
    """(dotted name, offset, size) of every scalar or array field inside ``ctype``."""
    for name, field in ctype.fields:
        offset = base + field.offset
        if field.type.kind in ("struct", "union"):
            yield from _leaves(field.type, offset, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", offset, ffi.sizeof(field.type)


@functools.cache
def _groups() -> dict[str, list[tuple[str, int, int]]]:
    """union member -> its leaf fields, anonymous groups keyed by their first field."""
    groups: dict[str, list[tuple[str, int, int]]] = {}
    current = None
    for name, field in ATTR_TYPE.fields:
        if field.type.kind in ("struct", "union"):
            groups[name] = list(_leaves(field.type, field.offset, f"{name}."))
            current = None
            continue
        if name in _ANON_GROUPS:
            current = groups.setdefault(name, [])
        if current is not None:
            current.append((name, field.offset, ffi.sizeof(field.type)))
    return groups


@functools.cache
def kernel_attr_size() -> int:
    """sizeof(union bpf_attr) in the running kernel, up to pybpf's own size."""
    def beyond(offset: int) -> bool:
        buf = ffi.new("unsigned char[]", offset + 1)
        buf[offset] = 1
        ret = libc.syscall(NR_BPF, ffi.cast("int", Cmd.PROG_GET_FD_BY_ID), buf,
                           ffi.cast("unsigned int", offset + 1))
        if ret >= 0:  # cannot happen (no program has id 0); never leak an fd
            os.close(ret)
            return False
        return ffi.errno == errno.E2BIG

    low, high = 0, ATTR_SIZE  # the kernel's size is in [low, high]
    if not beyond(ATTR_SIZE - 1):
        return ATTR_SIZE
    while low < high:
        mid = (low + high) // 2
        if beyond(mid):
            high = mid
        else:
            low = mid + 1
    return low


def fields_beyond(cmd: int, attr, size: int, kernel_size: int) -> list[str]:
    """Fields of ``cmd``'s attributes that are set at offsets the kernel does not have."""
    raw = ffi.buffer(ffi.cast("unsigned char *", attr), size)[:]
    nonzero = [o for o in range(kernel_size, size) if raw[o]]
    if not nonzero:
        return []
    group = _groups().get(_COMMAND_GROUP.get(cmd, ""), [])
    spans: dict[tuple[int, int], list[str]] = {}  # union members share a span
    for name, off, n in group:
        if any(off <= o < off + n for o in nonzero):
            spans.setdefault((off, n), []).append(name)
    names = [" or ".join(alias) for _, alias in sorted(spans.items())]
    known = {o for _, off, n in group for o in range(off, off + n)}
    stray = [o for o in nonzero if o not in known]
    if stray:
        names.append(f"bytes at offset {stray[0]}..{stray[-1]}")
    return names
