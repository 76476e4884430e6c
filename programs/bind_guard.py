"""2c. Bind guard: a cgroup's tasks may not bind(2) to the ports listed in a map.

Two cgroup sock_addr programs, on ``bind4`` and ``bind6``, look the requested
port up in a hash map of forbidden ports; a hit counts one refusal and
returns 0, which the kernel turns into EPERM for the caller.  Every other
bind (including port 0, "pick one for me") proceeds.  The map is shared by
both programs and can change while they run.
"""

from __future__ import annotations

import contextlib
import errno

from programs.tool import Attached, Tool, ToolError
from pybpf.dsl import Hash, cgroup_sock_addr, u16, u64

TYPE_CHECKING = False  # as typing's: importing typing costs ~5 ms (with re) at start-up
if TYPE_CHECKING:
    import argparse

forbidden = Hash(u16, u64, max_entries=1024)   # port (host order) -> binds refused


def _guard(p) -> None:
    with forbidden.lookup(p.ctx.user_port.host()) as refused:
        refused.atomic_add(1)
        p.return_(0)                             # EPERM for bind()
    p.return_(1)


@cgroup_sock_addr("bind4")
def guard_bind4(p):
    """Refuse an IPv4 bind() to a forbidden port."""
    _guard(p)


@cgroup_sock_addr("bind6")
def guard_bind6(p):
    """Refuse an IPv6 bind() to a forbidden port."""
    _guard(p)


# -- userspace ------------------------------------------------------------------------------

class BindGuard(Attached):
    """Both programs loaded, sharing one port map, attached to ``cgroup``."""

    def __init__(self, cgroup, ports=()):
        from pybpf.syscall.attach import attach_cgroup
        super().__init__()
        try:
            v4 = self._stack.enter_context(guard_bind4.load())
            self.ports = v4["forbidden"]
            v6 = self._stack.enter_context(guard_bind6.load(maps={"forbidden": self.ports}))
            for port in ports:
                self.forbid(port)
            self._stack.enter_context(attach_cgroup(v4, cgroup, "bind4"))
            self._stack.enter_context(attach_cgroup(v6, cgroup, "bind6"))
        except BaseException:
            self._stack.close()
            raise

    def forbid(self, port: int) -> None:
        if not 0 < port < 65536:
            raise ToolError(f"port {port} is not in 1..65535")
        self.ports.update(port, 0)

    def allow(self, port: int) -> None:
        self.ports.delete(port)

    def refusals(self) -> dict[int, int]:
        """Forbidden port -> binds refused so far."""
        return dict(self.ports.items())


# -- demo and run -------------------------------------------------------------------------

def try_binds(ns, binds) -> list[int]:
    """Bind a socket to each (family, address, port) inside ``ns``; 0 or the errno of each."""
    import socket
    out = []
    with ns.entered():
        for family, addr, port in binds:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                try:
                    s.bind((addr, port))
                    out.append(0)
                except OSError as e:
                    out.append(e.errno)
    return out


def demo() -> None:
    import socket

    from pybpf.sandbox import Sandbox
    with Sandbox() as sb:
        ns, cg = sb.netns(), sb.cgroup()
        with BindGuard(cg, ports=(8080, 2222)) as guard:
            binds = [(socket.AF_INET, "127.0.0.1", 8080), (socket.AF_INET6, "::1", 8080),
                     (socket.AF_INET, "127.0.0.1", 8081), (socket.AF_INET, "0.0.0.0", 2222),
                     (socket.AF_INET6, "::", 2223), (socket.AF_INET, "127.0.0.1", 0)]
            print(f"forbidden ports: {sorted(guard.refusals())}; a child in cgroup {cg.name} "
                  "binds:")
            for (fam, addr, port), err in zip(binds, cg.run(try_binds, ns, binds), strict=True):
                where = f"[{addr}]:{port}" if fam == socket.AF_INET6 else f"{addr}:{port}"
                verdict = "ok" if not err else f"refused ({errno.errorcode[err]})"
                print(f"  bind {where:<16} {verdict}")
            print("refusals per port:", ", ".join(f"{p}: {n}" for p, n in
                                                  sorted(guard.refusals().items())))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cgroup", required=True, help="cgroup v2 directory to guard")
    parser.add_argument("--port", type=int, action="append", required=True,
                        help="a port to forbid (repeat for more)")


def run(args: argparse.Namespace) -> None:
    import time
    with BindGuard(args.cgroup, args.port) as guard:
        last = guard.refusals()
        with contextlib.suppress(KeyboardInterrupt):
            # ready (and Ctrl-C safe): tests and scripts wait for this line
            print(f"refusing binds to ports {sorted(args.port)} in {args.cgroup}; Ctrl-C to stop", flush=True)
            while True:
                time.sleep(1)
                now = guard.refusals()
                for port, n in now.items():
                    if n != last.get(port, 0):
                        print(f"port {port}: {n - last.get(port, 0)} bind(s) refused "
                              f"({n} in total)", flush=True)
                last = now


TOOL = Tool(
    name="bind-guard",
    summary="cgroup bind4/6: refuse binds to listed ports with EPERM, counting refusals",
    programs=lambda: [guard_bind4, guard_bind6],
    demo=demo,
    add_arguments=add_arguments,
    run=run,
)
