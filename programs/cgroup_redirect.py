"""2b. Connection redirector: connect()/sendto() to a service address go to a backend instead.

Four cgroup sock_addr programs share two maps:

* ``rules``: service (IPv4 address, port) -> backend (address, port, hits).
* ``originals``: socket cookie -> the service the socket asked for and the
  backend it got (an LRU hash, so sockets that are gone age out).

``connect4`` (TCP, connected UDP) and ``sendmsg4`` (unconnected UDP) look the
destination up in ``rules``; on a hit they rewrite ``user_ip4``/``user_port``
to the backend, count the hit and remember the original under the socket's
cookie (``bpf_get_socket_cookie``).  ``getpeername4`` puts the original back
into what getpeername(2) returns, and ``recvmsg4`` into the source address of
datagrams from the backend, so the application never sees the redirection.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import socket
import time

from programs.tool import Tool, ToolError
from pybpf.dsl import Hash, LruHash, Struct, cgroup_sock_addr, u16, u64
from pybpf.sandbox import Sandbox
from pybpf.syscall.attach import attach_cgroup
from pybpf.types import be16, be32


class Service(Struct):
    """A destination applications ask for (network byte order)."""

    addr: be32
    port: be16
    pad: u16


class Backend(Struct):
    """Where connections to a service really go, and how many went."""

    addr: be32
    port: be16
    pad: u16
    hits: u64


class Original(Struct):
    """What one socket asked for and what it got instead."""

    addr: be32
    port: be16
    pad: u16
    backend_addr: be32
    backend_port: be16
    pad2: u16


rules = Hash(Service, Backend, max_entries=256)
originals = LruHash(u64, Original, max_entries=16384)


def _rewrite(p) -> None:
    """If the destination is a service: rewrite it to the backend and remember the original."""
    ctx = p.ctx
    service = p.stack(Service, addr=ctx.user_ip4, port=ctx.user_port)
    with rules.lookup(service) as backend:
        saved = p.stack(Original, addr=service.addr, port=service.port,
                        backend_addr=backend.addr, backend_port=backend.port)
        ctx.user_ip4 = saved.backend_addr
        ctx.user_port = saved.backend_port
        backend.hits.atomic_add(1)
        originals.update(p.call("get_socket_cookie", ctx), saved)
    p.return_(1)


@cgroup_sock_addr("connect4")
def redirect_connect4(p):
    """connect() to a service goes to its backend."""
    _rewrite(p)


@cgroup_sock_addr("sendmsg4")
def redirect_sendmsg4(p):
    """sendto() of an unconnected UDP socket to a service goes to its backend."""
    _rewrite(p)


def _restore(p) -> None:
    """If this socket was redirected and the address is its backend: show the original."""
    ctx = p.ctx
    with originals.lookup(p.call("get_socket_cookie", ctx)) as orig:
        with p.if_((ctx.user_ip4 == orig.backend_addr) & (ctx.user_port == orig.backend_port)):
            ctx.user_ip4 = orig.addr
            ctx.user_port = orig.port
    p.return_(1)


@cgroup_sock_addr("getpeername4")
def restore_getpeername4(p):
    """getpeername() of a redirected socket returns the service it connected to."""
    _restore(p)


@cgroup_sock_addr("recvmsg4")
def restore_recvmsg4(p):
    """Datagrams from the backend appear to come from the service."""
    _restore(p)


# -- userspace ------------------------------------------------------------------------------

def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    try:
        ipaddress.IPv4Address(host)
        port_n = int(port)
    except ValueError:
        raise ToolError(f"{text!r} is not IPV4:PORT") from None
    if not 0 < port_n < 65536:
        raise ToolError(f"port {port_n} in {text!r} is not in 1..65535")
    return host, port_n


def _service(addr: tuple[str, int]) -> Service:
    return Service(addr=int(ipaddress.IPv4Address(addr[0])), port=addr[1])


class Redirector:
    """The four programs loaded, sharing their maps, attached to ``cgroup``."""

    def __init__(self, cgroup, rules_: dict | None = None):
        self._stack = contextlib.ExitStack()
        try:
            first = self._stack.enter_context(redirect_connect4.load())
            self.rules, shared = first["rules"], {"rules": first["rules"],
                                                  "originals": first["originals"]}
            loaded = [first] + [self._stack.enter_context(prog.load(maps=shared)) for prog in
                                (redirect_sendmsg4, restore_getpeername4, restore_recvmsg4)]
            for service, backend in (rules_ or {}).items():
                self.add(service, backend)
            for prog, hook in zip(loaded, ("connect4", "sendmsg4", "getpeername4", "recvmsg4"),
                                  strict=True):
                self._stack.enter_context(attach_cgroup(prog, cgroup, hook))
        except BaseException:
            self._stack.close()
            raise

    def add(self, service: tuple[str, int], backend: tuple[str, int]) -> None:
        """Send connections to ``service`` (address, port) to ``backend`` instead."""
        self.rules[_service(service)] = Backend(addr=int(ipaddress.IPv4Address(backend[0])),
                                                port=backend[1], hits=0)

    def hits(self) -> dict[tuple[str, int], int]:
        """Service -> connections/datagrams redirected so far."""
        return {(str(ipaddress.IPv4Address(k.addr)), k.port): v.hits
                for k, v in self.rules.items()}

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Redirector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- demo and run -------------------------------------------------------------------------

def client(ns, tcp_service, udp_service) -> dict:
    """Child in the cgroup: talk to both services; report what the application sees."""
    out = {}
    with ns.entered():
        tcp = socket.create_connection(tcp_service, timeout=2)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with tcp:
        tcp.sendall(b"hello over tcp")
        out["tcp_reply"] = tcp.recv(100)
        out["tcp_peer"] = tcp.getpeername()
    with udp:
        udp.settimeout(2)
        udp.sendto(b"hello over udp", udp_service)
        out["udp_reply"], out["udp_from"] = udp.recvfrom(100)
    return out


class EchoServers:
    """A TCP and a UDP echo server on 127.0.0.1 in ``ns``, served from a thread."""

    def __init__(self, ns):
        import threading
        with ns.entered():
            self.tcp = socket.create_server(("127.0.0.1", 0))
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
        self.tcp_addr, self.udp_addr = self.tcp.getsockname(), self.udp.getsockname()
        self.tcp_peers: list = []
        self.udp_peers: list = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        import select
        while not self._stop:
            ready, _, _ = select.select([self.tcp, self.udp], [], [], 0.05)
            for s in ready:
                if s is self.udp:
                    data, peer = self.udp.recvfrom(2048)
                    self.udp_peers.append(peer)
                    self.udp.sendto(b"udp echo: " + data, peer)
                else:
                    conn, peer = self.tcp.accept()
                    self.tcp_peers.append(peer)
                    with conn:
                        conn.settimeout(2)
                        conn.sendall(b"tcp echo: " + conn.recv(2048))

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.tcp.close()
        self.udp.close()

    def __enter__(self) -> EchoServers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def demo() -> None:
    tcp_service, udp_service = ("10.96.0.10", 80), ("10.96.0.53", 53)
    with Sandbox() as sb:
        ns, cg = sb.netns(), sb.cgroup()
        with EchoServers(ns) as servers, Redirector(cg) as redir:
            redir.add(tcp_service, servers.tcp_addr)
            redir.add(udp_service, servers.udp_addr)
            for service, backend in ((tcp_service, servers.tcp_addr),
                                     (udp_service, servers.udp_addr)):
                print(f"rule: {service[0]}:{service[1]} -> {backend[0]}:{backend[1]}")
            seen = cg.run(client, ns, tcp_service, udp_service)
            print(f"a child in cgroup {cg.name} (namespace {ns.name}, loopback only):")
            print(f"  tcp connect {tcp_service[0]}:{tcp_service[1]}: reply {seen['tcp_reply']!r}"
                  f", getpeername() = {seen['tcp_peer'][0]}:{seen['tcp_peer'][1]}")
            print(f"  udp sendto {udp_service[0]}:{udp_service[1]}: reply {seen['udp_reply']!r}"
                  f", recvfrom() source = {seen['udp_from'][0]}:{seen['udp_from'][1]}")
            print("the backends saw the client at", servers.tcp_peers[0][0], "(tcp) and",
                  servers.udp_peers[0][0], "(udp)")
            print("hits:", ", ".join(f"{a}:{p} {n}" for (a, p), n in redir.hits().items()))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cgroup", required=True, help="cgroup v2 directory whose tasks "
                        "are redirected")
    parser.add_argument("--rule", action="append", required=True, metavar="SERVICE=BACKEND",
                        help="e.g. 10.96.0.10:80=127.0.0.1:8080 (repeat for more)")


def run(args: argparse.Namespace) -> None:
    pairs = {}
    for rule in args.rule:
        service, sep, backend = rule.partition("=")
        if not sep:
            raise ToolError(f"rule {rule!r} is not SERVICE=BACKEND")
        pairs[_addr(service)] = _addr(backend)
    with Redirector(args.cgroup, pairs) as redir:
        last: dict = {}
        with contextlib.suppress(KeyboardInterrupt):
            # ready (and Ctrl-C safe): tests and scripts wait for this line
            print(f"redirecting in {args.cgroup}; Ctrl-C to stop", flush=True)
            while True:
                now = redir.hits()
                for (a, p), n in now.items():
                    if n != last.get((a, p)):
                        print(f"{a}:{p}: {n} redirected", flush=True)
                last = now
                time.sleep(1)


TOOL = Tool(
    name="cgroup-redirect",
    summary="cgroup connect4/sendmsg4: send services to backends; getpeername4/recvmsg4 hide it",
    programs=lambda: [redirect_connect4, redirect_sendmsg4, restore_getpeername4,
                      restore_recvmsg4],
    demo=demo,
    add_arguments=add_arguments,
    run=run,
)
