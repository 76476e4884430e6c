"""rtnetlink access pinned to the network namespace an attachment was made in.

An ifindex means something only inside one network namespace.  Legacy
attachments (IFLA_XDP, clsact + cls_bpf) keep an fd of the namespace that was
current when they were made, so that detach -- possibly run from a signal
handler after the caller has moved elsewhere -- talks to the same interface.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from pybpf._pyroute2 import IPRoute
from pybpf._pyroute2 import netns as _pyroute2_netns
from pybpf.syscall.links import AttachError

__all__ = ["NetnsRef", "resolve_ifindex"]


class NetnsRef:
    """A held reference (an open fd) to the calling thread's current network namespace."""

    def __init__(self) -> None:
        self.fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        self.inode = os.fstat(self.fd).st_ino

    @contextlib.contextmanager
    def ipr(self) -> Iterator[Any]:
        """An IPRoute socket opened inside the referenced namespace."""
        here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            moved = os.fstat(here).st_ino != self.inode
            if moved:
                _pyroute2_netns().setns(self.fd)
            try:
                ipr = IPRoute()
            finally:
                if moved:
                    _pyroute2_netns().setns(here)
        finally:
            os.close(here)
        with ipr:
            yield ipr

    def close(self) -> None:
        """Drop the reference (the namespace may then go away)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def resolve_ifindex(interface: int | str) -> int:
    """ifindex of an interface name or number in the current namespace; AttachError if absent."""
    with IPRoute() as ipr:
        if isinstance(interface, str):
            found = ipr.link_lookup(ifname=interface)
            if not found:
                raise AttachError(f"no network interface {interface!r} in this network namespace")
            return found[0]
        if not ipr.link_lookup(index=interface):
            raise AttachError(f"no network interface with ifindex {interface} in this network "
                              "namespace")
        return interface
