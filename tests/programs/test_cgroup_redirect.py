"""cgroup_redirect: redirected TCP/UDP reach the backend; the application sees the original."""

import socket

import cli_kit
import pytest

from programs import cgroup_redirect
from programs.cgroup_redirect import EchoServers, Redirector, client
from pybpf.dsl import Hash, Struct, cgroup_sock_addr, u32, u64
from pybpf.sandbox import Sandbox
from pybpf.syscall.attach import query_cgroup

pytestmark = pytest.mark.kernel
TCP_SERVICE, UDP_SERVICE = ("10.96.0.10", 80), ("10.96.0.53", 53)


@pytest.fixture
def place():
    with Sandbox() as sb:
        ns, cg = sb.netns(), sb.cgroup()
        with EchoServers(ns) as servers:
            yield ns, cg, servers


def test_tcp_and_udp_redirected_and_original_shown(place):
    ns, cg, servers = place
    with Redirector(cg, {TCP_SERVICE: servers.tcp_addr,
                         UDP_SERVICE: servers.udp_addr}) as redir:
        seen = cg.run(client, ns, TCP_SERVICE, UDP_SERVICE)
        assert seen["tcp_reply"] == b"tcp echo: hello over tcp"      # reached the backend
        assert seen["tcp_peer"] == TCP_SERVICE                        # getpeername4
        assert seen["udp_reply"] == b"udp echo: hello over udp"      # sendmsg4
        assert seen["udp_from"] == UDP_SERVICE                        # recvmsg4
        assert redir.hits() == {TCP_SERVICE: 1, UDP_SERVICE: 1}
    assert [p[0] for p in servers.tcp_peers + servers.udp_peers] == ["127.0.0.1"] * 2
    for hook in ("connect4", "sendmsg4", "getpeername4", "recvmsg4"):
        assert query_cgroup(cg, hook)["prog_ids"] == []


def _plain_connect(ns, addr):
    with ns.entered():
        s = socket.create_connection(addr, timeout=2)
    with s:
        s.sendall(b"direct")
        return s.recv(100), s.getpeername()


def test_other_destinations_untouched(place):
    ns, cg, servers = place
    with Redirector(cg, {TCP_SERVICE: servers.tcp_addr}) as redir:
        reply, peer = cg.run(_plain_connect, ns, servers.tcp_addr)
        assert (reply, peer) == (b"tcp echo: direct", servers.tcp_addr)
        with pytest.raises(OSError):  # no rule: 10.96.0.53 is unreachable from loopback
            cg.run(_plain_connect, ns, ("10.96.0.53", 80))
        assert redir.hits() == {TCP_SERVICE: 0}


def test_sockets_outside_the_cgroup_are_not_redirected(place):
    ns, cg, servers = place
    with Redirector(cg, {TCP_SERVICE: servers.tcp_addr}) as redir:
        with pytest.raises(OSError):
            _plain_connect(ns, TCP_SERVICE)
        assert redir.hits() == {TCP_SERVICE: 0}


def test_demo_runs(capsys):
    cgroup_redirect.demo()
    out = capsys.readouterr().out
    assert "getpeername() = 10.96.0.10:80" in out and "recvfrom() source = 10.96.0.53:53" in out
    assert "getpeername() = [fd00:96::10]:80" in out


class _Counted(Struct):
    addr: u32
    hits: u64


_counted = Hash(u32, _Counted, max_entries=4)


def test_atomic_add_on_a_struct_member():
    @cgroup_sock_addr("connect4")
    def count(p):
        with _counted.lookup(p.const(0, u32)) as v:
            v.hits.atomic_add(1)
        p.return_(1)

    count.build()


def test_cli_run_redirects(place):
    ns, cg, servers = place
    host, port = servers.tcp_addr
    proc = cli_kit.start(["cgroup-redirect", "--cgroup", cg.path,
                          "--rule", f"10.96.0.10:80={host}:{port}"])
    try:
        assert "10.96.0.10:80: 0 redirected" in cli_kit.line(proc)
        assert cg.run(_plain_connect, ns, TCP_SERVICE) == (b"tcp echo: direct", TCP_SERVICE)
        assert "10.96.0.10:80: 1 redirected" in cli_kit.line(proc)
    finally:
        cli_kit.interrupt(proc)
    assert query_cgroup(cg, "connect4")["prog_ids"] == []


def test_ipv6_tcp_and_udp_redirected_and_original_shown():
    tcp_service, udp_service = ("fd00:96::10", 80), ("fd00:96::53", 53)
    with Sandbox() as sb:
        ns, cg = sb.netns(), sb.cgroup()
        with EchoServers(ns, "::1") as servers, Redirector(cg) as redir:
            redir.add(tcp_service, servers.tcp_addr)
            redir.add(udp_service, servers.udp_addr)
            seen = cg.run(client, ns, tcp_service, udp_service)
            hits = redir.hits()
    assert seen["tcp_reply"] == b"tcp echo: hello over tcp"
    assert seen["tcp_peer"][:2] == tcp_service                    # getpeername6
    assert seen["udp_reply"] == b"udp echo: hello over udp"       # sendmsg6
    assert seen["udp_from"][:2] == udp_service                    # recvmsg6
    assert hits == {tcp_service: 1, udp_service: 1}
    assert [p[0] for p in servers.tcp_peers + servers.udp_peers] == ["::1"] * 2


def test_rule_families_must_match(place):
    from programs.tool import ToolError
    ns, cg, servers = place
    with Redirector(cg) as redir, pytest.raises(ToolError, match="same address family"):
        redir.add(("fd00::1", 80), ("127.0.0.1", 80))


def test_rule_addresses_parse():
    from programs.cgroup_redirect import _addr
    from programs.tool import ToolError
    assert _addr("10.96.0.10:80") == ("10.96.0.10", 80)
    assert _addr("[fd00:96::10]:443") == ("fd00:96::10", 443)
    for bad in ("10.96.0.10", "10.96.0.10:0", "nohost:80", "[fd00::1]:70000"):
        with pytest.raises(ToolError):
            _addr(bad)
