"""bind_guard: binds to forbidden ports fail with EPERM, others succeed, refusals are counted."""

import errno
import socket

import cli_kit
import pytest

from programs import bind_guard
from programs.bind_guard import BindGuard, try_binds
from pybpf.sandbox import Sandbox
from pybpf.syscall.attach import query_cgroup

pytestmark = pytest.mark.kernel


@pytest.fixture
def place():
    with Sandbox() as sb:
        yield sb.netns(), sb.cgroup()


def test_forbidden_ports_refused_others_allowed(place):
    ns, cg = place
    binds = [(socket.AF_INET, "127.0.0.1", 7001), (socket.AF_INET6, "::1", 7001),
             (socket.AF_INET, "0.0.0.0", 7002), (socket.AF_INET6, "::", 7002),
             (socket.AF_INET, "127.0.0.1", 7003), (socket.AF_INET6, "::1", 7004),
             (socket.AF_INET, "127.0.0.1", 0)]
    with BindGuard(cg, ports=(7001, 7002)) as guard:
        results = cg.run(try_binds, ns, binds)
        assert results == [errno.EPERM] * 4 + [0, 0, 0]
        assert guard.refusals() == {7001: 2, 7002: 2}


def test_ports_change_while_running_and_outsiders_unaffected(place):
    ns, cg = place
    with BindGuard(cg, ports=(7100,)) as guard:
        assert cg.run(try_binds, ns, [(socket.AF_INET, "127.0.0.1", 7100)]) == [errno.EPERM]
        assert try_binds(ns, [(socket.AF_INET, "127.0.0.1", 7100)]) == [0]  # not in the cgroup
        guard.allow(7100)
        guard.forbid(7101)
        assert cg.run(try_binds, ns, [(socket.AF_INET, "127.0.0.1", 7100),
                                      (socket.AF_INET, "127.0.0.1", 7101)]) == [0, errno.EPERM]
        assert guard.refusals() == {7101: 1}
    assert query_cgroup(cg, "bind4")["prog_ids"] == []
    assert query_cgroup(cg, "bind6")["prog_ids"] == []
    assert cg.run(try_binds, ns, [(socket.AF_INET, "127.0.0.1", 7101)]) == [0]


def test_demo_runs(capsys):
    bind_guard.demo()
    out = capsys.readouterr().out
    assert "refused (EPERM)" in out and "refusals per port: 2222: 1, 8080: 2" in out


def test_cli_run_refuses_and_reports(place):
    ns, cg = place
    proc = cli_kit.start(["bind-guard", "--cgroup", cg.path, "--port", "7300"])
    try:
        assert cg.run(try_binds, ns, [(socket.AF_INET, "127.0.0.1", 7300)]) == [errno.EPERM]
        assert "port 7300: 1 bind(s) refused" in cli_kit.line(proc)
    finally:
        cli_kit.interrupt(proc)
    assert query_cgroup(cg, "bind4")["prog_ids"] == []
