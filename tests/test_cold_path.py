"""The path from ``import`` to a loaded program stays lean: a cold start is measured against
clang + bpftool (docs/benchmarks.md), and each module below cost milliseconds before it left."""

import subprocess
import sys

import pytest

# Not needed to build or load a program: the userspace side of the tools (sandbox, attach points,
# netlink), the BTF parser, modules that only other hooks, probing or text assembly need, and
# stdlib modules that cost 1-7 ms each to import.
ABSENT = ("pybpf.sandbox", "pybpf.syscall.attach", "pyroute2", "construct", "pybpf.btf.codec",
          "pybpf.dsl.tracepoint", "pybpf.asm.llvm", "pybpf.syscall.probes",
          "dataclasses", "inspect", "tokenize", "linecache", "argparse", "subprocess", "typing",
          "socket", "ipaddress", "ctypes", "threading", "encodings.utf_8_sig", "re",
          "importlib", "warnings")


def _modules_after(code: str) -> set[str]:
    """The modules ``code`` imports, less those the interpreter had before it ran (an
    editable install's import hook brings pathlib, ipaddress, re and importlib, so those
    are checked only where pybpf is installed as a user has it)."""
    out = subprocess.run([sys.executable, "-c", "import sys\nbefore = set(sys.modules)\n" + code
                          + "\nprint(*(set(sys.modules) - before))"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_building_a_tool_program_imports_only_what_a_build_needs():
    loaded = _modules_after("from programs.syn_filter import syn_filter\nsyn_filter.build()")
    assert {"pybpf.dsl", "programs.parser"} <= loaded       # the check sees real imports
    assert sorted(loaded & set(ABSENT)) == []


@pytest.mark.kernel
def test_loading_a_program_imports_only_what_a_load_needs():
    loaded = _modules_after("from programs.bind_guard import guard_bind4\n"
                            "guard_bind4.load().close()")
    assert {"pybpf.dsl.load", "pybpf.syscall.maps"} <= loaded
    assert sorted(loaded & set(ABSENT)) == []
