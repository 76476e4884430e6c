"""The protocol counter: exact per-protocol counts on real traffic and on crafted frames."""

import struct
import time

import pytest

from programs import proto_counter as C
from pybpf.sandbox import Sandbox
from pybpf.syscall.attach import attach_xdp

pytestmark = pytest.mark.kernel

IP4 = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, 17, 0, bytes(4), bytes(4)) + bytes(8)


def ip6(nexthdr: int, rest: bytes) -> bytes:
    return struct.pack("!IHBB", 6 << 28, len(rest), nexthdr, 64) + bytes(32) + rest


@pytest.fixture
def counter():
    with C.proto_counter.load() as prog:
        yield prog


def test_crafted_frames(counter):
    mac = bytes(12)
    frames = [
        mac + b"\x08\x00" + IP4,                                           # udp
        mac + b"\x81\x00\x00\x01\x08\x00" + IP4.replace(b"\x40\x11", b"\x40\x06", 1),  # tcp in vlan
        mac + b"\x86\xdd" + ip6(0, bytes([58, 0]) + bytes(6) + bytes(8)),  # hop-by-hop, icmpv6
        mac + b"\x08\x06" + bytes(28),                                     # arp
        mac + b"\x08\x00" + IP4[:10],                                      # short: passes uncounted
    ]
    for f in frames:
        assert counter.test_run(f).retval == 2
    want = {17: (1, len(frames[0])), 6: (1, len(frames[1])), 58: (1, len(frames[2])),
            C.NON_IP: (1, len(frames[3]))}
    assert C.totals(counter) == want


def test_per_cpu_sums(counter):
    """test_run from threads pinned to two CPUs: each fills its own slot, the sum is exact."""
    import os
    import threading
    cpus = sorted(os.sched_getaffinity(0))[:2]
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    frame = bytes(12) + b"\x08\x00" + IP4

    def on(cpu):
        os.sched_setaffinity(0, {cpu})   # this thread only
        counter.program.test_run(frame, repeat=5)

    for cpu in cpus:
        t = threading.Thread(target=on, args=(cpu,))
        t.start()
        t.join()
    assert C.totals(counter)[17] == (10, 10 * len(frame))
    assert [counter["counts"][17][cpu].packets for cpu in cpus] == [5, 5]


def test_real_traffic_counts_exactly(counter):
    with Sandbox() as sb:
        left, right = sb.veth_pair()
        with right.ns.entered():
            att = attach_xdp(counter, right.ifname)
        with att:
            C.traffic(left, right, udp=7, tcp=2, udp6=4)
            time.sleep(0.05)
            t = C.totals(counter)
    payload4 = sum(range(7))
    payload6 = sum(range(4))
    assert t[17] == (11, 7 * (14 + 20 + 8) + payload4 + 4 * (14 + 40 + 8) + payload6)
    assert t[6][0] >= 2 * 3        # at least SYN, ACK, data per connection
    assert C.NON_IP in t           # ARP


def test_demo_runs(capsys):
    C.demo()
    out = capsys.readouterr().out
    assert "udp                   8" in out
