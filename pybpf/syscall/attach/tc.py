"""TC: sched_cls programs on an interface's ingress or egress, after the skb exists.

Mechanisms (``mechanism=``):
  "link"     a TCX link (BPF_LINK_CREATE with BPF_TCX_INGRESS/EGRESS, Linux 6.6+).
             Several programs form an ordered list; ``before=``/``after=`` place
             the new one next to an anchor (a program or link object, or an id),
             ``first=``/``last=`` at an end.  Replacing is Link.update().
  "netlink"  a cls_bpf filter in direct-action mode under a clsact qdisc
             (Linux 4.5+), at ``priority`` and ``handle``.  pybpf adds clsact only
             when the interface has none, and on detach removes its filter, and
             the qdisc only if it added it and no filter is left in it.
  "auto"     link, or netlink before 6.6.

Return codes are TC_ACT_* (TC_ACT_OK 0, TC_ACT_SHOT 2; TCX_NEXT -1 continues the
TCX list).
"""

from __future__ import annotations

import errno
from typing import Any

from pybpf.errors import BPFError
from pybpf.sandbox import cleanup
from pybpf.syscall._ffi import address, ffi
from pybpf.syscall._uapi import BPF_F_AFTER, BPF_F_BEFORE, BPF_F_ID, AttachType, Cmd, MapFlags, ProgType
from pybpf.syscall.attach._net_uapi import (
    TC_H_CLSACT,
    TC_H_MAJ_MASK,
    TC_H_MIN_EGRESS,
    TC_H_MIN_INGRESS,
    TC_H_MIN_MASK,
)
from pybpf.syscall.attach._netlink import NetnsRef, resolve_ifindex
from pybpf.syscall.bpf import bpf, new_attr
from pybpf.syscall.links import (
    AttachError,
    Attachment,
    LinkInfo,
    kernel_version,
    link_create,
    prog_fd,
    require_prog_type,
)

__all__ = ["ClsBpfAttachment", "attach_tc", "query_tc"]

TCX_KERNEL = (6, 6)


def _tc_h_make(major: int, minor: int) -> int:
    """TC_H_MAKE(maj, min) of linux/pkt_sched.h: a qdisc/class handle."""
    return (major & TC_H_MAJ_MASK) | (minor & TC_H_MIN_MASK)


#: the parents of clsact's two hooks: TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS/EGRESS)
_PARENTS = {"ingress": _tc_h_make(TC_H_CLSACT, TC_H_MIN_INGRESS),
            "egress": _tc_h_make(TC_H_CLSACT, TC_H_MIN_EGRESS)}
_TCX = {"ingress": AttachType.TCX_INGRESS, "egress": AttachType.TCX_EGRESS}
#: clsact qdiscs pybpf added, by (netns inode, ifindex): how many of our filters use each
_OUR_QDISCS: dict[tuple[int, int], int] = {}
#: BPF_F_LINK: the relative anchor is a link, not a program (linux/bpf.h's #define
#: BPF_F_LINK names the enum member, generated into MapFlags)
_BPF_F_LINK = int(MapFlags.LINK)


def attach_tc(prog: Any, interface: int | str, direction: str = "ingress", *,
              mechanism: str = "auto", before: Any = None, after: Any = None,
              first: bool = False, last: bool = False, expected_revision: int = 0,
              priority: int = 1, handle: int = 1) -> Attachment:
    """Attach a sched_cls program to ``interface``'s ``direction`` ("ingress"/"egress")."""
    if direction not in _PARENTS:
        raise AttachError(f"TC direction {direction!r} is not 'ingress' or 'egress'")
    if mechanism not in ("auto", "link", "netlink"):
        raise AttachError(f"TC mechanism {mechanism!r} is not one of auto, link, netlink")
    ifindex = resolve_ifindex(interface)
    hook = f"TC {direction} on ifindex {ifindex}"
    require_prog_type(prog, ProgType.SCHED_CLS, hook)
    if mechanism == "auto":
        mechanism = "link" if kernel_version() >= TCX_KERNEL else "netlink"
    if mechanism == "netlink":
        if before is not None or after is not None or first or last:
            raise AttachError("before/after/first/last anchors need TCX links; cls_bpf orders "
                              "filters by priority")
        return ClsBpfAttachment(prog, ifindex, direction, priority, handle, hook)
    flags, relative = _anchor(before, after, first, last)

    def fill(attr) -> None:
        attr.link_create.tcx.relative_fd = relative
        attr.link_create.tcx.expected_revision = expected_revision

    return link_create(prog, ifindex, _TCX[direction], hook, flags=flags, needs=TCX_KERNEL,
                       fill=fill)


def _anchor(before: Any, after: Any, first: bool, last: bool) -> tuple[int, int]:
    """BPF_F_BEFORE/AFTER (+ BPF_F_LINK or BPF_F_ID) and relative_fd/id for a TCX anchor."""
    chosen = [x for x in (before is not None, after is not None, first, last) if x]
    if len(chosen) > 1:
        raise AttachError("give at most one of before=, after=, first=, last=")
    if first:
        return BPF_F_BEFORE, 0
    if last:
        return BPF_F_AFTER, 0
    anchor = before if before is not None else after
    if anchor is None:
        return 0, 0
    flags = BPF_F_BEFORE if before is not None else BPF_F_AFTER
    if isinstance(anchor, int):
        return flags | BPF_F_ID, anchor  # a program id
    if getattr(anchor, "kind", None) == "link":
        return flags | _BPF_F_LINK, anchor.fd
    return flags, prog_fd(anchor)


def query_tc(interface: int | str, direction: str = "ingress") -> dict[str, Any]:
    """BPF_PROG_QUERY on the TCX list: {"prog_ids": [...], "link_ids": [...], "revision": n}."""
    ifindex = resolve_ifindex(interface)
    ids = ffi.new("uint32_t[]", 64)
    links = ffi.new("uint32_t[]", 64)
    attr = new_attr()
    attr.query.target_ifindex = ifindex
    attr.query.attach_type = _TCX[direction]
    attr.query.prog_ids = address(ids)
    attr.query.link_ids = address(links)
    attr.query.count = 64
    bpf(Cmd.PROG_QUERY, attr)
    n = attr.query.count
    return {"prog_ids": list(ids[0:n]), "link_ids": [i for i in links[0:n] if i],
            "revision": attr.query.revision}


class ClsBpfAttachment(Attachment):
    """A cls_bpf direct-action filter under clsact; removed on detach, at exit, on signals."""

    mechanism = "netlink"

    def __init__(self, prog: Any, ifindex: int, direction: str, priority: int, handle: int,
                 hook: str):
        super().__init__(hook, prog)
        self.ifindex, self.direction = ifindex, direction
        self.priority, self.handle = priority, handle
        self._ns = NetnsRef()
        try:
            self._added_qdisc = self._ensure_clsact()
            self._token = cleanup.register(f"clsact/cls_bpf on ifindex {ifindex}", self.detach)
            self._add_filter(prog)
        except BaseException:
            self._detached = True
            if getattr(self, "_token", None):
                cleanup.unregister(self._token)
            self._drop_qdisc_if_ours()
            self._ns.close()
            raise

    def _ensure_clsact(self) -> bool:
        """Make sure clsact exists; True if pybpf owns it (added it now or for another filter)."""
        key = (self._ns.inode, self.ifindex)
        with self._ns.ipr() as ipr:
            present = any(q.get_attr("TCA_KIND") == "clsact"
                          for q in ipr.get_qdiscs(index=self.ifindex))
            if present and key not in _OUR_QDISCS:
                return False
            if not present:
                ipr.tc("add", "clsact", self.ifindex)
                _OUR_QDISCS[key] = 0
        _OUR_QDISCS[key] += 1
        return True

    def _add_filter(self, prog: Any, command: str = "add-filter") -> None:
        try:
            with self._ns.ipr() as ipr:
                ipr.tc(command, "bpf", self.ifindex, self.handle, fd=prog_fd(prog),
                       name=f"pybpf-{prog_fd(prog)}", parent=_PARENTS[self.direction],
                       prio=self.priority, classid=1, direct_action=True)
        except Exception as e:
            code = getattr(e, "code", errno.EINVAL)
            msg = str(e)
            if code == errno.EEXIST:
                msg = (f"a filter with priority {self.priority} handle {self.handle} already "
                       "exists; choose another priority=")
            raise BPFError(code, "RTM_NEWTFILTER cls_bpf", f"{self.hook}: {msg}") from e

    def keep(self) -> None:
        """Leave filter (and a clsact pybpf added) in place at exit; pybpf forgets them."""
        cleanup.unregister(self._token)
        self._detached = True
        if self._added_qdisc:
            key = (self._ns.inode, self.ifindex)
            _OUR_QDISCS[key] -= 1
            if not _OUR_QDISCS[key]:
                del _OUR_QDISCS[key]
            self._added_qdisc = False
        self._ns.close()

    def update(self, new_prog: Any) -> None:
        """Replace the filter's program in place (RTM_NEWTFILTER with NLM_F_REPLACE)."""
        require_prog_type(new_prog, ProgType.SCHED_CLS, self.hook)
        self._add_filter(new_prog, "replace-filter")
        self.prog = new_prog

    def _filters(self, ipr, parent: str) -> list:
        try:
            return list(ipr.get_filters(index=self.ifindex, parent=parent))
        except Exception:  # noqa: BLE001 - no qdisc, no filters
            return []

    def _detach(self) -> None:
        cleanup.unregister(self._token)
        try:
            with self._ns.ipr() as ipr:
                try:
                    ipr.tc("del-filter", "bpf", self.ifindex, self.handle,
                           parent=_PARENTS[self.direction], prio=self.priority)
                except Exception as e:  # noqa: BLE001
                    if getattr(e, "code", None) not in (errno.ENOENT, errno.ENODEV,
                                                        errno.EINVAL):
                        raise
            self._drop_qdisc_if_ours()
        finally:
            self._ns.close()

    def _drop_qdisc_if_ours(self) -> None:
        if not getattr(self, "_added_qdisc", False):
            return
        self._added_qdisc = False
        key = (self._ns.inode, self.ifindex)
        _OUR_QDISCS[key] -= 1
        if _OUR_QDISCS[key] > 0:
            return  # another pybpf filter still sits in it
        del _OUR_QDISCS[key]
        with self._ns.ipr() as ipr:
            if any(self._filters(ipr, p) for p in _PARENTS.values()):
                return  # someone (maybe another attachment of ours) still uses it
            try:
                ipr.tc("del", "clsact", self.ifindex)
            except Exception as e:  # noqa: BLE001
                if getattr(e, "code", None) not in (errno.ENOENT, errno.ENODEV, errno.EINVAL):
                    raise

    def info(self) -> LinkInfo:
        """The filter's place: interface, direction, priority, handle."""
        return LinkInfo(self.mechanism, self.hook, super().info().prog_id,
                        target={"ifindex": self.ifindex, "direction": self.direction,
                                "priority": self.priority, "handle": self.handle})
