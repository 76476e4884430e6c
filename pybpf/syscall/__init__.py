"""The kernel interface: bpf() through cffi, maps, programs, test runs, probes."""

from pybpf.syscall import _uapi
from pybpf.syscall._uapi import (
    AttachType,
    Cmd,
    LinkType,
    MapFlags,
    MapType,
    ProgType,
    StatsType,
    UpdateFlags,
)
from pybpf.syscall.bpf import bpf
from pybpf.syscall.btf_object import Btf, load_btf
from pybpf.syscall.codec import CodecError, possible_cpus
from pybpf.syscall.maps import Map, MapInfo
from pybpf.syscall.objects import FdObject, next_ids, obj_get, obj_pin, unpin
from pybpf.syscall.programs import Program, ProgramInfo, enable_stats, load_program
from pybpf.syscall.testrun import TestRun, test_run
from pybpf.syscall.verifier import VerifierStats

__all__ = [
    "AttachType", "Btf", "Cmd", "CodecError", "FdObject", "HelperId", "LinkType", "Map",
    "MapFlags", "MapInfo", "MapType", "ProgType", "Program", "ProgramInfo", "StatsType",
    "TestRun", "UpdateFlags", "VerifierStats", "bpf", "enable_stats", "load_btf",
    "load_program", "next_ids", "obj_get", "obj_pin", "possible_cpus", "test_run", "unpin",
]


def __getattr__(name: str):
    if name == "HelperId":   # built when first asked for (see _uapi)
        return _uapi.HelperId
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
