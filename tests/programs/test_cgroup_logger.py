"""cgroup_logger: connects from a process in a throwaway cgroup produce the right events."""

import os
import socket

import cli_kit
import pytest

from programs import cgroup_logger
from programs.cgroup_logger import Connection, ConnectionLogger
from pybpf.sandbox import Sandbox

pytestmark = pytest.mark.kernel


@pytest.fixture
def place():
    with Sandbox() as sb:
        yield sb.netns(), sb.cgroup()


def _as_nobody_connect(ns, targets):
    """Child: rename itself, drop to uid 65534, connect to each target; return pid and results."""
    with open("/proc/self/comm", "w") as f:
        f.write("pybpf-conn")
    with ns.entered():
        socks = [socket.socket(fam, kind) for fam, kind, _ in targets]
    os.setresuid(65534, 65534, 65534)
    results = []
    for s, (_, _, addr) in zip(socks, targets, strict=True):
        try:
            s.connect(addr)
            results.append(0)
        except OSError as e:
            results.append(e.errno)
        s.close()
    return os.getpid(), results


def _events(logger, n):
    got = []
    while len(got) < n:
        more = logger.poll(1.0)
        if not more:
            break
        got += more
    return got


def test_connects_are_logged_with_who_and_where(place):
    ns, cg = place
    with ns.entered():
        tcp4 = socket.create_server(("127.0.0.1", 0))
        tcp6 = socket.create_server(("::1", 0), family=socket.AF_INET6)
    targets = [
        (socket.AF_INET, socket.SOCK_STREAM, tcp4.getsockname()),
        (socket.AF_INET6, socket.SOCK_STREAM, tcp6.getsockname()[:2]),
        (socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.1", 5353)),
        (socket.AF_INET6, socket.SOCK_DGRAM, ("::1", 5354)),
    ]
    port4, port6 = tcp4.getsockname()[1], tcp6.getsockname()[1]
    with tcp4, tcp6, ConnectionLogger(cg) as logger:
        pid, results = cg.run(_as_nobody_connect, ns, targets)
        events = _events(logger, len(targets))
    assert results == [0, 0, 0, 0]  # the logger allows every connection
    assert events == [
        Connection(pid, 65534, "pybpf-conn", "127.0.0.1", port4, "tcp",
                   socket.AF_INET),
        Connection(pid, 65534, "pybpf-conn", "::1", port6, "tcp",
                   socket.AF_INET6),
        Connection(pid, 65534, "pybpf-conn", "127.0.0.1", 5353, "udp", socket.AF_INET),
        Connection(pid, 65534, "pybpf-conn", "::1", 5354, "udp", socket.AF_INET6),
    ]


def test_refused_connection_is_logged_and_outsiders_are_not(place):
    ns, cg = place
    with ConnectionLogger(cg) as logger:
        # a socket of this process (outside the cgroup) is not seen
        with ns.entered(), socket.socket() as s:
            with pytest.raises(ConnectionRefusedError):
                s.connect(("127.0.0.1", 9))
        assert logger.poll(0.2) == []
        pid, results = cg.run(_as_nobody_connect, ns,
                              [(socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", 9))])
        (event,) = _events(logger, 1)
    assert results[0] != 0
    assert (event.pid, event.address, event.port) == (pid, "127.0.0.1", 9)


def test_detached_on_close(place):
    ns, cg = place
    with ConnectionLogger(cg):
        pass
    from pybpf.syscall.attach import query_cgroup
    assert query_cgroup(cg, "connect4")["prog_ids"] == []
    assert query_cgroup(cg, "connect6")["prog_ids"] == []


def test_demo_runs(capsys):
    cgroup_logger.demo()
    out = capsys.readouterr().out
    assert "4 connect() calls logged, all allowed" in out
    assert "Connection refused" in out


def test_tool_programs_build():
    assert [p.name for p in cgroup_logger.TOOL.programs()] == ["log_connect4", "log_connect6"]
    for prog in cgroup_logger.TOOL.programs():
        assert "get_current_comm" in prog.listing() or "call 16" in prog.listing()


def test_cli_run_logs_until_interrupted(place):
    ns, cg = place
    proc = cli_kit.start(["cgroup-logger", "--cgroup", cg.path])
    try:
        pid, _ = cg.run(_as_nobody_connect, ns,
                        [(socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", 9))])
        line = cli_kit.line(proc)
        assert f"pid {pid}" in line and "tcp -> 127.0.0.1:9" in line
    finally:
        cli_kit.interrupt(proc)
    from pybpf.syscall.attach import query_cgroup
    assert query_cgroup(cg, "connect4")["prog_ids"] == []


def test_ringbuf_helpers_take_a_map_through_p_call():
    """linux/bpf.h types the ring buffer helpers' map argument `void *ringbuf`."""
    from pybpf.dsl import RingBuf, cgroup_sock_addr, u64

    ring = RingBuf(4096, name="ring")

    @cgroup_sock_addr("connect4")
    def prog(p):
        p.call("ringbuf_output", ring, p.stack(u64, 1), 8, 0)
        p.return_(1)

    prog.build()
