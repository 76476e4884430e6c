"""Golden listings: the disassembly of representative programs, kept in tests/dsl/golden/.

A change in code generation shows up here as a readable diff of the listing
(interleaved with the Python lines of tests/dsl/golden/golden_programs.py). After a
deliberate change, regenerate with ``PYBPF_REGEN_GOLDEN=1 pytest tests/dsl/test_golden.py``
and review the diff. The same Python must also produce the same bytes twice,
and every golden program must pass the verifier and run.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
import struct
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"
_spec = importlib.util.spec_from_file_location("golden_programs", GOLDEN / "golden_programs.py")
programs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(programs)

REGEN = os.environ.get("PYBPF_REGEN_GOLDEN") == "1"


def stable_listing(prog) -> str:
    """``listing()`` with source paths cut to their basename (``[golden_programs.py:40:5]``)."""
    return re.sub(r"\[([^\]\s]*/)?([^/\]\s]+:\d+:\d+)\]", r"[\2]", prog.listing()) + "\n"


@pytest.mark.parametrize("name", sorted(programs.PROGRAMS))
def test_listing_matches_golden(name):
    text = stable_listing(programs.PROGRAMS[name])
    path = GOLDEN / f"{name}.txt"
    if REGEN:
        path.write_text(text)
    assert path.exists(), f"no golden listing {path}; run with PYBPF_REGEN_GOLDEN=1"
    assert text == path.read_text()


@pytest.mark.parametrize("name", sorted(programs.PROGRAMS))
def test_same_python_same_bytes(name):
    prog = programs.PROGRAMS[name]
    first, second = prog.build(), prog.build()
    fds = {m: 100 + i for i, m in enumerate(sorted(first.maps))}
    assert first.program.encode(fds) == second.program.encode(fds)
    assert stable_listing(prog) == stable_listing(prog)


def _ipv4(proto: int, payload: bytes, src="10.1.2.3", dst="10.9.9.9", options=b"") -> bytes:
    ihl = (20 + len(options)) // 4
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(options) + len(payload), 1, 0,
                         64, proto, 0, ipaddress.IPv4Address(src).packed,
                         ipaddress.IPv4Address(dst).packed)
    return bytes(12) + b"\x08\x00" + header + options + payload


def _tcp_syn(options: bytes) -> bytes:
    doff = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", 1234, 80, 1, 0, doff << 4, 0x02, 65535, 0, 0) + options


@pytest.mark.kernel
def test_ip_blocker_runs():
    with programs.ip_blocker.load() as prog:
        prog["blocked"][programs.BlockKey(24, int(ipaddress.IPv4Address("10.1.2.0")))] = 0
        assert prog.test_run(_ipv4(17, bytes(8))).retval == 1          # XDP_DROP
        assert prog.test_run(_ipv4(17, bytes(8), src="10.1.3.3")).retval == 2
        assert prog.test_run(bytes(14)).retval == 2


@pytest.mark.kernel
@pytest.mark.parametrize("ip_opts,tcp_opts,mss", [
    (b"", b"\x02\x04\x05\xb4", 1460),
    (b"\x01\x01\x01\x00", b"\x01\x01\x04\x02\x02\x04\x05\x78", 1400),   # NOPs, SACK-ok, MSS
    (b"", b"\x01\x00\x02\x04\x05\xb4\x00\x00", 0),                       # EOL before MSS
    (b"", b"", 0),
])
def test_tcp_mss_runs(ip_opts, tcp_opts, mss):
    with programs.tcp_mss.load() as prog:
        prog["mss_seen"][0] = 7
        assert prog.test_run(_ipv4(6, _tcp_syn(tcp_opts), options=ip_opts)).retval == 2
        assert prog["mss_seen"][0] == mss


@pytest.mark.kernel
def test_flow_events_runs():
    from pybpf.syscall.events import RingBuffer
    with programs.flow_events.load() as prog:
        frame = _ipv4(17, bytes(300))
        assert prog.test_run(frame).retval == 2
        with RingBuffer(prog["events"]) as ring:
            records = [programs.Event.unpack(r) for r in ring.poll(0)]
    assert len(records) == 1
    e = records[0]
    assert (e.saddr, e.proto, e.ttl) == (int(ipaddress.IPv4Address("10.1.2.3")), 17, 64)
    assert e.length == 20 + 300 + 1 * 0x10000
