"""Every mistake the DSL catches at build time: the message, and the user's line it names.

Each program below marks the line the error must point at with a trailing
``# <- name`` comment; ``where(name)`` finds that line in this file, so the
tests keep working when lines move.

About "a value clobbered by a helper call": DSL values live in virtual
registers, and the allocator keeps every value that is live across a call in
r6-r9 or in a stack slot, so a DSL value (``p.ctx``, packet pointers, loaded
fields, ``p.var``) cannot be clobbered, by construction. Only physical
registers named explicitly (``p.register``, ``p.set_register``, ``p.insn``)
can be; the builder checks those with liveness: reading r0-r5 after a call
that destroyed them, or any register no path has set, is an error.
"""

from __future__ import annotations

import pytest

from pybpf.asm import Alu, Arith, GotoLong, Reg
from pybpf.dsl import (
    ETH_P_IP,
    XDP_PASS,
    Array,
    DSLError,
    Ethernet,
    Hash,
    IPv4,
    Struct,
    s32,
    socket_filter,
    subprog,
    tc,
    u8,
    u32,
    u64,
    xdp,
)
from pybpf.types import Bytes

with open(__file__) as _f:
    _LINES = _f.read().splitlines()


def where(name: str) -> str:
    """``file:line`` of the line in this file ending with ``# <- name``."""
    hits = [i + 1 for i, text in enumerate(_LINES) if text.rstrip().endswith(f"# <- {name}")]
    assert len(hits) == 1, f"marker {name!r} found {len(hits)} times"
    return f"{__file__}:{hits[0]}"


def fails(prog, name: str, *fragments: str) -> DSLError:
    """``prog.build()`` raises a DSLError naming line ``name`` and containing ``fragments``."""
    with pytest.raises(DSLError) as info:
        prog.build()
    e = info.value
    assert e.where == where(name), f"{e} (expected the line marked {name})"
    for fragment in fragments:
        assert fragment in e.message, e.message
    assert str(e).startswith(where(name) + ": ")
    return e


counts = Hash(u32, u64, max_entries=4)
table = Array(u32, u64, max_entries=4)


# -- values and variables --------------------------------------------------------------------

def test_var_read_before_it_is_set():
    @xdp
    def prog(p):
        x = p.var(u32)
        p.return_(x)  # <- unset

    fails(prog, "unset", "read before it is set")


def test_var_set_on_one_path_only():
    @xdp
    def prog(p):
        eth = p.packet.header(Ethernet)
        x = p.var(u32)
        with p.if_(eth.proto == ETH_P_IP):
            x.set(1)
        p.return_(x)  # <- one-path

    fails(prog, "one-path", "not set on every path")


def test_constant_too_big_for_a_var():
    @xdp
    def prog(p):
        p.var(u8, 300)  # <- too-big
        p.return_(XDP_PASS)

    fails(prog, "too-big", "constant 300 does not fit u8")


def test_signed_unsigned_mix_in_arithmetic():
    @xdp
    def prog(p):
        a = p.var(u32, p.ctx.ingress_ifindex)
        b = p.var(s32, -1)
        p.return_(a + b)  # <- mix

    fails(prog, "mix", "mixes signed", "cast one side")


def test_signed_unsigned_mix_in_comparison():
    @xdp
    def prog(p):
        a = p.var(u32, p.ctx.ingress_ifindex)
        b = p.var(s32, -1)
        with p.if_(a < b):  # <- cmp-mix
            p.return_(1)
        p.return_(XDP_PASS)

    fails(prog, "cmp-mix", "ambiguous", ".slt()")


def test_true_division():
    @xdp
    def prog(p):
        a = p.var(u32, p.ctx.ingress_ifindex)
        p.return_(a / 2)  # <- truediv

    fails(prog, "truediv", "use // for integer division")


# -- Python control flow on DSL conditions ------------------------------------------------------

def test_python_if_on_a_condition():
    @xdp
    def prog(p):
        eth = p.packet.header(Ethernet)
        if eth.proto == ETH_P_IP:  # <- py-if
            p.return_(1)
        p.return_(XDP_PASS)

    fails(prog, "py-if", "no truth value", "p.if_")


def test_python_and_or_not_on_conditions():
    @xdp
    def prog_and(p):
        eth = p.packet.header(Ethernet)
        with p.if_((eth.proto == ETH_P_IP) and (eth.dst[0] == 1)):  # <- py-and
            p.return_(1)
        p.return_(XDP_PASS)

    @xdp
    def prog_or(p):
        eth = p.packet.header(Ethernet)
        with p.if_((eth.proto == ETH_P_IP) or (eth.dst[0] == 1)):  # <- py-or
            p.return_(1)
        p.return_(XDP_PASS)

    @xdp
    def prog_not(p):
        eth = p.packet.header(Ethernet)
        with p.if_(not (eth.proto == ETH_P_IP)):  # <- py-not
            p.return_(1)
        p.return_(XDP_PASS)

    fails(prog_and, "py-and", "&, |, ~ instead of and, or, not")
    fails(prog_or, "py-or", "&, |, ~ instead of and, or, not")
    fails(prog_not, "py-not", "&, |, ~ instead of and, or, not")


def test_bool_of_a_value_and_a_pointer():
    @xdp
    def prog_value(p):
        eth = p.packet.header(Ethernet)
        if eth.dst[0]:  # <- py-value
            p.return_(1)
        p.return_(XDP_PASS)

    @xdp
    def prog_ptr(p):
        key = p.stack(u32, 0)
        with counts.lookup(key) as v:
            if v:  # <- py-ptr
                p.return_(1)
        p.return_(XDP_PASS)

    fails(prog_value, "py-value", "no truth value")
    fails(prog_ptr, "py-ptr", "no truth value")


# -- control flow ----------------------------------------------------------------------------

def test_missing_return():
    @xdp
    def prog(p):  # <- no-return
        eth = p.packet.header(Ethernet)
        with p.if_(eth.proto == ETH_P_IP):
            p.return_(1)

    fails(prog, "no-return", "can reach its end without return_")


def test_missing_return_in_a_subprogram():
    @subprog
    def helper(p, x):  # <- sub-no-return
        with p.if_(x == 1):
            p.return_(1)

    @xdp
    def prog(p):
        p.return_(helper(p, p.ctx.ingress_ifindex))

    fails(prog, "sub-no-return", "'helper' can reach its end without return_")


def test_subprogram_signature_is_checked_when_declared():
    with pytest.raises(DSLError, match="takes 6 arguments; the limit is 5"):
        @subprog
        def six(p, a, b, c, d, e, f):
            p.return_(0)
    with pytest.raises(DSLError, match="only positional parameters"):
        @subprog
        def variadic(p, *values):
            p.return_(0)


def test_code_after_return():
    @xdp
    def prog(p):
        p.return_(XDP_PASS)
        p.var(u32, 1)  # <- after-return

    fails(prog, "after-return", "unreachable code")


def test_else_without_if_and_break_outside_loop():
    @xdp
    def prog_else(p):
        p.var(u32, 1)
        with p.else_():  # <- lone-else
            pass
        p.return_(XDP_PASS)

    @xdp
    def prog_break(p):
        p.break_()  # <- lone-break
        p.return_(XDP_PASS)

    fails(prog_else, "lone-else", "else_ must follow an if_")
    fails(prog_break, "lone-break", "break_ outside a loop")


@pytest.mark.kernel
def test_jump_beyond_s16_is_relaxed_through_gotol():
    """A conditional jump over more than 32767 slots cannot be encoded: the DSL rewrites it."""
    @xdp
    def far(p):
        acc = p.var(u64, p.ctx.ingress_ifindex)
        with p.if_(acc == 12345):
            for _ in range(11000):
                acc += 0x123456789  # LD_IMM64 (2 slots) + ADD
        p.return_(acc & 0xFF)

    built = far.build()
    assert any(isinstance(i, GotoLong) for i in built.program)
    with far.load() as prog:
        assert prog.test_run(bytes(14)).retval == 1  # lo's ifindex


# -- memory -----------------------------------------------------------------------------------

def test_stack_overflow():
    @xdp
    def prog(p):
        p.stack(Bytes(300))
        p.stack(Bytes(300))  # <- overflow
        p.return_(XDP_PASS)

    fails(prog, "overflow", "stack overflow: 600 bytes", "the limit is 512")


def test_packet_access_outside_the_checked_range():
    @xdp
    def prog(p):
        eth = p.packet.header(Ethernet)
        p.return_(eth.view(u32, 12).value)  # <- beyond

    fails(prog, "beyond", "packet access of 4 bytes at offset 12", "checked range (0..14)")


def test_packet_pointer_after_the_packet_changed():
    @tc
    def prog(p):
        eth = p.packet.header(Ethernet)
        p.call("skb_change_proto", p.ctx, 0x86DD, 0)
        p.return_(eth.proto)  # <- stale

    fails(prog, "stale", "after bpf_skb_change_proto changed the packet")


def test_map_value_outside_its_null_check():
    @xdp
    def prog(p):
        key = p.stack(u32, 0)
        with counts.lookup(key) as v:
            v.atomic_add(1)
        v.atomic_add(1)  # <- escaped
        p.return_(XDP_PASS)

    fails(prog, "escaped", "value of map 'counts' used outside", "NULL")


# -- explicit registers --------------------------------------------------------------------------

def test_register_clobbered_by_a_helper_call():
    @xdp
    def prog(p):
        p.set_register(Reg.R3, 7)
        p.call("ktime_get_ns")
        p.return_(p.register(Reg.R3))  # <- clobbered

    e = fails(prog, "clobbered", "R3 is read here but the call at")
    assert "r0-r5 do not survive calls" in e.message


def test_register_read_before_set():
    @xdp
    def prog(p):
        p.return_(p.register(Reg.R4))  # <- raw-unset

    fails(prog, "raw-unset", "R4 is read here but not set")


@pytest.mark.kernel
def test_callee_saved_register_survives_calls():
    @socket_filter
    def prog(p):
        p.insn(Alu(op=Arith.MOV, dst=Reg.R6, src=7, width=64))
        stamp = p.call("ktime_get_ns")
        p.call("get_prandom_u32")
        with p.if_(stamp == 0):
            p.return_(0)
        p.return_(p.register(Reg.R6) + stamp - stamp)

    with prog.load() as loaded:
        assert loaded.test_run(bytes(64)).retval == 7


# -- helpers --------------------------------------------------------------------------------

def test_unknown_helper():
    @xdp
    def prog(p):
        p.call("ktime_get_nsec")  # <- unknown
        p.return_(XDP_PASS)

    fails(prog, "unknown", "unknown helper bpf_ktime_get_nsec", "did you mean")


def test_wrong_argument_count():
    @xdp
    def prog(p):
        p.call("ktime_get_ns", 1)  # <- count
        p.return_(XDP_PASS)

    fails(prog, "count", "bpf_ktime_get_ns takes 0 argument(s)", "got 1")


def test_wrong_argument_kinds():
    @xdp
    def prog_map(p):
        key = p.stack(u32, 0)
        p.call("map_lookup_elem", 5, key)  # <- not-map
        p.return_(XDP_PASS)

    @xdp
    def prog_ptr(p):
        p.call("map_lookup_elem", table, 5)  # <- not-ptr
        p.return_(XDP_PASS)

    @xdp
    def prog_ctx(p):
        p.call("xdp_adjust_head", 0, 4)  # <- not-ctx
        p.return_(XDP_PASS)

    fails(prog_map, "not-map", "argument 1 (struct bpf_map * map) of bpf_map_lookup_elem "
          "must be a map")
    fails(prog_ptr, "not-ptr", "argument 2", "must be a pointer (or 0 for NULL), got 5")
    fails(prog_ctx, "not-ctx", "argument 1", "must be the program context p.ctx")


# -- context fields ------------------------------------------------------------------------------

def test_context_field_the_hook_cannot_read():
    @xdp
    def prog(p):
        p.return_(p.ctx.mark)  # <- no-field

    fails(prog, "no-field", "mark")


def test_context_field_the_hook_cannot_write():
    @xdp
    def prog_ro(p):
        p.ctx.ingress_ifindex = 3  # <- read-only
        p.return_(XDP_PASS)

    @socket_filter
    def prog_sf(p):
        p.ctx.mark = 3  # <- sf-write
        p.return_(0)

    e = fails(prog_ro, "read-only", "ingress_ifindex")
    assert "writ" in e.message or "read-only" in e.message
    fails(prog_sf, "sf-write", "mark")


def test_context_packet_pointer_field_is_refused():
    @tc
    def prog(p):
        p.return_(p.ctx.data)  # <- raw-data

    fails(prog, "raw-data", "is a packet pointer", "p.packet.header")


def test_struct_field_typo():
    class Pair(Struct):
        a: u32
        b: u32

    @xdp
    def prog(p):
        pair = p.stack(Pair, a=1, b=2)
        p.return_(pair.c)  # <- typo

    fails(prog, "typo", "Pair has no field 'c'", "fields: a, b")


def test_ipv4_after_ethernet_is_fine():
    """A control: the same kind of program with no mistake builds."""
    @xdp
    def prog(p):
        eth = p.packet.header(Ethernet)
        ip = p.packet.header(IPv4, after=eth)
        p.return_(ip.ttl)

    assert len(prog.build().program) > 0


def test_ringbuf_helpers_take_the_map_although_bpf_h_says_void_pointer():
    """A control: `void *ringbuf` in linux/bpf.h is a map argument (ARG_CONST_MAP_PTR)."""
    from pybpf.dsl import RingBuf

    ring = RingBuf(4096, name="ring")

    @xdp
    def prog(p):
        p.call("ringbuf_output", ring, p.stack(u64, 1), 8, 0)
        p.return_(XDP_PASS)

    assert "ring" in prog.build().maps


# -- kfuncs -----------------------------------------------------------------------------------------

def test_unknown_kfunc_and_wrong_count():
    @xdp
    def prog_unknown(p):
        p.kfunc("bpf_no_such_kfunc")  # <- kf-unknown
        p.return_(XDP_PASS)

    @xdp
    def prog_count(p):
        p.kfunc("bpf_cast_to_kern_ctx")  # <- kf-count
        p.return_(XDP_PASS)

    fails(prog_unknown, "kf-unknown", "no kernel function 'bpf_no_such_kfunc'")
    fails(prog_count, "kf-count", "bpf_cast_to_kern_ctx takes 1 argument(s)", "got 0")


@pytest.mark.kernel
def test_kfuncs_by_name_pass_the_verifier():
    @xdp
    def prog(p):
        p.kfunc("bpf_rcu_read_lock")
        kctx = p.kfunc("bpf_cast_to_kern_ctx", p.ctx)
        p.kfunc("bpf_rcu_read_unlock")
        with p.if_(kctx == 0):
            p.return_(0)
        p.return_(XDP_PASS)

    with prog.load() as loaded:
        assert loaded.test_run(bytes(14)).retval == XDP_PASS
