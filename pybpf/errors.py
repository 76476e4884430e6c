"""The one exception hierarchy of pybpf.

    PyBPFError
    ├── AsmError          bad instruction, operand, label or assembler text
    ├── BTFError          malformed or unresolvable BTF
    └── BPFError          a bpf() command failed (carries errno and the command)
        └── VerifierError the verifier rejected a program (carries the log)
"""

from __future__ import annotations

import errno as _errno
import os


class PyBPFError(Exception):
    """Base of every error pybpf raises on purpose."""


class AsmError(PyBPFError, ValueError):
    """An instruction, operand, label or line of assembler text is invalid.

    ``where`` is ``file:line:column`` (or a Python source position) when known.
    """

    def __init__(self, message: str, where: str | None = None):
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class BTFError(PyBPFError, ValueError):
    """BTF data is malformed, or a type cannot be found or expressed."""


class BPFError(PyBPFError, OSError):
    """A bpf() command (or a related syscall) failed.

    ``errno`` is the kernel's errno so ``e.errno == errno.EPERM`` works;
    ``command`` names the bpf() command (``"BPF_MAP_CREATE"``) or syscall.
    """

    def __init__(self, err: int, command: str, message: str | None = None):
        self.command = command
        text = message or os.strerror(err)
        name = _errno.errorcode.get(err, str(err))
        OSError.__init__(self, err, f"{command}: {text} ({name})")
        self.detail = text

    def __str__(self) -> str:
        return self.args[1]


class VerifierError(BPFError):
    """The verifier rejected a program.

    ``log`` is the complete verifier log; ``insn_index`` the failing
    instruction (or None), ``insn`` its disassembly and ``source`` the user's
    source position and line when line info was present.
    """

    def __init__(
        self,
        err: int,
        log: str,
        *,
        summary: str,
        insn_index: int | None = None,
        insn: str | None = None,
        source: str | None = None,
        program: str | None = None,
    ):
        self.log = log
        self.insn_index = insn_index
        self.insn = insn
        self.source = source
        self.program = program
        parts = [f"verifier rejected program {program!r}" if program else "verifier rejected program"]
        if insn_index is not None:
            parts.append(f"at insn {insn_index}" + (f" ({insn})" if insn else ""))
        if source:
            parts.append(f"from {source}")
        message = " ".join(parts) + f": {summary}"
        super().__init__(err, "BPF_PROG_LOAD", message)
