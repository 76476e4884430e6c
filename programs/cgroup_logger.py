"""2a. Connection logger: every connect() of a cgroup's tasks, reported through a ring buffer.

Two cgroup sock_addr programs, on ``connect4`` and ``connect6``, run when a
task of the cgroup calls connect(2) on an IPv4 or IPv6 socket (TCP, UDP,
also the implicit connect of TCP fast open).  They record who connects
(pid, uid, comm) and where (address, port, protocol) and return 1: every
connection is allowed, the logger only watches.

The programs see the destination the application asked for (``user_ip4``,
``user_ip6``, ``user_port``, in network byte order) before the kernel
routes it, so even a connection refused by the peer is logged.
"""

from __future__ import annotations

import contextlib

from programs.tool import Attached, Tool, ToolError
from pybpf._record import record
from pybpf.dsl import (
    AF_INET,
    AF_INET6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    RingBuf,
    Struct,
    cgroup_sock_addr,
    u8,
    u16,
    u32,
)
from pybpf.types import Array, Bytes, be16, be32

TYPE_CHECKING = False  # as typing's: importing typing costs ~5 ms (with re) at start-up
if TYPE_CHECKING:
    import argparse


class ConnectEvent(Struct):
    """One connect(): who and where (addresses and port in network byte order)."""

    pid: u32
    uid: u32
    comm: Bytes(16)
    daddr: Array(be32, 4)   # IPv4: daddr[0], the rest zero
    dport: be16
    family: u16             # AF_INET or AF_INET6
    protocol: u8            # IPPROTO_TCP or IPPROTO_UDP


events = RingBuf(64 * 1024)


def _record(p, e, family: int) -> None:
    """The fields both programs fill the same way."""
    e.pid = p.call("get_current_pid_tgid") >> 32      # the tgid: what userspace calls a pid
    e.uid = p.call("get_current_uid_gid").cast(u32)   # low half: uid
    p.call("get_current_comm", e.comm, 16)
    e.dport = p.ctx.user_port
    e.family = family
    e.protocol = p.ctx.protocol


@cgroup_sock_addr("connect4")
def log_connect4(p):
    """Report an IPv4 connect() and let it proceed."""
    with p.reserve(events, ConnectEvent) as e:
        _record(p, e, AF_INET)
        e.daddr[0] = p.ctx.user_ip4
        for i in (1, 2, 3):
            e.daddr[i] = 0
    p.return_(1)


@cgroup_sock_addr("connect6")
def log_connect6(p):
    """Report an IPv6 connect() and let it proceed."""
    with p.reserve(events, ConnectEvent) as e:
        _record(p, e, AF_INET6)
        for i in range(4):
            e.daddr[i] = p.ctx.user_ip6[i]
    p.return_(1)


# -- userspace ------------------------------------------------------------------------------

_PROTOCOLS = {IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp"}


@record(slots=False)
class Connection:
    """A decoded ConnectEvent."""

    pid: int
    uid: int
    comm: str
    address: str
    port: int
    protocol: str
    family: int

    @classmethod
    def decode(cls, raw: bytes) -> Connection:
        import ipaddress
        import socket
        ev = ConnectEvent.unpack(raw)
        words = b"".join(w.to_bytes(4, "big") for w in ev.daddr)
        if ev.family == socket.AF_INET:
            address = str(ipaddress.IPv4Address(words[:4]))
        else:
            address = str(ipaddress.IPv6Address(words))
        return cls(ev.pid, ev.uid, ev.comm.rstrip(b"\0").decode(errors="replace"), address,
                   ev.dport, _PROTOCOLS.get(ev.protocol, str(ev.protocol)), ev.family)

    def __str__(self) -> str:
        where = f"[{self.address}]:{self.port}" if ":" in self.address else \
            f"{self.address}:{self.port}"
        return (f"pid {self.pid:<7} uid {self.uid:<5} {self.comm:<16} "
                f"{self.protocol} -> {where}")


class ConnectionLogger(Attached):
    """Both programs loaded and attached to ``cgroup``; ``poll()`` returns Connections."""

    def __init__(self, cgroup):
        from pybpf.syscall.attach import attach_cgroup
        from pybpf.syscall.events import RingBuffer
        super().__init__()
        try:
            v4 = self._stack.enter_context(log_connect4.load())
            v6 = self._stack.enter_context(log_connect6.load(maps={"events": v4["events"]}))
            self._stack.enter_context(attach_cgroup(v4, cgroup, "connect4"))
            self._stack.enter_context(attach_cgroup(v6, cgroup, "connect6"))
            self.ring = self._stack.enter_context(RingBuffer(v4["events"]))
        except BaseException:
            self._stack.close()
            raise

    def poll(self, timeout: float | None = 0.0) -> list[Connection]:
        return [Connection.decode(r) for r in self.ring.poll(timeout)]


# -- demo and run -------------------------------------------------------------------------

def _connect_all(ns, targets) -> list[str]:
    """In a child inside the cgroup: enter the namespace and connect to each target."""
    import socket
    results = []
    with ns.entered():
        for family, kind, addr in targets:
            with socket.socket(family, kind) as s:
                try:
                    s.connect(addr)
                    results.append("ok")
                except OSError as e:
                    results.append(e.strerror or str(e))
    return results


def demo() -> None:
    import socket

    from pybpf.sandbox import Sandbox
    with Sandbox() as sb:
        ns, cg = sb.netns(), sb.cgroup()
        with ns.entered():
            tcp4 = socket.create_server(("127.0.0.1", 0))
            tcp6 = socket.create_server(("::1", 0), family=socket.AF_INET6)
        with tcp4, tcp6, ConnectionLogger(cg) as logger:
            targets = [
                (socket.AF_INET, socket.SOCK_STREAM, tcp4.getsockname()),
                (socket.AF_INET6, socket.SOCK_STREAM, tcp6.getsockname()[:2]),
                (socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.1", 53)),
                (socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", 9)),  # nobody listens
            ]
            print(f"a child process in cgroup {cg.name} connects {len(targets)} times "
                  f"(namespace {ns.name}):")
            results = cg.run(_connect_all, ns, targets)
            seen = logger.poll(1.0)
            while len(seen) < len(targets):
                more = logger.poll(1.0)
                if not more:
                    break
                seen += more
            for conn, result in zip(seen, results, strict=False):
                print(f"  {conn}   ({result})")
            print(f"{len(seen)} connect() calls logged, all allowed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cgroup", required=True,
                        help="cgroup v2 directory whose tasks' connects are logged")


def run(args: argparse.Namespace) -> None:
    try:
        logger = ConnectionLogger(args.cgroup)
    except OSError as e:
        raise ToolError(f"{args.cgroup}: {e.strerror}") from None
    with logger:
        with contextlib.suppress(KeyboardInterrupt):
            # ready (and Ctrl-C safe): tests and scripts wait for this line
            print(f"logging connect() in {args.cgroup}; Ctrl-C to stop", flush=True)
            while True:
                for conn in logger.poll(None):
                    print(conn, flush=True)


TOOL = Tool(
    name="cgroup-logger",
    summary="cgroup connect4/6: log every connect() (pid, uid, comm, destination) through a ring buffer",
    programs=lambda: [log_connect4, log_connect6],
    demo=demo,
    add_arguments=add_arguments,
    run=run,
)
