"""What a tool in programs/ provides, and the registry the CLI reads.

A tool module imports at its top only what building and loading its programs needs. The
stdlib modules of its userspace side that cost milliseconds to import (socket, ipaddress,
ctypes, threading, typing) are imported in the functions that use them, so that a cold
``import`` + build + load stays as fast as clang + bpftool (tests/test_cold_path.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from pybpf._record import field, record
from pybpf.errors import PyBPFError

# Module names in the order `pybpf demo` runs them (the guide's chapter order).
MODULES = (
    "connect_journey",   # 1. socket syscalls, the connect() journey (tracepoints)
    "cgroup_logger",     # 2a. cgroup connect4/6 logger
    "cgroup_redirect",   # 2b. connect4/sendmsg4 redirector with getpeername4
    "bind_guard",        # 2c. bind4/bind6 guard
    "tc_logger",         # 3. TC packet logger
    "xdp_blocker",       # 4a. XDP IP blocker
    "proto_counter",     # 4b. XDP protocol counter
    "parser",            # 5. full packet parser (a DSL library + a test program)
    "dnat",              # 6. header rewriting (TC DNAT with checksums, XDP variant)
    "redirect",          # 7a/b. TC redirect, XDP devmap/cpumap
    "sockmap_redirect",  # 7c. sock_ops + sk_msg socket redirection
    "syn_filter",        # 8. socket filter passing TCP SYNs
)

TYPE_CHECKING = False  # as typing's: importing typing costs ~5 ms (with re) at start-up
if TYPE_CHECKING:
    import argparse


class ToolError(PyBPFError):
    """A tool was misused from the command line (unknown name, missing option)."""


class Attached:
    """A tool's programs, maps and attachments, held in ``_stack`` and released together by
    ``close()`` or at the end of a ``with`` block (in reverse order: detach, then unload)."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()

    def close(self) -> None:
        self._stack.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@record(frozen=False, slots=False)
class Tool:
    """A tool: name, summary, its programs, a sandboxed demo and a real-system runner."""

    name: str
    summary: str
    programs: Callable[[], list] = field(default=lambda: [])
    demo: Callable[[], None] | None = None
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    run: Callable[[argparse.Namespace], None] | None = None


def all_tools() -> list[Tool]:
    """Every tool that exists, in chapter order (modules not written yet are skipped)."""
    import importlib  # the CLI's registry only: importing a tool to load its program skips it
    tools = []
    for mod in MODULES:
        try:
            module = importlib.import_module(f"programs.{mod}")
        except ModuleNotFoundError as e:
            if e.name == f"programs.{mod}":
                continue
            raise
        tools.append(module.TOOL)
    return tools


def find(name: str) -> Tool:
    for tool in all_tools():
        if tool.name == name:
            return tool
    known = ", ".join(t.name for t in all_tools())
    raise ToolError(f"no tool named {name!r} (tools: {known})")
