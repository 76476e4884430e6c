"""A VerifierError names the Python source line, read back from the kernel's own log.

The program below is written in Python: each instruction records the file:line of the
statement that emitted it.  pybpf.btf turns those positions into BTF func_info and
line_info; the kernel validates them, and when the verifier rejects the program its log
prints the offending line (``; text @ file:line``), which load_program parses.
"""

import linecache
import os
import sys

import pytest

from pybpf import asm
from pybpf.asm import R0, R1, R2, Arith
from pybpf.btf.program import SourcePos, program_btf
from pybpf.errors import VerifierError
from pybpf.syscall import load_btf, load_program

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("no_leaks")]


class Emitter:
    """Collects instructions with the caller's file:line, as the DSL does."""

    def __init__(self):
        self.insns, self.lines = [], []

    def __call__(self, insn):
        frame = sys._getframe(1)
        path, line = frame.f_code.co_filename, frame.f_lineno
        text = linecache.getline(path, line).strip()
        self.lines.append((len(self.insns), SourcePos(path, line, 1, text)))
        self.insns.append(insn)


def load_with_line_info(emit: Emitter, ptype: str = "socket_filter", **kwargs):
    pb = program_btf([("py_prog", 0)], emit.lines)
    with load_btf(pb.btf) as btf:
        return load_program(ptype, emit.insns, name="py_prog", prog_btf_fd=btf.fd,
                            func_info=pb.func_info, line_info=pb.line_info, **kwargs)


def test_verifier_error_names_python_line():
    emit = Emitter()
    emit(asm.Alu(Arith.MOV, R0, 0))
    emit(asm.Load(R2, R1, 4000, asm.Size.W))  # bad: beyond struct __sk_buff
    bad_line = sys._getframe().f_lineno - 1
    emit(asm.Exit())
    with pytest.raises(VerifierError) as e:
        load_with_line_info(emit)
    err = e.value
    here = os.path.basename(__file__)
    assert err.insn_index == 1 and err.insn == "r2 = *(u32 *)(r1 + 4000)"
    assert err.source == (f"{here}:{bad_line}: emit(asm.Load(R2, R1, 4000, asm.Size.W))  "
                          "# bad: beyond struct __sk_buff")
    assert f"from {here}:{bad_line}:" in str(err)
    assert "invalid bpf_context access" in str(err)


def test_failure_in_a_branch_names_its_line():
    emit = Emitter()
    emit(asm.Load(R2, R1, 0, asm.Size.W))  # skb->len
    emit(asm.Jump(asm.JumpOp.JGT, R2, 100, 2))
    emit(asm.Alu(Arith.MOV, R0, 0))
    emit(asm.Exit())
    emit(asm.Exit())  # long packets: r0 was never set
    bad_line = sys._getframe().f_lineno - 1
    with pytest.raises(VerifierError, match="R0 !read_ok") as e:
        load_with_line_info(emit)
    assert e.value.insn_index == 4
    assert e.value.source.startswith(f"{os.path.basename(__file__)}:{bad_line}: emit(asm.Exit())")


def test_line_info_loads_and_source_lines_override():
    emit = Emitter()
    emit(asm.Alu(Arith.MOV, R0, 1))
    emit(asm.Exit())
    with load_with_line_info(emit) as prog:
        assert prog.test_run(bytes(64)).retval == 1
        assert prog.info().btf_id > 0
