"""7c. Socket-level redirection: local TCP peers exchange data without the TCP/IP stack.

A sock_ops program on a cgroup watches its TCP sockets; when one becomes
established (actively or passively) and the peer is a local IPv4 address,
it is put in a sockhash under its 4-tuple.  An sk_msg program attached to
that sockhash then runs on every sendmsg() of those sockets: it builds the
*peer's* 4-tuple (local and remote swapped), and ``bpf_msg_redirect_hash``
with BPF_F_INGRESS queues the data straight onto the peer socket's receive
queue.  No segment is built, routed, or acknowledged: the counters here
count the messages redirected, and TCP_INFO on the sockets shows that TCP
itself carried (almost) no bytes.  A message whose peer is not in the map
(a remote peer, a socket outside the cgroup) takes the normal path.
"""

from __future__ import annotations

import contextlib
import struct
import time

from programs.tool import Attached, Tool
from pybpf.dsl import AF_INET, SK_PASS, Array, SockHash, Struct, sk_msg, sock_ops, u32, u64
from pybpf.types import be32

TYPE_CHECKING = False  # as typing's: importing typing costs ~5 ms (with re) at start-up
if TYPE_CHECKING:
    import argparse
    import socket

# enum in linux/bpf.h
BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB = 4, 5
BPF_NOEXIST, BPF_F_INGRESS = 1, 1
# counter indices
ADDED, REDIRECTED, REDIRECTED_BYTES, PASSED = range(4)
COUNTERS = ("sockets added", "messages redirected", "bytes redirected", "messages passed")


class FourTuple(Struct):
    """A socket's key: its own address and port, then its peer's (ports in host order)."""

    local_ip4: be32
    remote_ip4: be32
    local_port: u32
    remote_port: u32


sockets = SockHash(FourTuple, max_entries=1024)
counters = Array(u32, u64, max_entries=4)


def _count(p, index: int, n=1) -> None:
    with counters.lookup(p.const(index, u32)) as c:
        c.atomic_add(n)


@sock_ops
def track_established(p):
    """Put established TCP sockets with a loopback peer in the sockhash."""
    ctx = p.ctx
    op = ctx.op
    with p.if_((op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
               | (op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)):
        with p.if_((ctx.family == AF_INET) & ((ctx.remote_ip4 & 0xFF000000) == 0x7F000000)):
            # remote_port holds the be16 port in its upper half (sock_ops_convert_ctx_access):
            # byte-swapping the u32 gives the host-order port
            key = p.stack(FourTuple, local_ip4=ctx.local_ip4, remote_ip4=ctx.remote_ip4,
                          local_port=ctx.local_port, remote_port=ctx.remote_port.host())
            with p.if_(p.call("sock_hash_update", ctx, sockets, key, BPF_NOEXIST) == 0):
                _count(p, ADDED)
    p.return_(1)


@sk_msg
def redirect_to_peer(p):
    """Send each message straight to the receive queue of the peer socket."""
    ctx = p.ctx
    size = ctx.size
    peer = p.stack(FourTuple, local_ip4=ctx.remote_ip4, remote_ip4=ctx.local_ip4,
                   local_port=ctx.remote_port.host(), remote_port=ctx.local_port)
    verdict = p.call("msg_redirect_hash", ctx, sockets, peer, BPF_F_INGRESS)
    with p.if_(verdict == SK_PASS):
        _count(p, REDIRECTED)
        _count(p, REDIRECTED_BYTES, size)
        p.return_(SK_PASS)
    _count(p, PASSED)        # peer not in the map: the normal TCP path
    p.return_(SK_PASS)


# -- userspace ------------------------------------------------------------------------------

class SocketRedirector(Attached):
    """Both programs loaded; sk_msg attached to the sockhash, sock_ops to ``cgroup``."""

    def __init__(self, cgroup):
        from pybpf.syscall.attach import attach_cgroup, attach_sockmap
        super().__init__()
        try:
            ops = self._stack.enter_context(track_established.load())
            msg = self._stack.enter_context(redirect_to_peer.load(
                maps={"sockets": ops["sockets"], "counters": ops["counters"]}))
            self.counters = ops["counters"]
            # the verdict program first: sockets added later get it
            self._stack.enter_context(attach_sockmap(msg, ops["sockets"], "msg_verdict"))
            self._stack.enter_context(attach_cgroup(ops, cgroup, "sock_ops"))
        except BaseException:
            self._stack.close()
            raise

    def counts(self) -> dict[str, int]:
        return {name: self.counters[i] for i, name in enumerate(COUNTERS)}


# struct tcp_info (linux/tcp.h): tcpi_bytes_acked at 120, tcpi_bytes_received at 128
_TCP_INFO_LEN = 136


def tcp_bytes(sock: socket.socket) -> tuple[int, int]:
    """(bytes acked, bytes received) by the TCP stack on ``sock`` (TCP_INFO)."""
    import socket
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LEN)
    return struct.unpack_from("<QQ", raw, 120)


def connected_pair(ns, cg):
    """A listener and a connected client/server pair, created inside ``ns`` and ``cg``."""
    import socket
    with ns.entered(), cg.entered():
        listener = socket.create_server(("127.0.0.1", 0))
        client = socket.create_connection(listener.getsockname(), timeout=2)
        server, _ = listener.accept()
    server.settimeout(2)
    return listener, client, server


def exchange(client, server, rounds: int, size: int) -> bool:
    """Ping-pong ``rounds`` messages of ``size`` bytes; True if every byte came back right."""
    ok = True
    for i in range(rounds):
        msg = bytes([i % 256]) * size
        client.sendall(msg)
        got = _recv_exact(server, size)
        server.sendall(got[::-1])
        ok &= _recv_exact(client, size) == msg[::-1] and got == msg
    return ok


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def talk_in_cgroup(ns, rounds: int, size: int) -> tuple[bool, int]:
    """Run by a child in the cgroup: a pair in ``ns`` ping-pongs; (data intact?, TCP bytes)."""
    import socket
    with ns.entered():
        listener = socket.create_server(("127.0.0.1", 0))
        client = socket.create_connection(listener.getsockname(), timeout=2)
        server, _ = listener.accept()
    server.settimeout(2)
    with listener, client, server:
        before = tcp_bytes(client)[1] + tcp_bytes(server)[1]
        ok = exchange(client, server, rounds, size)
        return ok, tcp_bytes(client)[1] + tcp_bytes(server)[1] - before


def demo() -> None:
    from pybpf.sandbox import Sandbox
    with Sandbox() as sb:
        ns, cg = sb.netns(), sb.cgroup()
        with SocketRedirector(cg) as redir:
            # a child process in the cgroup owns the sockets (this process never joins it)
            ok, carried = cg.run(talk_in_cgroup, ns, 50, 1000)
            counts = redir.counts()
        print(f"client and server on 127.0.0.1 in cgroup {cg.name}: 50 round trips of "
              f"1000 bytes each way, data {'intact' if ok else 'CORRUPTED'}")
        for name, n in counts.items():
            print(f"  {name:<20} {n}")
        print(f"  TCP stack carried {carried} of {100 * 1000} payload bytes "
              "(TCP_INFO bytes_received)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cgroup", required=True,
                        help="cgroup v2 directory whose local TCP connections are short-cut")


def run(args: argparse.Namespace) -> None:
    with SocketRedirector(args.cgroup) as redir:
        last = None
        with contextlib.suppress(KeyboardInterrupt):
            # ready (and Ctrl-C safe): tests and scripts wait for this line
            print(f"short-cutting local TCP in {args.cgroup}; Ctrl-C to stop", flush=True)
            while True:
                now = redir.counts()
                if now != last:
                    print(", ".join(f"{k} {v}" for k, v in now.items()), flush=True)
                last = now
                time.sleep(1)


TOOL = Tool(
    name="sockmap-redirect",
    summary="sock_ops + sk_msg: local TCP peers exchange data through a sockhash, bypassing TCP",
    programs=lambda: [track_established, redirect_to_peer],
    demo=demo,
    add_arguments=add_arguments,
    run=run,
)
