"""cgroup hooks through bpf_link and through BPF_PROG_ATTACH, with sockets of a sandbox cgroup."""

import contextlib
import errno
import os
import socket
import subprocess
import tempfile
import time

import kit
import pytest

from pybpf.dsl._ctx import BpfSockAddr
from pybpf.errors import BPFError
from pybpf.syscall._uapi import AttachType, ProgType
from pybpf.syscall.attach.cgroup import CGROUP_HOOKS, attach_cgroup, query_cgroup
from pybpf.syscall.links import AttachError

pytestmark = pytest.mark.kernel
MECHANISMS = ["link", "prog_attach"]
USER_PORT = BpfSockAddr.field("user_port").offset  # generated from linux/bpf.h


@pytest.fixture
def place(sandbox):
    """A namespace (loopback only) and a cgroup; ``inside()`` enters both."""
    ns, cg = sandbox.netns(), sandbox.cgroup()

    @contextlib.contextmanager
    def inside():
        with ns.entered(), cg.entered():
            yield

    class Place:
        pass

    p = Place()
    p.ns, p.cg, p.inside = ns, cg, inside
    return p


def _prog(hook, counter, ret=1, prologue=""):
    attach_type, prog_type, _ = CGROUP_HOOKS[hook]
    expected = attach_type if prog_type in (ProgType.CGROUP_SOCK_ADDR,
                                           ProgType.CGROUP_SOCK) else None
    return kit.counter_prog(prog_type, counter, ret, attach_type=expected, prologue=prologue)


def _rewrite_port(port):
    return f"*(u32 *)(r1 + {USER_PORT}) = {socket.htons(port)}  # ctx->user_port\n"


def _listener(place, family=socket.AF_INET, host="127.0.0.1"):
    with place.ns.entered():
        srv = socket.socket(family, socket.SOCK_STREAM)
        srv.bind((host, 0))
        srv.listen()
    return srv


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("family,host,hook", [(socket.AF_INET, "127.0.0.1", "connect4"),
                                              (socket.AF_INET6, "::1", "connect6")])
def test_connect_is_rewritten(place, counter, mechanism, family, host, hook):
    srv = _listener(place, family, host)
    real_port = srv.getsockname()[1]
    prog = _prog(hook, counter, prologue=_rewrite_port(real_port))
    att = attach_cgroup(prog, place.cg, hook, mechanism=mechanism)
    assert query_cgroup(place.cg, hook)["prog_ids"] == [att.info().prog_id]
    with place.inside(), socket.socket(family, socket.SOCK_STREAM) as c:
        c.connect((host, 1))  # nothing listens on port 1: only the rewrite makes this work
        assert c.getpeername()[1] == real_port
    assert counter.u64() == 1
    att.detach()
    assert query_cgroup(place.cg, hook)["prog_ids"] == []
    with place.inside(), socket.socket(family, socket.SOCK_STREAM) as c:
        with pytest.raises(ConnectionRefusedError):
            c.connect((host, 1))
    srv.close()


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_sendmsg4_is_rewritten(place, counter, mechanism):
    with place.ns.entered():
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        srv.bind(("127.0.0.1", 0))
        srv.settimeout(1)
    prog = _prog("sendmsg4", counter, prologue=_rewrite_port(srv.getsockname()[1]))
    with attach_cgroup(prog, place.cg, "sendmsg4", mechanism=mechanism):
        with place.inside(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.sendto(b"redirected", ("127.0.0.1", 9))
        assert srv.recv(100) == b"redirected"
    assert counter.u64() == 1
    srv.close()


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_egress_drop(place, counter, mechanism):
    with place.ns.entered():
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        srv.bind(("127.0.0.1", 0))
        srv.settimeout(0.3)
    att = attach_cgroup(_prog("egress", counter, ret=0), place.cg, "egress", mechanism=mechanism)
    with place.inside(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        with pytest.raises(PermissionError):
            c.sendto(b"dropped", srv.getsockname())
        att.detach()
        c.sendto(b"passes", srv.getsockname())
    assert srv.recv(100) == b"passes"
    assert counter.u64() == 1
    srv.close()


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_ingress_counts(place, counter, mechanism):
    with place.inside():
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        srv.bind(("127.0.0.1", 0))
        srv.settimeout(1)
    with attach_cgroup(_prog("ingress", counter), place.cg, "ingress", mechanism=mechanism):
        with place.ns.entered(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            for _ in range(3):
                c.sendto(b"in", srv.getsockname())
        assert [srv.recv(10) for _ in range(3)] == [b"in"] * 3
    assert counter.u64() >= 3
    srv.close()


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_sock_create_can_deny(place, counter, mechanism):
    with attach_cgroup(_prog("sock_create", counter, ret=0), place.cg, "sock_create",
                       mechanism=mechanism):
        with place.inside(), pytest.raises(PermissionError):
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with place.inside():
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()
    assert counter.u64() == 1


def _tcp_roundtrip(place, srv):
    with place.inside(), socket.socket() as c:
        c.connect(srv.getsockname())
        conn, _ = srv.accept()
        c.getsockname()
        c.getpeername()
        conn.close()


def _udp_roundtrip(place):
    with place.ns.entered():
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        srv.bind(("127.0.0.1", 0))
    with place.inside():
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.bind(("127.0.0.1", 0))
    srv.sendto(b"r", c.getsockname())
    c.settimeout(1)
    c.recvfrom(10)
    c.close()
    srv.close()


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("hook", ["sock_ops", "bind4", "getsockname4", "getpeername4",
                                  "post_bind4", "sock_release", "recvmsg4"])
def test_hook_runs_on_real_sockets(place, counter, mechanism, hook):
    srv = _listener(place)
    with attach_cgroup(_prog(hook, counter), place.cg, hook, mechanism=mechanism):
        if hook in ("bind4", "post_bind4", "recvmsg4"):
            _udp_roundtrip(place)
        else:
            _tcp_roundtrip(place, srv)
        seen = counter.u64()
    assert seen >= 1, f"{hook} did not run"
    _tcp_roundtrip(place, srv)
    assert counter.u64() == seen  # detached: no more runs
    srv.close()


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_connect_unix(place, counter, mechanism):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "s")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen()
        with attach_cgroup(_prog("connect_unix", counter), place.cg, "connect_unix",
                           mechanism=mechanism):
            with place.inside(), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                c.connect(path)
        srv.close()
    assert counter.u64() == 1


def test_multi_runs_every_program(place):
    maps = [kit.counter_map(), kit.counter_map()]
    srv = _listener(place)
    atts = [attach_cgroup(_prog("connect4", m), place.cg, "connect4", mechanism=mech)
            for m, mech in zip(maps, MECHANISMS, strict=True)]
    assert len(query_cgroup(place.cg, "connect4")["prog_ids"]) == 2
    _tcp_roundtrip(place, srv)
    assert [m.u64() for m in maps] == [1, 1]
    for a in atts:
        a.detach()
    srv.close()


def test_prog_attach_replace_and_update(place):
    m1, m2 = kit.counter_map(), kit.counter_map()
    srv = _listener(place)
    p1, p2 = _prog("connect4", m1), _prog("connect4", m2)
    att = attach_cgroup(p1, place.cg, "connect4", mechanism="prog_attach")
    att.update(p2)
    _tcp_roundtrip(place, srv)
    assert (m1.u64(), m2.u64()) == (0, 1)
    assert query_cgroup(place.cg, "connect4")["prog_ids"] == [att.info().prog_id]
    att.detach()
    srv.close()


def test_link_update(place):
    m1, m2 = kit.counter_map(), kit.counter_map()
    srv = _listener(place)
    with attach_cgroup(_prog("connect4", m1), place.cg, "connect4") as att:
        att.update(_prog("connect4", m2))
        _tcp_roundtrip(place, srv)
    assert (m1.u64(), m2.u64()) == (0, 1)
    srv.close()


def test_errors_name_the_problem(place, counter):
    p = _prog("connect4", counter)
    with pytest.raises(AttachError, match="no cgroup directory"):
        attach_cgroup(p, "/sys/fs/cgroup/unified/no-such-group-pybpf", "connect4")
    with pytest.raises(AttachError, match="unknown cgroup hook"):
        attach_cgroup(p, place.cg, "connect5")
    with pytest.raises(AttachError, match="BPF_PROG_TYPE_CGROUP_SKB"):
        attach_cgroup(p, place.cg, "egress")
    with pytest.raises(BPFError) as info:
        attach_cgroup(p, place.cg, "bind4")  # loaded for connect4
    assert info.value.errno == errno.EINVAL
    assert "expected_attach_type=BPF_CGROUP_INET4_BIND" in info.value.__notes__[0]
    assert AttachType.CGROUP_INET4_BIND == CGROUP_HOOKS["bind4"][0]


@pytest.fixture
def bpffs():
    """/sys/fs/bpf, mounted for the test when it is not already (and unmounted after)."""
    with open("/proc/self/mounts") as f:
        mounted = any(line.split()[1] == "/sys/fs/bpf" and line.split()[2] == "bpf"
                      for line in f)
    if not mounted:
        subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], check=True)
    try:
        yield "/sys/fs/bpf"
    finally:
        if not mounted:
            subprocess.run(["umount", "/sys/fs/bpf"], check=True)


def test_pinned_link_outlives_its_object(place, counter, bpffs):
    att = attach_cgroup(_prog("connect4", counter), place.cg, "connect4", mechanism="link")
    path = os.path.join(bpffs, f"pybpf-test-{os.getpid()}")
    att.pin(path)
    try:
        att.close()  # the pin keeps the program on the hook
        assert len(query_cgroup(place.cg, "connect4")["prog_ids"]) == 1
    finally:
        os.unlink(path)
    # the kernel drops the last reference of an unpinned link from a workqueue
    # (bpf_link_put defers the release): the detach follows the unlink shortly
    deadline = time.monotonic() + 2
    while query_cgroup(place.cg, "connect4")["prog_ids"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert query_cgroup(place.cg, "connect4")["prog_ids"] == []


def test_prog_attach_cannot_be_pinned(place, counter):
    with attach_cgroup(_prog("connect4", counter), place.cg, "connect4",
                       mechanism="prog_attach") as att:
        with pytest.raises(AttachError, match="only bpf_link"):
            att.pin("/sys/fs/bpf/x")
