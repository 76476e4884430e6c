"""sockmap programs: sk_msg verdicts on sendmsg, sk_skb verdicts on received data."""

import socket
import struct

import kit
import pytest

from pybpf.syscall._uapi import MapType, ProgType
from pybpf.syscall.attach.sockmap import attach_sockmap
from pybpf.syscall.links import AttachError

pytestmark = pytest.mark.kernel
SK_DROP, SK_PASS = 0, 1
MECHANISMS = ["link", "prog_attach"]


@pytest.fixture
def tcp(sandbox):
    ns = sandbox.netns()
    with ns.entered():
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        client = socket.socket()
        client.connect(srv.getsockname())
    server, _ = srv.accept()
    server.settimeout(1)
    client.settimeout(1)
    yield client, server
    for s in (client, server, srv):
        s.close()


def _insert(sockmap, index, sock):
    sockmap.update(struct.pack("<I", index), struct.pack("<I", sock.fileno()))


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_msg_verdict_pass_and_drop(tcp, counter, mechanism):
    client, server = tcp
    sockmap = kit.Map(MapType.SOCKMAP, 4, 4, 2)
    passing = kit.counter_prog(ProgType.SK_MSG, counter, SK_PASS)
    with attach_sockmap(passing, sockmap, "msg_verdict", mechanism=mechanism) as att:
        assert att.mechanism == mechanism
        _insert(sockmap, 0, client)
        client.sendall(b"through the verdict")
        assert server.recv(100) == b"through the verdict"
        assert counter.u64() == 1
    sockmap.close()


def test_msg_verdict_drop_refuses_send(tcp, counter):
    client, _ = tcp
    sockmap = kit.Map(MapType.SOCKMAP, 4, 4, 2)
    dropping = kit.counter_prog(ProgType.SK_MSG, counter, SK_DROP)
    with attach_sockmap(dropping, sockmap, "msg_verdict"):
        _insert(sockmap, 0, client)
        with pytest.raises(PermissionError):
            client.send(b"refused")
    assert counter.u64() == 1
    sockmap.close()


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_skb_verdict_sees_received_data(tcp, counter, mechanism):
    client, server = tcp
    sockmap = kit.Map(MapType.SOCKHASH, 4, 4, 2)
    verdict = kit.counter_prog(ProgType.SK_SKB, counter, SK_PASS)
    with attach_sockmap(verdict, sockmap, "stream_verdict", mechanism=mechanism):
        _insert(sockmap, 1, server)
        client.sendall(b"inbound")
        assert server.recv(100) == b"inbound"
        assert counter.u64() >= 1
    sockmap.close()


def test_errors(counter):
    sockmap = kit.Map(MapType.SOCKMAP, 4, 4, 2)
    with pytest.raises(AttachError, match="unknown sockmap program kind"):
        attach_sockmap(kit.counter_prog(ProgType.SK_MSG, counter, 1), sockmap, "verdict")
    with pytest.raises(AttachError, match="BPF_PROG_TYPE_SK_MSG"):
        attach_sockmap(kit.counter_prog(ProgType.SK_SKB, counter, 1), sockmap, "msg_verdict")
    sockmap.close()
