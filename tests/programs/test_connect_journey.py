"""Chapter 1 on real sockets: connect events with results, and TCP state transitions."""

import errno
import os
import socket
import time

import pytest

from programs.connect_journey import CONNECT, STATE, Journey, describe

pytestmark = pytest.mark.kernel


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _collect(j: Journey, want, timeout: float = 2.0) -> list:
    out, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline and not want(out):
        out += j.events(0.1)
    return out


def test_connect_result_and_states_on_loopback():
    me = os.getpid()
    with Journey() as j, socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        closed = _closed_port()
        with socket.socket() as c:
            c.connect(("127.0.0.1", port))
            client_port = c.getsockname()[1]
        with socket.socket() as c:
            assert c.connect_ex(("127.0.0.1", closed)) == errno.ECONNREFUSED

        def done(evs):
            return sum(1 for e in evs if e.kind == CONNECT and e.pid == me) >= 2

        events = _collect(j, done)
    connects = [e for e in events if e.kind == CONNECT and e.pid == me]
    assert [(e.dport, e.ret) for e in connects] == [(port, 0), (closed, -errno.ECONNREFUSED)]
    ok = connects[0]
    assert ok.family == socket.AF_INET and ok.daddr[0] == 0x7F000001
    assert ok.comm.rstrip(b"\0") == open(f"/proc/{me}/comm", "rb").read().strip()[:15]
    assert "result=ok" in describe(ok) and "ECONNREFUSED" in describe(connects[1])
    states = [(e.oldstate, e.newstate) for e in events
              if e.kind == STATE and e.sport == client_port and e.dport == port]
    assert states[:2] == [(2, 1), (1, 4)]  # SYN_SENT -> ESTABLISHED -> FIN_WAIT1
    # CLOSE -> SYN_SENT happens before the source port is chosen (sport 0).
    assert any(e.kind == STATE and (e.oldstate, e.newstate) == (7, 2) and e.dport == port
               for e in events)


def test_ipv6_destination_is_reported():
    me = os.getpid()
    with Journey() as j, socket.socket(socket.AF_INET6) as server:
        server.bind(("::1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.socket(socket.AF_INET6) as c:
            c.connect(("::1", port))
        events = _collect(j, lambda evs: any(e.kind == CONNECT and e.pid == me for e in evs))
    (e,) = [e for e in events if e.kind == CONNECT and e.pid == me]
    assert e.family == socket.AF_INET6 and e.dport == port and list(e.daddr) == [0, 0, 0, 1]
    assert "::1" in describe(e)
