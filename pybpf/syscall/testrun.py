"""BPF_PROG_TEST_RUN (alias BPF_PROG_RUN): run a loaded program on given input.

What the kernel accepts depends on the program type (net/bpf/test_run.c):

* xdp: a packet, and optionally ``struct xdp_md`` as ctx (``data`` > 0 puts
  that many leading bytes in front of the packet as metadata); returns the
  packet from data_meta on, and the ctx.
* sched_cls, socket_filter, cgroup_skb, lwt_*: a packet of at least 14 bytes
  (Ethernet), optionally ``struct __sk_buff`` as ctx, in which only mark,
  priority, ingress_ifindex, ifindex, cb, tstamp, wire_len, gso_segs, gso_size
  and hwtstamp may be non-zero; returns the packet and the ctx.
* flow_dissector: a packet, optionally ``struct bpf_flow_keys`` as ctx (only
  ``flags``); *data_out* is the ``struct bpf_flow_keys`` the program filled.
* raw_tracepoint: the u64 argument array as ctx; only r0 comes back; no
  data, repeat or ctx_out.
* syscall: any ctx up to 65535 bytes; the kernel writes the ctx as the
  program left it back into the *input* buffer, which we return as ctx_out.

``cpu`` needs ``BPF_F_TEST_RUN_ON_CPU`` and works for raw_tracepoint only;
``batch_size`` needs ``BPF_F_TEST_XDP_LIVE_FRAMES`` (XDP only, at most 256).
When ``data_out`` is too small the kernel answers ENOSPC and tells the size
it needed in ``data_size_out``; we retry with that size.
"""

from __future__ import annotations

import errno

from pybpf._record import record
from pybpf.errors import BPFError
from pybpf.syscall._ffi import address, ffi
from pybpf.syscall._uapi import (
    BPF_F_TEST_RUN_ON_CPU,
    BPF_F_TEST_XDP_LIVE_FRAMES,
    XDP_PACKET_HEADROOM,
    Cmd,
    ProgType,
)
from pybpf.syscall.bpf import bpf, new_attr

#: Largest XDP live-frames batch (net/bpf/test_run.c: TEST_XDP_MAX_BATCH).
MAX_XDP_BATCH = 256
#: Types whose test run reads ctx_in but refuses ctx_out, data and repeat.
_CTX_IN_ONLY = {ProgType.RAW_TRACEPOINT, ProgType.RAW_TRACEPOINT_WRITABLE, ProgType.SYSCALL}


@record(slots=False)
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
    """Run ``prog`` (anything with ``.fd``, and ``.type`` for type-specific rules) on input.

    Raw tracepoint and syscall programs run exactly once (``repeat`` must stay
    at 1); a syscall program's ``ctx_out`` is the ctx buffer as it left it.
    """
    if not isinstance(repeat, int) or repeat < 0:
        raise ValueError(f"repeat must be a non-negative int, not {repeat!r}")
    ptype = getattr(prog, "type", None)
    in_only = ptype in _CTX_IN_ONLY
    _check(ptype, data, flags, cpu, batch_size)
    if in_only and repeat > 1:
        raise ValueError(f"{ptype.name.lower()} programs run once per test run; the kernel "
                         f"refuses repeat={repeat}")
    data = bytes(data)
    ctx = bytes(ctx) if ctx is not None else b""
    if in_only:
        repeat, size_out, ctx_size_out = 0, 0, 0
    else:
        size_out = data_out_size if data_out_size is not None else (
            len(data) + XDP_PACKET_HEADROOM if data else 0)
        ctx_size_out = ctx_out_size if ctx_out_size is not None else len(ctx)
    data_in = ffi.from_buffer(data) if data else ffi.NULL
    # A copy the kernel may write: syscall programs get their ctx back in ctx_in.
    ctx_in = ffi.new("char[]", ctx) if ctx else ffi.NULL
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
        attr.test.ctx_size_in = len(ctx)
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
            raise _explain(e, ptype, data, ctx, flags, cpu, batch_size) from e
        if in_only:
            out_ctx = ffi.buffer(ctx_in, len(ctx))[:] if ptype == ProgType.SYSCALL and ctx \
                else b""
            return TestRun(attr.test.retval, attr.test.duration, b"", out_ctx)
        n_data = min(attr.test.data_size_out, size_out)
        n_ctx = min(attr.test.ctx_size_out, ctx_size_out)
        return TestRun(attr.test.retval, attr.test.duration,
                       ffi.buffer(data_out, n_data)[:], ffi.buffer(ctx_out, n_ctx)[:])
    raise BPFError(errno.ENOSPC, "BPF_PROG_TEST_RUN", "output kept growing; give data_out_size")


def _check(ptype, data: bytes, flags: int, cpu: int, batch_size: int) -> None:
    """The kernel's per-type rules that would otherwise come back as a bare EINVAL."""
    if cpu and not flags & BPF_F_TEST_RUN_ON_CPU:
        raise ValueError(f"cpu={cpu} needs flags=BPF_F_TEST_RUN_ON_CPU (raw_tracepoint only)")
    if batch_size and not flags & BPF_F_TEST_XDP_LIVE_FRAMES:
        raise ValueError(f"batch_size={batch_size} needs flags=BPF_F_TEST_XDP_LIVE_FRAMES "
                         "(XDP only)")
    if ptype in _CTX_IN_ONLY and data:
        raise ValueError(f"{ptype.name.lower()} programs take no packet data, only ctx")


def _explain(e: BPFError, ptype, data: bytes, ctx: bytes, flags: int, cpu: int,
             batch_size: int) -> BPFError:
    kind = ptype.name.lower() if isinstance(ptype, ProgType) else "this program type"
    if e.errno == errno.ENXIO and flags & BPF_F_TEST_RUN_ON_CPU:
        return BPFError(e.errno, e.command, f"{e.detail}: cpu {cpu} does not exist or is "
                        "offline")
    if e.errno == errno.E2BIG and batch_size:
        return BPFError(e.errno, e.command, f"{e.detail}: batch_size {batch_size} is larger "
                        f"than this kernel allows ({MAX_XDP_BATCH} since 5.18)")
    if e.errno in (errno.EINVAL, errno.ENOTSUP, 524):
        return BPFError(e.errno, e.command, f"{e.detail}: {kind} does not accept this input "
                        f"({len(data)} data bytes, {len(ctx)} ctx bytes, flags {flags:#x}, "
                        f"cpu {cpu}, batch_size {batch_size}); ctx fields the kernel does not "
                        "copy must be zero, and a ctx shorter than the offsets the program "
                        "reads is refused")
    return e
