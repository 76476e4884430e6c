"""Tracepoints (link and PERF_EVENT_IOC_SET_BPF), raw tracepoints, tp_btf and fentry."""

import errno
import os
import socket
import subprocess

import kit
import pytest

from pybpf.btf.kernel import vmlinux
from pybpf.errors import BPFError, PyBPFError
from pybpf.syscall._uapi import AttachType, ProgType
from pybpf.syscall.attach.tracing import (
    attach_raw_tracepoint,
    attach_tracepoint,
    attach_tracing,
    kernel_func_id,
)
from pybpf.syscall.links import AttachError

pytestmark = pytest.mark.kernel


def _getpids(n):
    for _ in range(n):
        os.getpid()


@pytest.mark.parametrize("mechanism", ["link", "perf_ioctl"])
def test_tracepoint_counts_syscalls(counter, mechanism):
    prog = kit.counter_prog(ProgType.TRACEPOINT, counter, 0)
    att = attach_tracepoint(prog, "syscalls", "sys_enter_getpid", mechanism=mechanism)
    assert att.mechanism == mechanism
    before = counter.u64()
    _getpids(50)
    assert counter.u64() - before >= 50
    att.detach()
    before = counter.u64()
    _getpids(50)
    assert counter.u64() == before


def test_tracepoint_link_info(counter):
    prog = kit.counter_prog(ProgType.TRACEPOINT, counter, 0)
    with attach_tracepoint(prog, "syscalls", "sys_enter_getpid") as att:
        info = att.info()
    assert info.link_type.name == "PERF_EVENT"


def test_missing_tracepoint_is_named(counter):
    prog = kit.counter_prog(ProgType.TRACEPOINT, counter, 0)
    with pytest.raises(PyBPFError, match="no tracepoint syscalls:sys_enter_nothing"):
        attach_tracepoint(prog, "syscalls", "sys_enter_nothing")


def test_raw_tracepoint(counter):
    prog = kit.counter_prog(ProgType.RAW_TRACEPOINT, counter, 0)
    with attach_raw_tracepoint(prog, "sys_enter") as att:
        before = counter.u64()
        _getpids(20)
        assert counter.u64() - before >= 20
        assert att.info().link_type.name == "RAW_TRACEPOINT"
    before = counter.u64()
    _getpids(20)
    assert counter.u64() == before


def test_raw_tracepoint_unknown_name(counter):
    prog = kit.counter_prog(ProgType.RAW_TRACEPOINT, counter, 0)
    with pytest.raises(BPFError, match="no raw tracepoint 'no_such_tp'"):
        attach_raw_tracepoint(prog, "no_such_tp")


@pytest.mark.parametrize("mechanism", ["link", "raw_tp"])
def test_tp_btf(counter, mechanism):
    btf_id = vmlinux().type_id("btf_trace_sys_enter")
    prog = kit.counter_prog(ProgType.TRACING, counter, 0, attach_type=AttachType.TRACE_RAW_TP,
                            attach_btf_id=btf_id)
    with attach_tracing(prog, attach_type=AttachType.TRACE_RAW_TP, mechanism=mechanism):
        before = counter.u64()
        _getpids(20)
        assert counter.u64() - before >= 20
    before = counter.u64()
    _getpids(20)
    assert counter.u64() == before


@pytest.mark.parametrize("mechanism", ["link", "raw_tp"])
@pytest.mark.parametrize("attach_type", [AttachType.TRACE_FENTRY, AttachType.TRACE_FEXIT])
def test_fentry_fexit_by_function_name(counter, mechanism, attach_type):
    # Under kernel lockdown (this CI machine boots with lockdown=integrity) the kernel refuses
    # fentry/fexit at load time with EPERM; then the error must say so, not be a bare errno.
    if _lockdown() != "none":
        with pytest.raises(BPFError) as e:
            kit.counter_prog(ProgType.TRACING, counter, 0, attach_type=attach_type,
                             attach_btf_id=kernel_func_id("__sys_connect"))
        assert e.value.errno == errno.EPERM
        assert "kernel lockdown" in str(e.value)
        return
    prog = kit.counter_prog(ProgType.TRACING, counter, 0, attach_type=attach_type,
                            attach_btf_id=kernel_func_id("__sys_connect"))
    with attach_tracing(prog, attach_type=attach_type, mechanism=mechanism):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("127.0.0.1", 9))
        assert counter.u64() >= 1


def _lockdown() -> str:
    """The active lockdown level ("none", "integrity", "confidentiality"), via securityfs."""
    path = "/sys/kernel/security/lockdown"
    mounted_here = False
    if not os.path.exists(path):
        os.makedirs("/sys/kernel/security", exist_ok=True)
        subprocess.run(["mount", "-t", "securityfs", "securityfs", "/sys/kernel/security"],
                       check=False, capture_output=True)
        mounted_here = True
    try:
        with open(path) as f:
            return f.read().split("[")[1].split("]")[0]
    except (OSError, IndexError):
        return "none"
    finally:
        if mounted_here:
            subprocess.run(["umount", "/sys/kernel/security"], check=False, capture_output=True)


def test_unknown_kernel_function():
    with pytest.raises(AttachError, match="no kernel function 'no_such_function_x'"):
        kernel_func_id("no_such_function_x")


def test_link_mechanism_needs_attach_type(counter):
    btf_id = vmlinux().type_id("btf_trace_sys_enter")
    prog = kit.counter_prog(ProgType.TRACING, counter, 0, attach_type=AttachType.TRACE_RAW_TP,
                            attach_btf_id=btf_id)
    with pytest.raises(AttachError, match="attach_type"):
        attach_tracing(prog, mechanism="link")
