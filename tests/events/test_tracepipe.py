"""bpf_trace_printk() output read back from trace_pipe."""

import struct

import kit
import pytest

from pybpf.syscall._uapi import ProgType
from pybpf.syscall.testrun import test_run as run_prog
from pybpf.syscall.tracefs import TracePipe, parse_line

pytestmark = pytest.mark.kernel


def printk_prog(text: bytes):
    """XDP program: bpf_trace_printk(text) from the stack; returns XDP_PASS."""
    fmt = text + b"\0" * (16 - len(text))
    lo, hi = struct.unpack("<QQ", fmt)
    code = kit.asm(f"""
        r1 = {lo:#x} ll
        *(u64 *)(r10 - 16) = r1
        r1 = {hi:#x} ll
        *(u64 *)(r10 - 8) = r1
        r1 = r10
        r1 += -16
        r2 = {len(text) + 1}
        call {kit.H['trace_printk']}
        r0 = 2
        exit
    """)
    return kit.Prog(ProgType.XDP, code)


def test_printk_lines_arrive():
    prog = printk_prog(b"pybpf-says-hi\n")
    with TracePipe() as pipe:
        run_prog(prog, bytes(64), repeat=3)
        messages = []
        for _ in range(20):
            messages += pipe.messages(timeout=0.5)
            if messages.count("pybpf-says-hi") >= 3:
                break
    assert messages.count("pybpf-says-hi") >= 3


def test_parse_line():
    line = "   python3-1234    [001] ..... 5.678901: bpf_trace_printk: hello 42"
    parsed = parse_line(line)
    assert (parsed.task, parsed.pid, parsed.cpu) == ("python3", 1234, 1)
    assert (parsed.function, parsed.message) == ("bpf_trace_printk", "hello 42")
    assert parse_line("garbage") is None
