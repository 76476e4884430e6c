"""Socket filters (SO_ATTACH_BPF) on UDP and raw AF_PACKET sockets."""

import socket

import kit
import pytest

from pybpf.syscall._uapi import ProgType
from pybpf.syscall.attach.socket import attach_socket_filter
from pybpf.syscall.links import AttachError

pytestmark = pytest.mark.kernel
ETH_P_ALL = 0x0003


def first_byte_filter(counter, wanted: bytes, offset: int):
    """Keep a packet only if the byte at ``offset`` (LD_ABS) is ``wanted``; count runs."""
    code = kit.counting() + f"""
        r0 = *(u8 *)skb[{offset}]       # LD_ABS: the packet byte (ctx in r6)
        if r0 != {wanted[0]} goto drop
        r0 = 0xffff
        exit
    drop:
        r0 = 0
        exit
    """
    return kit.Prog(ProgType.SOCKET_FILTER, kit.asm(code, counts=counter.fd))


def _drain(sock):
    got = []
    try:
        while True:
            got.append(sock.recv(2048))
    except (TimeoutError, BlockingIOError):
        return got


def test_udp_socket_receives_only_what_passes(sandbox, counter):
    ns = sandbox.netns()
    with ns.entered():
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(0.3)
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # on a UDP socket the filter sees the packet from the UDP header: payload at offset 8
    att = attach_socket_filter(first_byte_filter(counter, b"A", 8), rx)
    for msg in (b"A1", b"B2", b"A3", b"C4"):
        tx.sendto(msg, rx.getsockname())
    assert _drain(rx) == [b"A1", b"A3"]
    assert counter.u64() == 4
    att.detach()
    for msg in (b"B5", b"A6"):
        tx.sendto(msg, rx.getsockname())
    assert _drain(rx) == [b"B5", b"A6"]
    rx.close()
    tx.close()


def test_af_packet_socket_on_veth(udp, counter):
    right = udp.right
    with right.ns.entered():
        raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        raw.bind((right.ifname, 0))
        raw.settimeout(0.3)
    drop_all = kit.counter_prog(ProgType.SOCKET_FILTER, counter, 0)
    with attach_socket_filter(drop_all, raw.fileno()):  # a bare fd works too
        _drain(raw)
        udp.exchange(3)
        assert _drain(raw) == []
        assert counter.u64() >= 3
    udp.exchange(3, payload=b"visible")
    frames = _drain(raw)
    assert sum(f.endswith(b"visible") for f in frames) == 3
    raw.close()


def test_update_swaps_filter(sandbox, counter):
    ns = sandbox.netns()
    with ns.entered():
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(0.3)
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with attach_socket_filter(first_byte_filter(counter, b"A", 8), rx) as att:
        att.update(first_byte_filter(counter, b"B", 8))
        for msg in (b"A1", b"B2"):
            tx.sendto(msg, rx.getsockname())
        assert _drain(rx) == [b"B2"]
    rx.close()
    tx.close()


def test_wrong_type_and_non_socket(counter):
    with pytest.raises(AttachError, match="SOCKET_FILTER"):
        attach_socket_filter(kit.counter_prog(ProgType.XDP, counter, 2), socket.socket())
    with pytest.raises(AttachError, match="socket"):
        attach_socket_filter(kit.counter_prog(ProgType.SOCKET_FILTER, counter, 0), "eth0")
