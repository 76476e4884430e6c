"""The sandbox on the real kernel: namespaces, veth pairs, cgroups, and cleanup after signals."""

import errno
import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from pybpf.errors import BPFError
from pybpf.sandbox import Cgroup, Netns, Sandbox, cleanup, current_netns_inode
from pybpf.syscall.objects import fd_by_id

pytestmark = pytest.mark.kernel
HERE = os.path.dirname(__file__)


def _netns_names():
    return set(os.listdir("/var/run/netns")) if os.path.isdir("/var/run/netns") else set()


def test_netns_is_created_and_removed():
    with Netns() as ns:
        assert ns.name in _netns_names()
        assert ns.interfaces() == ["lo"]
    assert ns.name not in _netns_names()


def test_entered_switches_and_returns():
    home = current_netns_inode()
    with Netns() as ns:
        with ns.entered():
            assert current_netns_inode() != home
        assert current_netns_inode() == home


def test_veth_pair_carries_udp_between_namespaces():
    with Sandbox() as sb:
        a, b = sb.veth_pair()
        assert a.ifname in a.ns.interfaces() and b.ifname in b.ns.interfaces()
        with b.ns.entered():
            server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            server.bind((b.ipv4, 0))
            server.settimeout(2)
        port = server.getsockname()[1]

        def send():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(b"hello", (b.ipv4, port))
            return "sent"

        assert a.ns.run(send) == "sent"
        data, (src, _) = server.recvfrom(100)
        assert (data, src) == (b"hello", a.ipv4)
        server.close()


def test_ipv6_over_veth():
    with Sandbox() as sb:
        a, b = sb.veth_pair()
        with b.ns.entered():
            server = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            server.bind((b.ipv6, 0))
            server.settimeout(2)
        with a.ns.entered():
            client = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        client.sendto(b"six", (b.ipv6, server.getsockname()[1]))
        assert server.recv(10) == b"six"
        client.close()
        server.close()


def test_run_returns_results_and_raises_exceptions():
    with Netns() as ns:
        assert ns.run(lambda x: x * 2, 21) == 42
        with pytest.raises(ZeroDivisionError) as info:
            ns.run(lambda: 1 / 0)
        assert any("child process" in n for n in info.value.__notes__)


def test_command_runs_inside():
    with Sandbox() as sb:
        a, _ = sb.veth_pair()
        out = a.ns.check_output(["ip", "-o", "addr", "show", "dev", a.ifname])
        assert a.ipv4 in out


def test_route_is_added():
    with Sandbox() as sb:
        a, b = sb.veth_pair()
        a.ns.add_route("10.250.0.0/16", gateway=b.ipv4)
        assert "10.250.0.0/16" in a.ns.check_output(["ip", "route"])


def test_cgroup_runs_process_inside_and_is_removed():
    with Cgroup() as cg:
        line = cg.run(lambda: open("/proc/self/cgroup").read().splitlines()[-1])
        assert line.endswith(cg.name)
        p = cg.popen(["sleep", "30"])
        assert p.pid in cg.pids()
        with cg.entered():
            assert os.getpid() in cg.pids()
        assert os.getpid() not in cg.pids()
    assert not os.path.exists(cg.path)
    p.wait(5)


def test_cleanup_registry_runs_newest_first():
    order = []
    t1 = cleanup.register("one", lambda: order.append(1))
    t2 = cleanup.register("two", lambda: order.append(2))
    assert cleanup.pending()[:2] == ["two", "one"]
    cleanup.unregister(t1)
    cleanup.unregister(t2)
    assert order == []


def _veths():
    return subprocess.run(["ip", "-o", "link", "show", "type", "veth"], capture_output=True,
                          text=True).stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_killed_demo_leaves_nothing_behind(sig):
    """A demo killed by SIGTERM/SIGINT removes its namespaces, cgroup and programs."""
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "demo_victim.py")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        made = json.loads(proc.stdout.readline())
        assert set(made["netns"]) <= _netns_names()
        assert os.path.isdir(made["cgroup"])
        for prog_id in made["prog_ids"]:  # alive while the demo runs
            os.close(fd_by_id("prog", prog_id))
        proc.send_signal(sig)
        proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert not set(made["netns"]) & _netns_names()
    assert not os.path.exists(made["cgroup"])
    assert not any(v in _veths() for v in made["veth"])
    for prog_id in made["prog_ids"]:  # no attachment kept any program alive
        with pytest.raises(BPFError) as info:
            os.close(fd_by_id("prog", prog_id))
        assert info.value.errno == errno.ENOENT
