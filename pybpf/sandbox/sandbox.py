"""The Sandbox: namespaces, veth pairs and cgroups that all go away together.

    with Sandbox() as sb:
        left, right = sb.veth_pair()          # two namespaces joined by a veth
        with right.ns.entered():
            server = socket.socket(...)       # lives in right's namespace
        ...

Every object a Sandbox makes is also registered with cleanup.py on its own,
so it is removed even when the Sandbox is never closed (exit, SIGINT,
SIGTERM).  Nothing here touches the caller's own namespace: veth ends are
created inside sandbox namespaces only.
"""

from __future__ import annotations

import itertools
import os

from pybpf._record import record
from pybpf.sandbox.cgroup import Cgroup
from pybpf.sandbox.netns import Netns

__all__ = ["Endpoint", "Sandbox"]

_veth_ids = itertools.count()


@record(slots=False)
class Endpoint:
    """One end of a veth pair: its namespace, interface name, ifindex and addresses."""

    ns: Netns
    ifname: str
    ifindex: int
    ipv4: str | None
    ipv6: str | None


class Sandbox:
    """Owner of throwaway namespaces, veth pairs and cgroups; close() removes them all."""

    def __init__(self) -> None:
        self._netns: list[Netns] = []
        self._cgroups: list[Cgroup] = []
        self._subnets = itertools.count(1)

    def netns(self) -> Netns:
        """A new empty namespace with ``lo`` up."""
        ns = Netns()
        self._netns.append(ns)
        return ns

    def cgroup(self) -> Cgroup:
        """A new empty cgroup v2 group."""
        cg = Cgroup()
        self._cgroups.append(cg)
        return cg

    def veth(self, a: Netns, b: Netns, *, name_a: str | None = None, name_b: str | None = None,
             ipv4: tuple[str, str] | None = None, ipv6: tuple[str, str] | None = None,
             up: bool = True) -> tuple[Endpoint, Endpoint]:
        """A veth pair with one end in ``a`` and its peer in ``b``, addressed and up."""
        for ns in (a, b):
            if ns not in self._netns:
                raise ValueError(f"{ns!r} does not belong to this sandbox; refusing to add a veth")
        n = next(_veth_ids)
        name_a = name_a or f"pbv{os.getpid() % 100000}a{n}"[:15]
        name_b = name_b or f"pbv{os.getpid() % 100000}b{n}"[:15]
        with a.ipr() as ipr:
            ipr.link("add", ifname=name_a, kind="veth",
                     peer={"ifname": name_b, "net_ns_fd": b.name})
        ends = []
        for ns, name, i in ((a, name_a, 0), (b, name_b, 1)):
            if ipv4:
                ns.add_address(name, ipv4[i])
            if ipv6:
                ns.add_address(name, ipv6[i])
            if up:
                ns.set_up(name)
            ends.append(Endpoint(ns, name, ns.ifindex(name),
                                 ipv4[i].split("/")[0] if ipv4 else None,
                                 ipv6[i].split("/")[0] if ipv6 else None))
        return ends[0], ends[1]

    def veth_pair(self, ipv6: bool = True) -> tuple[Endpoint, Endpoint]:
        """Two new namespaces joined by a veth, with 10.199.<n>.1/.2 and fd00:199:<n>::1/::2."""
        s = next(self._subnets)
        if s > 250:
            raise ValueError("too many veth pairs in one sandbox")
        v4 = (f"10.199.{s}.1/24", f"10.199.{s}.2/24")
        v6 = (f"fd00:199:{s}::1/64", f"fd00:199:{s}::2/64") if ipv6 else None
        return self.veth(self.netns(), self.netns(), ipv4=v4, ipv6=v6)

    def close(self) -> None:
        """Remove every cgroup and namespace (and so every veth, address, route, qdisc)."""
        errors = []
        for res in reversed(self._cgroups + self._netns):
            try:
                res.close()
            except Exception as e:  # noqa: BLE001 - remove the rest anyway
                errors.append(e)
        self._cgroups.clear()
        self._netns.clear()
        if errors:
            raise errors[0]

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
