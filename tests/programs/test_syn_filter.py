"""The SYN filter on a raw AF_PACKET socket in a sandbox: real connects, only SYNs arrive."""

import socket
import struct
import time

import pytest

from programs import syn_filter as S
from pybpf.sandbox import Sandbox

pytestmark = pytest.mark.kernel


def tcp_flags(frame: bytes) -> tuple[int, int]:
    """(flags, destination port) of an IPv4/IPv6 TCP frame without extension headers."""
    etype = struct.unpack_from("!H", frame, 12)[0]
    l4 = 14 + ((frame[14] & 0xF) * 4 if etype == 0x0800 else 40)
    assert frame[14 + 9 if etype == 0x0800 else 14 + 6] == 6
    return frame[l4 + 13], struct.unpack_from("!H", frame, l4 + 2)[0]


@pytest.fixture
def setup():
    with Sandbox() as sb, S.syn_filter.load() as prog:
        left, right = sb.veth_pair()
        with right.ns.entered():
            raw, att = S.open_socket(right.ifname, prog)
            l4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            l6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with raw, att, l4, l6, udp:
            l4.bind((right.ipv4, 0))
            l6.bind((right.ipv6, 0))
            udp.bind((right.ipv4, 0))
            l4.listen(16)
            l6.listen(16)
            yield left, right, raw, l4, l6, udp


def test_only_syns_arrive(setup):
    left, right, raw, l4, l6, udp = setup
    ports = []
    with left.ns.entered():
        conns = []
        for lst, n in ((l4, 3), (l6, 2)):
            for _ in range(n):
                c = socket.create_connection(lst.getsockname()[:2], timeout=2)
                conns.append(c)
                ports.append(lst.getsockname()[1])
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with u:
        for c in conns:
            c.sendall(b"payload" * 100)
        for _ in range(10):
            u.sendto(b"not tcp", udp.getsockname())
        peers = [lst.accept()[0] for lst in (l4, l4, l4, l6, l6)]
        for peer in peers:
            peer.recv(1000)
            peer.sendall(b"reply")
            peer.close()
        for c in conns:
            c.close()
    time.sleep(0.1)
    frames = S.receive_all(raw)
    assert len(frames) == 5
    for f in frames:
        flags, dport = tcp_flags(f)
        assert flags & 0x12 == 0x02
    assert sorted(tcp_flags(f)[1] for f in frames) == sorted(ports)
    assert sum(1 for f in frames if f[12:14] == b"\x86\xdd") == 2


def test_outgoing_syn_is_seen_syn_ack_is_not(setup):
    """A connect from the right namespace: its SYN leaves through the interface and is kept."""
    left, right, raw, *_ = setup
    with left.ns.entered():
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lst.bind((left.ipv4, 0))
        lst.listen(1)
    port = lst.getsockname()[1]
    with lst:
        with right.ns.entered():
            c = socket.create_connection(lst.getsockname(), timeout=2)
        c.close()
        lst.accept()[0].close()
    time.sleep(0.05)
    frames = S.receive_all(raw)
    assert [tcp_flags(f) for f in frames] == [(0x02, port)]


def test_demo_runs(capsys):
    S.demo()
    out = capsys.readouterr().out
    assert "the socket received 3 frames" in out
    assert out.count("flags=S\n") == 3
