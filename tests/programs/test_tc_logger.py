"""The TC logger on real traffic in a sandbox: events arrive with the right fields."""

import socket
import time

import pytest

from programs import tc_logger as T
from pybpf.sandbox import Sandbox

pytestmark = pytest.mark.kernel


@pytest.fixture
def net():
    with Sandbox() as sb:
        left, right = sb.veth_pair()
        with right.ns.entered():
            logger = T.Logger(right.ifname)
        with logger:
            yield left, right, logger


def events(logger, settle: float = 0.05):
    time.sleep(settle)
    return logger.ring.drain()


def find(evs, **want):
    return [e for e in evs if all(getattr(e, k) == v for k, v in want.items())]


def test_udp_both_directions(net):
    left, right, logger = net
    with right.ns.entered():
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with left.ns.entered():
        cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with srv, cli:
        srv.bind((right.ipv4, 0))
        cli.bind((left.ipv4, 0))
        t0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        cli.sendto(b"x" * 100, srv.getsockname())
        _, peer = srv.recvfrom(200)
        srv.sendto(b"y" * 7, peer)
        cli.recv(100)
        t1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        sport, dport = cli.getsockname()[1], srv.getsockname()[1]
    evs = events(logger)
    (inb,) = find(evs, ip_proto=17, direction=T.INGRESS)
    (out,) = find(evs, ip_proto=17, direction=T.EGRESS)
    assert T.addresses(inb) == (left.ipv4, right.ipv4)
    assert (inb.sport, inb.dport, inb.len, inb.eth_proto, inb.ip_version) == (
        sport, dport, 14 + 20 + 8 + 100, 0x0800, 4)
    assert T.addresses(out) == (right.ipv4, left.ipv4)
    assert (out.sport, out.dport, out.len) == (dport, sport, 14 + 20 + 8 + 7)
    assert inb.ifindex == out.ifindex == right.ifindex
    assert t0 <= inb.ts_ns <= out.ts_ns <= t1
    assert T.format_event(inb).endswith(
        f"UDP {left.ipv4}:{sport} > {right.ipv4}:{dport} len 142")


def test_tcp_ipv6_handshake_flags(net):
    left, right, logger = net
    with right.ns.entered():
        lst = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    with lst:
        lst.bind((right.ipv6, 0))
        lst.listen(1)
        lport = lst.getsockname()[1]
        with left.ns.entered():
            c = socket.create_connection(lst.getsockname()[:2], timeout=2)
        with c:
            conn = lst.accept()[0]
            conn.close()
            port = c.getsockname()[1]
    evs = find(events(logger), ip_proto=6)
    syn = find(evs, direction=T.INGRESS, tcp_flags=0x02)
    synack = find(evs, direction=T.EGRESS, tcp_flags=0x12)
    assert len(syn) == 1 and len(synack) == 1
    assert T.addresses(syn[0]) == (left.ipv6, right.ipv6)
    assert (syn[0].sport, syn[0].dport, syn[0].eth_proto, syn[0].ip_version) == (
        port, lport, 0x86DD, 6)
    assert (synack[0].sport, synack[0].dport) == (lport, port)
    assert find(evs, direction=T.EGRESS, tcp_flags=0x11)   # our FIN (with ACK)


def test_icmp_echo_and_reply(net):
    left, right, logger = net
    with left.ns.entered():
        T._icmp_echo(right.ipv4)
    evs = find(events(logger, 0.1), ip_proto=1)
    assert [(e.direction, e.icmp_type, e.icmp_code) for e in evs] == [
        (T.INGRESS, 8, 0), (T.EGRESS, 0, 0)]


def test_ingress_only(net):
    left, right, _ = net
    with right.ns.entered():
        with T.Logger(right.ifname, ("ingress",)) as only_in:
            with left.ns.entered(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                c.sendto(b"z", (right.ipv4, 9))
            evs = events(only_in)
    assert evs and all(e.direction == T.INGRESS for e in evs)


def test_demo_runs(capsys):
    T.demo()
    out = capsys.readouterr().out
    assert " in  UDP 10.199.1.1:" in out and "[S.]" in out and "type 8 code 0" in out
