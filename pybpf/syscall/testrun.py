"""BPF_PROG_TEST_RUN (alias BPF_PROG_RUN): run a loaded program on given input.

The kernel builds a context from ``data_in`` (a packet for XDP, TC, socket
filter, cgroup skb, flow dissector) and/or ``ctx_in`` (``struct __sk_buff``,
``struct xdp_md``, raw tracepoint arguments, the syscall program's context),
runs the program ``repeat`` times and reports r0, the mean duration in ns and
the output buffers.  When ``data_out`` is too small the kernel answers ENOSPC
and tells the size it needed in ``data_size_out``; we retry with that size.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from pybpf.errors import BPFError
from pybpf.syscall._ffi import address, ffi
from pybpf.syscall._uapi import XDP_PACKET_HEADROOM, Cmd
from pybpf.syscall.bpf import bpf, new_attr


@dataclass(frozen=True)
class TestRun:
    """The result of one BPF_PROG_TEST_RUN."""

    __test__ = False  # not a pytest class

    retval: int
    duration_ns: int
    data_out: bytes
    ctx_out: bytes


def test_run(prog, data: bytes = b"", *, ctx: bytes | None = None, repeat: int = 1,
             flags: int = 0, cpu: int = 0, batch_size: int = 0,
             data_out_size: int | None = None, ctx_out_size: int | None = None) -> TestRun:
    """Run ``prog`` (anything with ``.fd``) once or ``repeat`` times on ``data``/``ctx``."""
    if not isinstance(repeat, int) or repeat < 0:
        raise ValueError(f"repeat must be a non-negative int, not {repeat!r}")
    data = bytes(data)
    size_out = data_out_size if data_out_size is not None else (
        len(data) + XDP_PACKET_HEADROOM if data else 0)
    ctx_size_out = ctx_out_size if ctx_out_size is not None else (len(ctx) if ctx else 0)
    data_in = ffi.from_buffer(data) if data else ffi.NULL
    ctx_in = ffi.from_buffer(bytes(ctx)) if ctx else ffi.NULL
    for _attempt in range(3):
        data_out = ffi.new("char[]", max(size_out, 1))
        ctx_out = ffi.new("char[]", max(ctx_size_out, 1))
        attr = new_attr()
        attr.test.prog_fd = prog.fd
        attr.test.data_in = address(data_in) if data else 0
        attr.test.data_size_in = len(data)
        attr.test.data_out = address(data_out) if size_out else 0
        attr.test.data_size_out = size_out
        attr.test.ctx_in = address(ctx_in) if ctx else 0
        attr.test.ctx_size_in = len(ctx) if ctx else 0
        attr.test.ctx_out = address(ctx_out) if ctx_size_out else 0
        attr.test.ctx_size_out = ctx_size_out
        attr.test.repeat = repeat
        attr.test.flags = flags
        attr.test.cpu = cpu
        attr.test.batch_size = batch_size
        try:
            bpf(Cmd.PROG_TEST_RUN, attr)
        except BPFError as e:
            if e.errno == errno.ENOSPC and attr.test.data_size_out > size_out:
                size_out = attr.test.data_size_out
                continue
            if e.errno == errno.ENOSPC and attr.test.ctx_size_out > ctx_size_out:
                ctx_size_out = attr.test.ctx_size_out
                continue
            if e.errno in (errno.EINVAL, errno.ENOTSUP, 524):
                raise BPFError(e.errno, e.command, f"{e.detail}: this program type, input "
                               f"({len(data)} data bytes, {len(ctx or b'')} ctx bytes) or "
                               "flags are not accepted by test_run") from e
            raise
        n_data = min(attr.test.data_size_out, size_out)
        n_ctx = min(attr.test.ctx_size_out, ctx_size_out)
        return TestRun(attr.test.retval, attr.test.duration,
                       ffi.buffer(data_out, n_data)[:], ffi.buffer(ctx_out, n_ctx)[:])
    raise BPFError(errno.ENOSPC, "BPF_PROG_TEST_RUN", "output kept growing; give data_out_size")
