"""sockmap_redirect: a client/server pair exchanges data with the TCP stack bypassed."""

import socket

import cli_kit
import pytest

from programs import sockmap_redirect
from programs.sockmap_redirect import (
    SocketRedirector,
    connected_pair,
    exchange,
    tcp_bytes,
)
from pybpf.sandbox import Sandbox
from pybpf.syscall.attach import query_cgroup

pytestmark = pytest.mark.kernel


@pytest.fixture
def place():
    with Sandbox() as sb:
        yield sb.netns(), sb.cgroup()


def test_pair_exchanges_data_through_the_sockhash(place):
    ns, cg = place
    with SocketRedirector(cg) as redir:
        listener, client, server = connected_pair(ns, cg)
        with listener, client, server:
            before = tcp_bytes(client)[1] + tcp_bytes(server)[1]
            assert exchange(client, server, rounds=20, size=3000)
            after = tcp_bytes(client)[1] + tcp_bytes(server)[1]
        counts = redir.counts()
    assert counts == {"sockets added": 2, "messages redirected": 40,
                      "bytes redirected": 40 * 3000, "messages passed": 0}
    assert after - before == 0  # no payload went through TCP's receive path


def test_without_the_programs_tcp_carries_the_bytes(place):
    ns, cg = place
    listener, client, server = connected_pair(ns, cg)
    with listener, client, server:
        assert exchange(client, server, rounds=3, size=100)
        assert tcp_bytes(server)[1] == 300 and tcp_bytes(client)[1] == 300


def test_peer_outside_the_cgroup_takes_the_normal_path(place):
    ns, cg = place
    with SocketRedirector(cg) as redir:
        with ns.entered():
            listener = socket.create_server(("127.0.0.1", 0))      # not in the cgroup
            with cg.entered():
                client = socket.create_connection(listener.getsockname(), timeout=2)
            server, _ = listener.accept()
        with listener, client, server:
            server.settimeout(2)
            assert exchange(client, server, rounds=5, size=100)
            assert tcp_bytes(server)[1] == 500
        counts = redir.counts()
    assert counts["sockets added"] == 1 and counts["messages redirected"] == 0
    assert counts["messages passed"] == 5


def test_detached_on_close(place):
    ns, cg = place
    with SocketRedirector(cg):
        pass
    assert query_cgroup(cg, "sock_ops")["prog_ids"] == []


def test_demo_runs(capsys):
    sockmap_redirect.demo()
    out = capsys.readouterr().out
    assert "data intact" in out and "messages redirected  100" in out
    assert "TCP stack carried 0 of 100000" in out


def test_cli_run_short_cuts(place):
    ns, cg = place
    proc = cli_kit.start(["sockmap-redirect", "--cgroup", cg.path])
    try:
        assert "sockets added 0" in cli_kit.line(proc)
        listener, client, server = connected_pair(ns, cg)
        with listener, client, server:
            assert exchange(client, server, rounds=4, size=10)
        assert "sockets added 2, messages redirected 8, bytes redirected 80" in cli_kit.line(proc)
    finally:
        cli_kit.interrupt(proc)
    assert query_cgroup(cg, "sock_ops")["prog_ids"] == []


def test_pair_owned_by_a_child_in_the_cgroup(place):
    ns, cg = place
    with SocketRedirector(cg) as redir:
        ok, carried = cg.run(sockmap_redirect.talk_in_cgroup, ns, 10, 500)
        assert ok and carried == 0
        assert redir.counts()["messages redirected"] == 20
