"""The committed out-of-line cffi module is what tools/gen_ffi.py makes from _uapi.CDEF."""

import importlib.util
import pathlib
import subprocess
import sys

from pybpf.syscall._ffi import ffi, libc

TOOL = pathlib.Path(__file__).parents[2] / "tools" / "gen_ffi.py"
COMPILED = pathlib.Path(__file__).parents[2] / "pybpf" / "syscall" / "_ffi_compiled.py"


def _gen_ffi():
    spec = importlib.util.spec_from_file_location("gen_ffi", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compiled_module_is_current():
    assert COMPILED.read_text() == _gen_ffi().generate(), "run tools/gen_ffi.py"


def test_import_needs_no_pycparser():
    # the point of the out-of-line module: no C parsing in a fresh process
    code = "import sys, pybpf.syscall; print('pycparser' in sys.modules, 'cffi.api' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_declared_types_and_functions():
    attr = ffi.new("union bpf_attr *")
    assert ffi.sizeof(attr[0]) == 168
    assert ffi.offsetof("struct bpf_prog_info", "jited_prog_len") == 16  # after type, id, tag[8]
    assert callable(libc.syscall) and callable(libc.mmap) and callable(libc.prctl)
