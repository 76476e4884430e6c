"""XDP: a program on an interface's receive path, before the kernel allocates an skb.

Mechanisms (``mechanism=``):
  "link"     BPF_LINK_CREATE with BPF_XDP (Linux 5.9+): gone when the link fd closes.
  "netlink"  RTM_SETLINK with IFLA_XDP (Linux 4.8+): stays until removed, so pybpf
             removes it on detach, at exit and on SIGINT/SIGTERM.
  "auto"     link, or netlink when the kernel predates XDP links.

Modes (``mode=``, the XDP_FLAGS_*_MODE bits of linux/if_link.h): "skb" (generic,
any device), "driver" (native), "hw" (offload), or None to let the kernel pick
(driver mode where the driver has it).  Without ``replace=True`` an existing
program is never overwritten (XDP_FLAGS_UPDATE_IF_NOEXIST); netlink detach
names our program (IFLA_XDP_EXPECTED_FD + XDP_FLAGS_REPLACE, 5.7+) so that
a program someone else put there meanwhile is left alone.
"""

from __future__ import annotations

import errno
from typing import Any

from pybpf._netlink_flags import (
    XDP_FLAGS_DRV_MODE,
    XDP_FLAGS_HW_MODE,
    XDP_FLAGS_REPLACE,
    XDP_FLAGS_SKB_MODE,
    XDP_FLAGS_UPDATE_IF_NOEXIST,
)
from pybpf.errors import BPFError
from pybpf.sandbox import cleanup
from pybpf.syscall._uapi import AttachType, ProgType
from pybpf.syscall.attach._netlink import NetnsRef, resolve_ifindex
from pybpf.syscall.links import (
    AttachError,
    Attachment,
    LinkInfo,
    kernel_version,
    link_create,
    prog_fd,
    require_prog_type,
)

__all__ = ["XdpNetlinkAttachment", "attach_xdp", "query_xdp"]

MODES = {None: 0, "skb": XDP_FLAGS_SKB_MODE, "generic": XDP_FLAGS_SKB_MODE,
         "driver": XDP_FLAGS_DRV_MODE, "native": XDP_FLAGS_DRV_MODE, "hw": XDP_FLAGS_HW_MODE}
XDP_LINK_KERNEL = (5, 9)


def attach_xdp(prog: Any, interface: int | str, *, mode: str | None = None,
               mechanism: str = "auto", replace: bool = False) -> Attachment:
    """Attach an XDP program to ``interface`` (name or ifindex, in the current netns)."""
    if mode not in MODES:
        raise AttachError(f"XDP mode {mode!r} is not one of skb, driver, hw (or None)")
    if mechanism not in ("auto", "link", "netlink"):
        raise AttachError(f"XDP mechanism {mechanism!r} is not one of auto, link, netlink")
    ifindex = resolve_ifindex(interface)
    hook = f"XDP on ifindex {ifindex}"
    require_prog_type(prog, ProgType.XDP, hook)
    if mechanism == "auto":
        mechanism = "link" if kernel_version() >= XDP_LINK_KERNEL else "netlink"
    if mechanism == "link":
        if replace:
            raise AttachError("XDP links cannot replace a program they did not create; "
                              "use mechanism='netlink' or Link.update()")
        return link_create(prog, ifindex, AttachType.XDP, hook, flags=MODES[mode],
                           needs=XDP_LINK_KERNEL)
    return XdpNetlinkAttachment(prog, ifindex, MODES[mode], replace, hook)


def query_xdp(interface: int | str) -> dict[str, int]:
    """Program ids attached to an interface by mode: {"driver": id, "skb": id, "hw": id}."""
    ifindex = resolve_ifindex(interface)
    ref = NetnsRef()
    try:
        return _query(ref, ifindex)
    finally:
        ref.close()


def _query(ref: NetnsRef, ifindex: int) -> dict[str, int]:
    with ref.ipr() as ipr:
        (link,) = ipr.get_links(ifindex)
    xdp = link.get_attr("IFLA_XDP")
    if xdp is None:
        return {}
    found = {}
    for attr, name in (("IFLA_XDP_DRV_PROG_ID", "driver"), ("IFLA_XDP_SKB_PROG_ID", "skb"),
                       ("IFLA_XDP_HW_PROG_ID", "hw")):
        value = xdp.get_attr(attr)
        if value:
            found[name] = value
    if not found and xdp.get_attr("IFLA_XDP_PROG_ID"):
        mode = {"xdp": "driver", "xdpgeneric": "skb", "xdpoffload": "hw"}.get(
            xdp.get_attr("IFLA_XDP_ATTACHED"), "driver")
        found[mode] = xdp.get_attr("IFLA_XDP_PROG_ID")
    return found


class XdpNetlinkAttachment(Attachment):
    """An XDP program set with IFLA_XDP; removed by detach(), at exit, or on SIGINT/SIGTERM."""

    mechanism = "netlink"

    def __init__(self, prog: Any, ifindex: int, mode_flags: int, replace: bool, hook: str):
        super().__init__(hook, prog)
        self.ifindex = ifindex
        self._mode_flags = mode_flags
        self._ns = NetnsRef()
        flags = mode_flags | (0 if replace else XDP_FLAGS_UPDATE_IF_NOEXIST)
        try:
            self._set(prog_fd(prog), flags)
        except BaseException:
            self._ns.close()
            raise
        self._token = cleanup.register(f"XDP program on ifindex {ifindex}", self.detach)

    def _set(self, fd: int, flags: int, expected: int | None = None) -> None:
        attrs = [("IFLA_XDP_FD", fd), ("IFLA_XDP_FLAGS", flags)]
        if expected is not None:
            attrs.append(("IFLA_XDP_EXPECTED_FD", expected))
        try:
            with self._ns.ipr() as ipr:
                ipr.link("set", index=self.ifindex, xdp={"attrs": attrs})
        except Exception as e:
            code = getattr(e, "code", errno.EINVAL)
            msg = str(e)
            if code == errno.EBUSY:
                msg = ("an XDP program is already attached (maybe through a link, or in "
                       "another mode); pass replace=True to overwrite a netlink one")
            elif code == errno.EEXIST:
                msg = "an XDP program is already attached; pass replace=True to overwrite it"
            elif code == errno.EOPNOTSUPP:
                msg = "this device has no XDP support in the requested mode (try mode='skb')"
            raise BPFError(code, "RTM_SETLINK IFLA_XDP", f"{self.hook}: {msg}") from e

    def keep(self) -> None:
        """Leave the program on the interface after detach-at-exit (pybpf forgets it)."""
        cleanup.unregister(self._token)
        self._detached = True
        self._ns.close()

    def update(self, new_prog: Any) -> None:
        """Swap the program atomically, only if ours is still the one attached."""
        require_prog_type(new_prog, ProgType.XDP, self.hook)
        self._set(prog_fd(new_prog), self._mode_flags | XDP_FLAGS_REPLACE, prog_fd(self.prog))
        self.prog = new_prog

    def _detach(self) -> None:
        cleanup.unregister(self._token)
        try:
            self._set(-1, self._mode_flags | XDP_FLAGS_REPLACE, prog_fd(self.prog))
        except BPFError as e:
            # ENODEV: interface gone; EEXIST: someone else's program now, not ours to remove
            if e.errno not in (errno.ENODEV, errno.EEXIST, errno.ENOENT):
                raise
        finally:
            self._ns.close()

    def info(self) -> LinkInfo:
        """Which program the interface runs now, per mode."""
        return LinkInfo(self.mechanism, self.hook, super().info().prog_id,
                        attach_type=AttachType.XDP,
                        target={"ifindex": self.ifindex, "attached": _query(self._ns, self.ifindex)})


