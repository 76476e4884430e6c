"""redirect: real packets between namespaces cross only because a program moves them."""

import contextlib
import time

import cli_kit
import pytest

from programs import redirect
from programs.redirect import MODES, Hosts, Redirector, exchange, reachable
from pybpf.sandbox import Sandbox
from pybpf.syscall.attach import attach_xdp

pytestmark = pytest.mark.kernel


@pytest.fixture
def sandbox():
    with Sandbox() as sb:
        yield sb


@pytest.mark.parametrize("mode", ["redirect", "redirect_peer", "redirect_neigh", "devmap"])
def test_interfaces_joined_only_by_the_program(sandbox, mode):
    hosts = Hosts(sandbox, mode)
    assert not reachable(hosts)             # M neither bridges nor forwards
    with Redirector(hosts, mode) as r:
        seen = exchange(hosts)
        assert seen["tcp_ok"] and seen["udp"] == b"datagram"
        assert seen["peer"][0] == hosts.a.ipv4   # nothing rewritten on the way
        assert r.count() >= 10                   # handshake, data, acks, ARP/neighbour
    assert not reachable(hosts)             # detached: the path is gone again


def test_redirect_neigh_fills_in_mac_addresses(sandbox):
    """A and B are on different subnets: M's neighbour table learnt B through the helper."""
    hosts = Hosts(sandbox, "redirect_neigh")
    with Redirector(hosts, "redirect_neigh"):
        exchange(hosts)
        neigh = hosts.ns_m.check_output(["ip", "-4", "neigh", "show", "dev", hosts.mb.ifname])
    assert hosts.b.ipv4 in neigh


@pytest.mark.parametrize("cpu", [0, 1])
def test_cpumap_steers_frames_to_the_chosen_cpu(sandbox, cpu):
    import os
    if cpu >= os.cpu_count():
        pytest.skip("needs a second CPU")
    hosts = Hosts(sandbox, "cpumap")
    with Redirector(hosts, "cpumap", cpu=cpu) as r:
        seen = exchange(hosts)
        assert seen["tcp_ok"] and seen["udp"] == b"datagram"
        # the target CPU's kthread runs on_cpu a moment after the frame was queued
        deadline = time.monotonic() + 2
        while sum(r.cpus().values()) != r.count() and time.monotonic() < deadline:
            time.sleep(0.01)
        steered = r.count()
        assert steered >= 10
        assert r.cpus() == {cpu: steered}   # every frame ran on the target CPU


def test_devmap_entries_are_resolved_inside_the_middle_namespace(sandbox):
    """A DEVMAP names ifindexes of the writer's namespace; Redirector writes inside M."""
    hosts = Hosts(sandbox, "devmap")
    with Redirector(hosts, "devmap") as r:
        exchange(hosts)
        assert r.count() > 0


def test_demo_runs(capsys):
    redirect.demo()
    out = capsys.readouterr().out
    assert out.count("tcp ok, udp ok") == len(MODES)
    assert "FAILED" not in out


@pytest.mark.parametrize("mode", ["redirect", "devmap"])
def test_cli_run_joins_two_interfaces(sandbox, mode):
    hosts = Hosts(sandbox, mode)
    stack = contextlib.ExitStack()
    if mode == "devmap":  # the hosts' veth ends take redirected frames only with XDP on them
        for end in (hosts.a, hosts.b):
            prog = stack.enter_context(redirect.xdp_pass.load())
            with end.ns.entered():
                stack.enter_context(attach_xdp(prog, end.ifname))
    proc = cli_kit.start(["redirect", "--mode", mode, "--iface", hosts.ma.ifname,
                          hosts.mb.ifname], ns=hosts.ns_m)
    try:
        assert exchange(hosts)["tcp_ok"]
    finally:
        cli_kit.interrupt(proc)
        stack.close()
    assert not reachable(hosts)


def test_xdp_devmap_and_cpumap_decorators_load_with_their_attach_types():
    from pybpf.dsl import XDP_PASS
    from pybpf.dsl.program import xdp_cpumap, xdp_devmap

    @xdp_devmap
    def on_egress(p):
        with p.if_(p.ctx.egress_ifindex == 0):   # only DEVMAP programs may read it
            p.return_(XDP_PASS)
        p.return_(XDP_PASS)

    @xdp_cpumap
    def on_target(p):
        p.return_(XDP_PASS)

    assert (on_egress.kind.attach_type, on_target.kind.attach_type) == ("xdp_devmap",
                                                                       "xdp_cpumap")
    with on_egress.load(), on_target.load():
        pass


def test_cli_run_cpumap_steers_one_interface_to_a_cpu(sandbox):
    import os
    cpu = os.cpu_count() - 1
    hosts = Hosts(sandbox, "cpumap")
    proc = cli_kit.start(["redirect", "--mode", "cpumap", "--iface", hosts.b.ifname,
                          "--cpu", str(cpu)], ns=hosts.ns_b)
    try:
        assert "0 frames redirected" in cli_kit.line(proc)
        assert exchange(hosts)["tcp_ok"]
        deadline, last = time.monotonic() + 5, ""
        while f"processed on CPU(s) {{{cpu}: " not in last and time.monotonic() < deadline:
            last = cli_kit.line(proc, 1.5) or last
    finally:
        cli_kit.interrupt(proc)
    assert f"processed on CPU(s) {{{cpu}: " in last


@pytest.mark.parametrize("argv, message", [
    (["--mode", "cpumap", "--iface", "lo", "--cpu", "4096"], "--cpu 4096 is not a CPU"),
    (["--mode", "cpumap", "--iface", "lo", "lo"], "takes 1 interface(s) in this mode, got 2"),
    (["--mode", "redirect", "--iface", "lo"], "takes 2 interface(s) in this mode, got 1"),
    (["--mode", "devmap", "--iface", "lo", "lo"], "two different interfaces"),
    (["--mode", "redirect", "--iface", "nosuch0", "nosuch1"], "no interfaces nosuch0 and nosuch1"),
])
def test_cli_run_refuses_bad_interfaces_and_cpus(argv, message):
    assert message in cli_kit.refused(["redirect", *argv])
