"""2b. Connection redirector: connect()/sendto() to a service address go to a backend instead.

Four cgroup sock_addr programs per address family share two maps per family:

* ``rules`` (``rules6``): service (address, port) -> backend (address, port, hits).
* ``originals`` (``originals6``): socket cookie -> the service the socket asked
  for and the backend it got (an LRU hash, so sockets that are gone age out).

``connect4`` (TCP, connected UDP) and ``sendmsg4`` (unconnected UDP) look the
destination up in ``rules``; on a hit they rewrite ``user_ip4``/``user_port``
to the backend, count the hit and remember the original under the socket's
cookie (``bpf_get_socket_cookie``).  ``getpeername4`` puts the original back
into what getpeername(2) returns, and ``recvmsg4`` into the source address of
datagrams from the backend, so the application never sees the redirection.
``connect6``, ``sendmsg6``, ``getpeername6`` and ``recvmsg6`` do the same for
IPv6 (``user_ip6``, four 32-bit words).  A rule maps within one family.
"""

from __future__ import annotations

import contextlib
import struct
import time

from programs.tool import Attached, Tool, ToolError
from pybpf.dsl import Hash, LruHash, Struct, cgroup_sock_addr, u16, u64
from pybpf.types import Array, be16, be32

TYPE_CHECKING = False  # as typing's: importing typing costs ~5 ms (with re) at start-up
if TYPE_CHECKING:
    import argparse


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


class Service6(Struct):
    """An IPv6 destination applications ask for."""

    addr: Array(be32, 4)
    port: be16
    pad: u16


class Backend6(Struct):
    """Where IPv6 connections to a service really go, and how many went."""

    addr: Array(be32, 4)
    port: be16
    pad: u16
    hits: u64


class Original6(Struct):
    """What one IPv6 socket asked for and what it got instead."""

    addr: Array(be32, 4)
    backend_addr: Array(be32, 4)
    port: be16
    backend_port: be16


rules = Hash(Service, Backend, max_entries=256)
originals = LruHash(u64, Original, max_entries=16384)
rules6 = Hash(Service6, Backend6, max_entries=256)
originals6 = LruHash(u64, Original6, max_entries=16384)


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


def _rewrite6(p) -> None:
    """IPv6: if the destination is a service, rewrite it and remember the original."""
    ctx = p.ctx
    service = p.stack(Service6, port=ctx.user_port)
    for i in range(4):
        service.addr[i] = ctx.user_ip6[i]
    with rules6.lookup(service) as backend:
        saved = p.stack(Original6, port=service.port, backend_port=backend.port)
        for i in range(4):
            saved.addr[i] = service.addr[i]
            saved.backend_addr[i] = backend.addr[i]
            ctx.user_ip6[i] = saved.backend_addr[i]
        ctx.user_port = saved.backend_port
        backend.hits.atomic_add(1)
        originals6.update(p.call("get_socket_cookie", ctx), saved)
    p.return_(1)


def _restore6(p) -> None:
    """IPv6: if this socket was redirected and the address is its backend, show the original."""
    ctx = p.ctx
    with originals6.lookup(p.call("get_socket_cookie", ctx)) as orig:
        same = ctx.user_port == orig.backend_port
        for i in range(4):
            same = same & (ctx.user_ip6[i] == orig.backend_addr[i])
        with p.if_(same):
            for i in range(4):
                ctx.user_ip6[i] = orig.addr[i]
            ctx.user_port = orig.port
    p.return_(1)


@cgroup_sock_addr("connect6")
def redirect_connect6(p):
    """IPv6 connect() to a service goes to its backend."""
    _rewrite6(p)


@cgroup_sock_addr("sendmsg6")
def redirect_sendmsg6(p):
    """IPv6 sendto() of an unconnected UDP socket to a service goes to its backend."""
    _rewrite6(p)


@cgroup_sock_addr("getpeername6")
def restore_getpeername6(p):
    """getpeername() of a redirected IPv6 socket returns the service it connected to."""
    _restore6(p)


@cgroup_sock_addr("recvmsg6")
def restore_recvmsg6(p):
    """Datagrams from an IPv6 backend appear to come from the service."""
    _restore6(p)


PROGRAMS = {"connect4": redirect_connect4, "sendmsg4": redirect_sendmsg4,
            "getpeername4": restore_getpeername4, "recvmsg4": restore_recvmsg4,
            "connect6": redirect_connect6, "sendmsg6": redirect_sendmsg6,
            "getpeername6": restore_getpeername6, "recvmsg6": restore_recvmsg6}


# -- userspace ------------------------------------------------------------------------------

def _addr(text: str) -> tuple[str, int]:
    """ "10.0.0.1:80" or "[fd00::1]:80" -> (address, port)."""
    import ipaddress
    host, _, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    try:
        ipaddress.ip_address(host)
        port_n = int(port)
    except ValueError:
        raise ToolError(f"{text!r} is not IPV4:PORT or [IPV6]:PORT") from None
    if not 0 < port_n < 65536:
        raise ToolError(f"port {port_n} in {text!r} is not in 1..65535")
    return host, port_n


def _words(addr: str) -> tuple[int, ...]:
    """An IPv6 address as the four be32 words of user_ip6."""
    import ipaddress
    return struct.unpack(">4I", ipaddress.IPv6Address(addr).packed)


class Redirector(Attached):
    """The eight programs loaded, sharing their maps per family, attached to ``cgroup``."""

    def __init__(self, cgroup, rules_: dict | None = None):
        from pybpf.syscall.attach import attach_cgroup
        super().__init__()
        try:
            shared: dict = {}
            loaded = {}
            for hook, prog in PROGRAMS.items():
                loaded[hook] = self._stack.enter_context(prog.load(maps=shared))
                for name in ("rules", "originals", "rules6", "originals6"):
                    if name in loaded[hook].maps:
                        shared.setdefault(name, loaded[hook][name])
            self.rules, self.rules6 = shared["rules"], shared["rules6"]
            for service, backend in (rules_ or {}).items():
                self.add(service, backend)
            for hook, prog in loaded.items():
                self._stack.enter_context(attach_cgroup(prog, cgroup, hook))
        except BaseException:
            self._stack.close()
            raise

    def add(self, service: tuple[str, int], backend: tuple[str, int]) -> None:
        """Send connections to ``service`` (address, port) to ``backend`` (same family)."""
        import ipaddress
        s, b = ipaddress.ip_address(service[0]), ipaddress.ip_address(backend[0])
        if s.version != b.version:
            raise ToolError(f"{service[0]} and {backend[0]} are not the same address family")
        if s.version == 4:
            self.rules[Service(addr=int(s), port=service[1])] = Backend(
                addr=int(b), port=backend[1], hits=0)
        else:
            self.rules6[Service6(addr=_words(service[0]), port=service[1])] = Backend6(
                addr=_words(backend[0]), port=backend[1], hits=0)

    def hits(self) -> dict[tuple[str, int], int]:
        """Service -> connections/datagrams redirected so far."""
        import ipaddress
        out = {(str(ipaddress.IPv4Address(k.addr)), k.port): v.hits
               for k, v in self.rules.items()}
        for k, v in self.rules6.items():
            addr = ipaddress.IPv6Address(struct.pack(">4I", *k.addr))
            out[(str(addr), k.port)] = v.hits
        return out


# -- demo and run -------------------------------------------------------------------------

def client(ns, tcp_service, udp_service) -> dict:
    """Child in the cgroup: talk to both services; report what the application sees."""
    import socket
    out = {}
    family = socket.AF_INET6 if ":" in udp_service[0] else socket.AF_INET
    with ns.entered():
        tcp = socket.create_connection(tcp_service, timeout=2)
        udp = socket.socket(family, socket.SOCK_DGRAM)
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
    """A TCP and a UDP echo server on ``host`` in ``ns``, served from a thread."""

    def __init__(self, ns, host: str = "127.0.0.1"):
        import socket
        import threading
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with ns.entered():
            self.tcp = socket.create_server((host, 0), family=family)
            self.udp = socket.socket(family, socket.SOCK_DGRAM)
            self.udp.bind((host, 0))
        self.tcp_addr, self.udp_addr = self.tcp.getsockname()[:2], self.udp.getsockname()[:2]
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
    from pybpf.sandbox import Sandbox
    services = {4: (("10.96.0.10", 80), ("10.96.0.53", 53)),
                6: (("fd00:96::10", 80), ("fd00:96::53", 53))}
    with Sandbox() as sb:
        ns, cg = sb.netns(), sb.cgroup()
        with EchoServers(ns) as v4, EchoServers(ns, "::1") as v6, Redirector(cg) as redir:
            for family, servers in ((4, v4), (6, v6)):
                tcp_service, udp_service = services[family]
                redir.add(tcp_service, servers.tcp_addr)
                redir.add(udp_service, servers.udp_addr)
                for service, backend in ((tcp_service, servers.tcp_addr),
                                         (udp_service, servers.udp_addr)):
                    print(f"rule: {_show(service)} -> {_show(backend)}")
            print(f"a child in cgroup {cg.name} (namespace {ns.name}, loopback only):")
            for tcp_service, udp_service in services.values():
                seen = cg.run(client, ns, tcp_service, udp_service)
                print(f"  tcp connect {_show(tcp_service)}: reply {seen['tcp_reply']!r}, "
                      f"getpeername() = {_show(seen['tcp_peer'])}")
                print(f"  udp sendto {_show(udp_service)}: reply {seen['udp_reply']!r}, "
                      f"recvfrom() source = {_show(seen['udp_from'])}")
            print("the backends saw the client at",
                  ", ".join(sorted({p[0] for s in (v4, v6) for p in s.tcp_peers + s.udp_peers})))
            print("hits:", ", ".join(f"{_show(k)} {n}" for k, n in redir.hits().items()))


def _show(addr) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cgroup", required=True, help="cgroup v2 directory whose tasks "
                        "are redirected")
    parser.add_argument("--rule", action="append", required=True, metavar="SERVICE=BACKEND",
                        help="e.g. 10.96.0.10:80=127.0.0.1:8080 or [fd00::10]:80=[::1]:8080 "
                        "(repeat for more)")


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
                for service, n in now.items():
                    if n != last.get(service):
                        print(f"{_show(service)}: {n} redirected", flush=True)
                last = now
                time.sleep(1)


TOOL = Tool(
    name="cgroup-redirect",
    summary="cgroup connect/sendmsg 4+6: send services to backends; getpeername/recvmsg hide it",
    programs=lambda: list(PROGRAMS.values()),
    demo=demo,
    add_arguments=add_arguments,
    run=run,
)
