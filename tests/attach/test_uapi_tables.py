"""The attach/event constants are generated from the uapi headers, and importing is cheap."""

import importlib.util
import pathlib
import subprocess
import sys

from pybpf.syscall import _perf_uapi
from pybpf.syscall._ffi import ffi
from pybpf.syscall._uapi import RingbufHeader
from pybpf.syscall.attach import _net_uapi

ROOT = pathlib.Path(__file__).parents[2]


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_modules_are_fresh():
    gen = _tool("gen_attach_uapi")
    assert pathlib.Path(gen.PERF_OUT).read_text() == gen.generate_perf(), \
        "run tools/gen_attach_uapi.py"
    assert pathlib.Path(gen.NET_OUT).read_text() == gen.generate_net(), \
        "run tools/gen_attach_uapi.py"


def test_values_match_the_headers():
    gen = _tool("gen_attach_uapi")
    perf = ["PERF_TYPE_SOFTWARE", "PERF_TYPE_TRACEPOINT", "PERF_COUNT_SW_BPF_OUTPUT",
            "PERF_SAMPLE_RAW", "PERF_FLAG_FD_CLOEXEC", "PERF_RECORD_LOST", "PERF_RECORD_SAMPLE",
            "PERF_EVENT_IOC_ENABLE", "PERF_EVENT_IOC_DISABLE", "PERF_EVENT_IOC_SET_BPF"]
    assert gen.c_values(["linux/perf_event.h"], perf) == {n: getattr(_perf_uapi, n) for n in perf}
    net = ["SO_ATTACH_BPF", "SO_DETACH_BPF", "SO_ATTACH_REUSEPORT_EBPF"]
    assert gen.c_values(["asm/socket.h"], net) == {n: getattr(_net_uapi, n) for n in net}
    sched = ["TC_H_CLSACT", "TC_H_MIN_INGRESS", "TC_H_MIN_EGRESS"]
    assert gen.c_values(["linux/pkt_sched.h"], sched) == {n: getattr(_net_uapi, n) for n in sched}
    # _uapi comes from libbpf's newer bpf.h; the machine's (older) one agrees where it has them
    ring = ["BPF_RINGBUF_BUSY_BIT", "BPF_RINGBUF_DISCARD_BIT", "BPF_RINGBUF_HDR_SZ"]
    assert gen.c_values(["linux/bpf.h"], ring) == {
        n: int(RingbufHeader[n.removeprefix("BPF_RINGBUF_")]) for n in ring}


def test_perf_event_attr_layout_matches_gcc():
    for name, size in _perf_uapi.PERF_SIZES.items():
        assert ffi.sizeof(name) == size
    for name, fields in _perf_uapi.PERF_OFFSETS.items():
        for field, offset in fields.items():
            assert ffi.offsetof(name, field) == offset
    bits = _perf_uapi.PERF_ATTR_DISABLED, _perf_uapi.PERF_ATTR_WATERMARK
    assert bits == (1 << 0, 1 << 14)


def test_importing_attach_and_events_parses_no_c():
    code = ("import sys, pybpf.syscall.attach, pybpf.syscall.events, pybpf.syscall.perf, "
            "pybpf.syscall.tracefs; "
            "bad = sorted(m for m in sys.modules if m.startswith('pycparser')); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
