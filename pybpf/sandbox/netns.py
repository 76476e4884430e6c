"""Throwaway network namespaces, and running Python code or commands inside them.

A ``Netns`` is a named namespace (``ip netns`` can see it, which helps while
debugging) whose name is unique to this process: ``pybpf-<pid>-<n>``.  It is
deleted on close(), at exit and on SIGINT/SIGTERM (see cleanup.py); deleting a
namespace makes the kernel destroy every interface, address, route and qdisc
in it, and with a veth end, its peer in whatever namespace that lives.

Three ways to act inside the namespace:

* ``with ns.entered():`` moves the calling thread there (setns(CLONE_NEWNET))
  and back.  Sockets keep the namespace they were created in, so a test can
  open sockets inside, leave, and still use them; bpf() commands that take an
  ifindex resolve it in the caller's namespace, so attach inside too.
* ``ns.run(func, *args)`` forks, enters the namespace in the child, runs the
  function and sends its result (or exception) back through a pipe.
* ``ns.popen(argv)`` / ``ns.check_output(argv)`` start a command inside.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

from pybpf._netlink_flags import IFA_F_NODAD
from pybpf._pyroute2 import IPRoute
from pybpf._pyroute2 import netns as _pyroute2_netns
from pybpf.sandbox import cleanup
from pybpf.sandbox.process import run_in_child

__all__ = ["Netns", "current_netns_inode"]

_counter = itertools.count()
NETNS_RUN_DIR = "/var/run/netns"


def current_netns_inode() -> int:
    """Inode of the calling thread's network namespace (identifies it)."""
    return os.stat("/proc/thread-self/ns/net").st_ino


def _setns(fd: int) -> None:
    _pyroute2_netns().setns(fd)


class Netns(cleanup.Owned):
    """A network namespace this process created and will delete."""

    def __init__(self, name: str | None = None):
        self.name = name or f"pybpf-{os.getpid()}-{next(_counter)}"
        if os.path.exists(os.path.join(NETNS_RUN_DIR, self.name)):
            raise FileExistsError(
                f"network namespace {self.name!r} already exists; not taking it over")
        # Registered before it exists: a signal between create and register must not leak it.
        self._own(f"network namespace {self.name}")
        self._ipr = None
        try:
            _pyroute2_netns().create(self.name)
            with self.ipr() as ipr:
                (lo,) = ipr.link_lookup(ifname="lo")
                ipr.link("set", index=lo, state="up")
        except BaseException:
            self.close()
            raise

    @property
    def path(self) -> str:
        """The bind mount that keeps the namespace alive (/var/run/netns/<name>)."""
        return os.path.join(NETNS_RUN_DIR, self.name)

    def ipr(self):
        """A new rtnetlink socket bound to this namespace (close it, or use ``with``)."""
        return IPRoute(netns=self.name)

    # -- acting inside ---------------------------------------------------------------

    @contextlib.contextmanager
    def entered(self) -> Iterator[Netns]:
        """Run the body with the calling thread inside this namespace, then return."""
        back = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(self.path, os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield self
            finally:
                _setns(back)
        finally:
            os.close(target)
            os.close(back)

    def run(self, func: Callable[..., Any], *args: Any, timeout: float | None = 30.0,
            **kwargs: Any) -> Any:
        """Call ``func(*args, **kwargs)`` in a forked child inside the namespace."""
        return run_in_child(self._enter_child, func, args, kwargs, timeout)

    def _enter_child(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        _setns(fd)
        os.close(fd)

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen:
        """Start a command inside the namespace (arguments as for subprocess.Popen)."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            return subprocess.Popen(argv, preexec_fn=lambda: _setns(fd), pass_fds=(fd,), **kwargs)
        finally:
            os.close(fd)

    def check_output(self, argv: list[str], timeout: float = 30.0) -> str:
        """Run a command inside the namespace; return its stdout, raise on a non-zero exit."""
        with self.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
            out, err = p.communicate(timeout=timeout)
        if p.returncode:
            raise subprocess.CalledProcessError(p.returncode, argv, out, err)
        return out

    # -- configuration -----------------------------------------------------------------

    def ifindex(self, ifname: str) -> int:
        """ifindex of an interface in this namespace (LookupError if absent)."""
        with self.ipr() as ipr:
            found = ipr.link_lookup(ifname=ifname)
        if not found:
            raise LookupError(f"no interface {ifname!r} in network namespace {self.name}")
        return found[0]

    def add_address(self, ifname: str, address: str) -> None:
        """Add ``address`` ("10.0.0.1/24" or "fd00::1/64") to an interface of this namespace."""
        addr, _, prefix = address.partition("/")
        if not prefix:
            prefix = "128" if ":" in addr else "32"
        with self.ipr() as ipr:
            idx = ipr.link_lookup(ifname=ifname)[0]
            # IPv6: skip duplicate address detection, or the address stays "tentative"
            # (unusable for bind) for a second or more
            kw = {"flags": IFA_F_NODAD} if ":" in addr else {}
            ipr.addr("add", index=idx, address=addr, prefixlen=int(prefix), **kw)

    def set_up(self, ifname: str) -> None:
        """Bring an interface of this namespace up."""
        with self.ipr() as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname=ifname)[0], state="up")

    def add_route(self, dst: str, gateway: str | None = None, ifname: str | None = None) -> None:
        """Add a route ("default" or "10.1.0.0/16") in this namespace."""
        kw: dict[str, Any] = {"dst": dst}
        if gateway:
            kw["gateway"] = gateway
        with self.ipr() as ipr:
            if ifname:
                kw["oif"] = ipr.link_lookup(ifname=ifname)[0]
            if ":" in (gateway or dst):
                kw["family"] = 10
            ipr.route("add", **kw)

    def interfaces(self) -> list[str]:
        """Names of the interfaces in this namespace."""
        with self.ipr() as ipr:
            return [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]

    # -- lifetime ------------------------------------------------------------------------

    def _remove(self) -> None:
        """Delete the namespace and everything in it."""
        if os.path.exists(self.path):
            _pyroute2_netns().remove(self.name)

    def __repr__(self) -> str:
        return f"Netns({self.name!r})"
