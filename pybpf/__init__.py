"""pybpf: a pure-Python eBPF toolkit that needs no compiler."""

from pybpf.errors import AsmError, BPFError, BTFError, PyBPFError, VerifierError

__all__ = ["AsmError", "BPFError", "BTFError", "PyBPFError", "VerifierError"]
__version__ = "0.1.0"
