"""The XDP blocker on real traffic across a sandboxed veth pair, and on crafted frames."""

import select
import socket
import struct

import pytest

from programs import xdp_blocker as B
from programs.tool import ToolError
from pybpf.sandbox import Sandbox
from pybpf.syscall.attach import attach_xdp

pytestmark = pytest.mark.kernel

BLOCKED4, BLOCKED6 = "10.199.1.3", "fd00:199:1::8003"


class Net:
    """A server on the right end of a veth pair, clients on the left (two addresses each)."""

    def __init__(self, sb):
        self.left, self.right = sb.veth_pair()
        self.left.ns.add_address(self.left.ifname, BLOCKED4 + "/24")
        self.left.ns.add_address(self.left.ifname, BLOCKED6 + "/64")
        self.servers = {}
        with self.right.ns.entered():
            for fam, addr in ((socket.AF_INET, self.right.ipv4), (socket.AF_INET6, self.right.ipv6)):
                s = socket.socket(fam, socket.SOCK_DGRAM)
                s.bind((addr, 0))
                self.servers[fam] = s
            self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.listener.bind((self.right.ipv4, 0))
            self.listener.listen(8)

    def send(self, src: str, n: int) -> int:
        """n datagrams from ``src`` to the server of its family; how many arrived."""
        fam = socket.AF_INET6 if ":" in src else socket.AF_INET
        dst = self.right.ipv6 if fam == socket.AF_INET6 else self.right.ipv4
        server = self.servers[fam]
        with self.left.ns.entered():
            c = socket.socket(fam, socket.SOCK_DGRAM)
        with c:
            c.bind((src, 0))
            for i in range(n):
                c.sendto(b"%d" % i, (dst, server.getsockname()[1]))
        got = 0
        while select.select([server], [], [], 0.2)[0]:
            server.recv(100)
            got += 1
        return got

    def connect(self, src: str) -> bool:
        with self.left.ns.entered():
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with c:
            c.bind((src, 0))
            c.settimeout(0.5)
            try:
                c.connect((self.right.ipv4, self.listener.getsockname()[1]))
            except (TimeoutError, OSError):
                return False
        self.listener.accept()[0].close()
        return True

    def close(self):
        for s in (*self.servers.values(), self.listener):
            s.close()


@pytest.fixture
def net():
    with Sandbox() as sb:
        n = Net(sb)
        # neighbours resolved from the allowed addresses, so that nothing but the
        # datagrams under test comes from a blocked source later
        assert n.send(n.left.ipv4, 1) == 1 and n.send(n.left.ipv6, 1) == 1
        yield n
        n.close()


@pytest.fixture
def blocker(net):
    with B.xdp_blocker.load() as prog:
        with net.right.ns.entered():
            att = attach_xdp(prog, net.right.ifname)
        with att:
            yield prog


def test_blocked_sources_cannot_reach_others_can_counts_exact(net, blocker):
    B.block(blocker, "10.199.1.3/32")
    B.block(blocker, "fd00:199:1::8000/113")
    assert net.send(net.left.ipv4, 7) == 7
    assert net.send(net.left.ipv6, 7) == 7
    assert net.send(BLOCKED4, 13) == 0
    assert net.send(BLOCKED6, 9) == 0
    assert B.counts(blocker) == {"10.199.1.3/32": 13, "fd00:199:1::8000/113": 9}


def test_tcp_connect_from_blocked_source_fails(net, blocker):
    assert net.connect(BLOCKED4)
    B.block(blocker, BLOCKED4 + "/32")
    assert not net.connect(BLOCKED4)
    assert net.connect(net.left.ipv4)
    assert B.counts(blocker)[BLOCKED4 + "/32"] >= 1   # the SYN and its retransmissions


def test_longest_prefix_counts(net, blocker):
    B.block(blocker, "10.199.0.0/16")
    B.block(blocker, "10.199.1.3/32")
    assert net.send(BLOCKED4, 4) == 0
    assert net.send(net.left.ipv4, 3) == 0
    assert B.counts(blocker) == {"10.199.0.0/16": 3, "10.199.1.3/32": 4}


def test_prefixes_added_and_removed_while_running(net, blocker):
    assert net.send(BLOCKED4, 5) == 5
    B.block(blocker, "10.199.1.0/29")
    assert net.send(BLOCKED4, 5) == 0
    B.unblock(blocker, "10.199.1.0/29")
    assert net.send(BLOCKED4, 5) == 5
    B.block(blocker, "10.199.1.0/29")
    assert B.counts(blocker) == {"10.199.1.0/29": 0}   # a new entry starts from zero
    with pytest.raises(ToolError):
        B.unblock(blocker, "10.9.9.0/24")


def test_frames_in_vlan_tags_and_non_ip_frames():
    """test_run: the parser library finds the source inside 802.1Q; ARP and short frames pass."""
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, 17, 0,
                     bytes([192, 0, 2, 9]), bytes([10, 0, 0, 1])) + bytes(8)
    mac = bytes(12)
    with B.xdp_blocker.load() as prog:
        B.block(prog, "192.0.2.0/24")
        assert prog.test_run(mac + b"\x08\x00" + ip).retval == 1
        assert prog.test_run(mac + b"\x81\x00\x00\x05\x08\x00" + ip).retval == 1
        assert prog.test_run(mac + b"\x08\x06" + bytes(28)).retval == 2
        for cut in range(14, 14 + 20):
            assert prog.test_run((mac + b"\x08\x00" + ip)[:cut]).retval == 2
        assert B.counts(prog) == {"192.0.2.0/24": 2}


def test_bad_prefix_is_a_value_error():
    with pytest.raises(ValueError):
        B._key("10.0.0.300/8")


def test_demo_runs(capsys):
    B.demo()
    out = capsys.readouterr().out
    assert "10 datagrams from 10.199.1.3         ->  0 arrived" in out
    assert "10.199.1.3/32             10 dropped" in out
