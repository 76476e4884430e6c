"""Chapter 1: the connect() journey, seen from three tracepoints.

``syscalls:sys_enter_connect`` copies the destination sockaddr from user
memory and parks it per thread; ``syscalls:sys_exit_connect`` pairs it with
the syscall's result and reports (pid, comm, destination, result);
``sock:inet_sock_set_state`` reports each TCP state transition. Everything
goes through one ring buffer as ``Event`` records.
"""

from __future__ import annotations

import errno
import os
import time

from programs.tool import Tool
from pybpf.dsl import (
    AF_INET,
    AF_INET6,
    IPPROTO_TCP,
    Hash,
    RingBuf,
    Struct,
    be16,
    be32,
    s32,
    s64,
    tracepoint,
    u16,
    u32,
    u64,
)
from pybpf.types import Array, Bytes  # the layout Array (pybpf.dsl's is the map)

CONNECT, STATE = 1, 2
TCP_STATES = ["?", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
              "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV"]


class SockaddrIn6(Struct):
    """struct sockaddr_in6; a sockaddr_in has its address where flowinfo is."""

    family: u16
    port: be16
    flowinfo: be32
    addr: Array(be32, 4)
    scope_id: u32


class Event(Struct):
    kind: u32
    pid: u32
    tid: u32
    family: u16
    sport: u16
    dport: u16
    pad: u16
    ret: s64
    oldstate: s32
    newstate: s32
    saddr: Array(be32, 4)
    daddr: Array(be32, 4)
    comm: Bytes(16)


pending = Hash(u64, SockaddrIn6, max_entries=4096)
events = RingBuf(256 * 1024)


@tracepoint("syscalls", "sys_enter_connect")
def connect_enter(p):
    """Remember where each thread is connecting to (AF_INET and AF_INET6 only)."""
    sa = p.stack(SockaddrIn6)
    p.call("probe_read_user", sa, 16, p.ctx.uservaddr)
    with p.if_(sa.family == AF_INET6):
        p.call("probe_read_user", sa, SockaddrIn6.size, p.ctx.uservaddr)
    with p.elif_(sa.family != AF_INET):
        p.return_(0)
    pending.update(p.call("get_current_pid_tgid"), sa)
    p.return_(0)


@tracepoint("syscalls", "sys_exit_connect")
def connect_exit(p):
    """Report the connect with its result, and forget it."""
    tid = p.call("get_current_pid_tgid")
    key = p.stack(u64, tid)
    with pending.lookup(key) as sa:
        with p.reserve(events, Event) as e:
            e.kind = CONNECT
            e.pid = (tid >> 32).cast(u32)
            e.tid = tid.cast(u32)
            e.family = sa.family
            e.dport = sa.port.host()
            e.ret = p.ctx.ret
            with p.if_(sa.family == AF_INET):
                e.daddr[0] = sa.flowinfo
            with p.else_():
                for i in range(4):
                    e.daddr[i] = sa.addr[i]
            p.call("get_current_comm", e.comm, 16)
        pending.delete(key)
    p.return_(0)


@tracepoint("sock", "inet_sock_set_state")
def state_change(p):
    """Report TCP state transitions with the connection's addresses."""
    with p.if_(p.ctx.protocol != IPPROTO_TCP):
        p.return_(0)
    with p.reserve(events, Event) as e:
        tid = p.call("get_current_pid_tgid")
        e.kind = STATE
        e.pid = (tid >> 32).cast(u32)
        e.tid = tid.cast(u32)
        e.family = p.ctx.family
        e.sport = p.ctx.sport
        e.dport = p.ctx.dport
        e.oldstate = p.ctx.oldstate
        e.newstate = p.ctx.newstate
        with p.if_(p.ctx.family == AF_INET):
            e.saddr[0] = p.ctx.saddr
            e.daddr[0] = p.ctx.daddr
        with p.else_():
            for i in range(4):
                e.saddr[i] = p.ctx.saddr_v6[i]
                e.daddr[i] = p.ctx.daddr_v6[i]
        p.call("get_current_comm", e.comm, 16)
    p.return_(0)


PROGRAMS = [connect_enter, connect_exit, state_change]


def _addr(family: int, words) -> str:
    import socket
    raw = b"".join(w.to_bytes(4, "big") for w in words)
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    return socket.inet_ntop(socket.AF_INET6, raw)


def describe(e: Event) -> str:
    """One line per event, as the demo prints it."""
    comm = e.comm.rstrip(b"\0").decode(errors="replace")
    if e.kind == CONNECT:
        result = "ok" if e.ret == 0 else errno.errorcode.get(-e.ret, str(e.ret))
        return (f"connect   pid={e.pid} comm={comm} -> {_addr(e.family, e.daddr)}:{e.dport}"
                f"  result={result}")
    old, new = (TCP_STATES[s] if 0 <= s < len(TCP_STATES) else str(s)
                for s in (e.oldstate, e.newstate))
    return (f"tcp state {_addr(e.family, e.saddr)}:{e.sport} -> {_addr(e.family, e.daddr)}:"
            f"{e.dport}  {old} -> {new}")


class Journey:
    """The three programs loaded, attached, and their ring buffer open."""

    def __init__(self):
        from pybpf.syscall.attach import attach_tracepoint
        from pybpf.syscall.events import RingBuffer

        self._stack = []
        try:
            first = connect_enter.load()
            self._stack.append(first)
            shared = {"pending": first["pending"]}
            exit_prog = connect_exit.load(maps=shared)
            self._stack.append(exit_prog)
            state_prog = state_change.load(maps={"events": exit_prog["events"]})
            self._stack.append(state_prog)
            for prog, (cat, name) in ((first, ("syscalls", "sys_enter_connect")),
                                      (exit_prog, ("syscalls", "sys_exit_connect")),
                                      (state_prog, ("sock", "inet_sock_set_state"))):
                self._stack.append(attach_tracepoint(prog.program, cat, name))
            self.ring = RingBuffer(exit_prog["events"], decode=Event)
            self._stack.append(self.ring)
        except BaseException:
            self.close()
            raise

    def events(self, timeout: float = 0.2) -> list[Event]:
        return self.ring.poll(timeout)

    def close(self) -> None:
        while self._stack:
            self._stack.pop().close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def demo() -> None:
    """Connect to a listening and to a closed port on loopback; print the journey."""
    import socket
    me = os.getpid()
    with Journey() as j, socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.socket() as c:
            c.connect(("127.0.0.1", port))
            peer, _ = server.accept()
            peer.close()
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
        closed.close()
        with socket.socket() as c:
            c.connect_ex(("127.0.0.1", closed_port))
        time.sleep(0.05)
        seen = [e for e in j.events() if e.pid == me or e.kind == STATE and
                port in (e.sport, e.dport, closed_port) or closed_port in (e.sport, e.dport)]
        for e in seen:
            print("  " + describe(e))


def add_arguments(parser) -> None:
    parser.add_argument("--pid", type=int, help="only this process")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")


def run(args) -> None:
    deadline = time.monotonic() + args.duration if args.duration else None
    with Journey() as j:
        print("tracing connect() and TCP state changes; Ctrl-C to stop")
        try:
            while deadline is None or time.monotonic() < deadline:
                for e in j.events(0.5):
                    if args.pid is None or e.pid == args.pid:
                        print(describe(e), flush=True)
        except KeyboardInterrupt:
            pass


TOOL = Tool("connect-journey", "connect() seen from sys_enter/exit_connect and "
            "inet_sock_set_state tracepoints", lambda: PROGRAMS, demo, add_arguments, run)
