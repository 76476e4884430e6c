"""Control flow built by the DSL, run in the kernel (XDP test_run) on chosen inputs.

Inputs come from the first bytes of the frame (``eth.dst``/``eth.src``) so
nothing folds at build time; each program returns its result as the XDP
return value, compared with the same computation in Python.
"""

from __future__ import annotations

import pytest

from pybpf.dsl import Ethernet, IPv4, Struct, subprog, u8, u32, u64, xdp
from pybpf.errors import VerifierError
from pybpf.types import Bytes

pytestmark = pytest.mark.kernel


def frame(*data: int) -> bytes:
    return bytes(data).ljust(64, b"\0")


def run(prog, cases: dict) -> None:
    """``cases``: {input bytes tuple: expected return value}."""
    with prog.load() as loaded:
        for data, want in cases.items():
            got = loaded.test_run(frame(*data)).retval
            assert got == want, f"{prog.name}{data}: got {got}, expected {want}\n{prog.listing()}"


# -- if / elif / else --------------------------------------------------------------------------

@xdp
def chain(p):
    eth = p.packet.header(Ethernet)
    x = eth.dst[0]
    r = p.var(u32, 0)
    with p.if_(x == 1):
        r.set(10)
    with p.elif_(x == 2):
        r.set(20)
    with p.elif_(eth.dst[1] == 7):  # an elif whose condition loads a value
        r.set(30)
    with p.elif_(x < 10):
        r.set(r + 40)
    with p.else_():
        r.set(50)
    p.return_(r)


def test_if_elif_else_chain():
    run(chain, {(1, 7): 10, (2, 7): 20, (3, 7): 30, (200, 7): 30, (5, 0): 40, (200, 0): 50})


@xdp
def chain_returns(p):
    eth = p.packet.header(Ethernet)
    x = eth.dst[0]
    with p.if_(x == 1):
        p.return_(11)
    with p.elif_(x == 2):
        y = p.var(u32, 5)
        y += x
        p.return_(y)
    with p.elif_(x == 3):
        pass  # falls through to the end
    with p.else_():
        p.return_(99)
    p.return_(33)


def test_chain_with_returns_and_fallthrough():
    run(chain_returns, {(1,): 11, (2,): 7, (3,): 33, (4,): 99})


@xdp
def no_else(p):
    eth = p.packet.header(Ethernet)
    x = eth.dst[0]
    r = p.var(u32, 1)
    with p.if_(x > 100):
        r.set(2)
    with p.elif_(x > 50):
        r.set(3)
    with p.elif_(x > 25):
        r.set(4)
    p.return_(r)


def test_elif_chain_without_else():
    run(no_else, {(0,): 1, (26,): 4, (51,): 3, (101,): 2})


@xdp
def nested(p):
    eth = p.packet.header(Ethernet)
    a, b = eth.dst[0], eth.dst[1]
    r = p.var(u32)
    with p.if_(a > 10):
        with p.if_(b > 10):
            r.set(1)
        with p.else_():
            r.set(2)
            with p.if_(b == 0):
                r.set(r + 10)
    with p.else_():
        with p.if_(b > 10):
            r.set(3)
        with p.elif_(b > 5):
            r.set(4)
        with p.else_():
            r.set(5)
    p.return_(r)


def test_nested_ifs():
    run(nested, {(11, 11): 1, (11, 3): 2, (11, 0): 12, (3, 11): 3, (3, 6): 4, (3, 5): 5})


@xdp
def compound(p):
    eth = p.packet.header(Ethernet)
    a, b, c = eth.dst[0], eth.dst[1], eth.dst[2]
    r = p.var(u32, 0)
    with p.if_(((a == 1) & ~(b == 2)) | c.test(0x80)):
        r.set(r | 1)
    with p.if_(~((a > 3) | (b < 3)) & ((c & 3) != 0)):
        r.set(r | 2)
    with p.if_(~~(a == b)):
        r.set(r | 4)
    p.return_(r)


def _compound(a, b, c):
    r = 0
    if (a == 1 and b != 2) or c & 0x80:
        r |= 1
    if not (a > 3 or b < 3) and c & 3:
        r |= 2
    if a == b:
        r |= 4
    return r


def test_compound_conditions():
    cases = {(a, b, c): _compound(a, b, c)
             for a in (0, 1, 2, 3, 4) for b in (0, 2, 3, 4) for c in (0, 1, 0x80, 0x83)}
    run(compound, cases)


# -- loops ------------------------------------------------------------------------------------

@xdp
def sum_to(p):
    eth = p.packet.header(Ethernet)
    n = eth.dst[0] & 31
    stop_at = eth.dst[1]
    total = p.var(u32, 0)
    evens = p.var(u32, 0)
    for i in p.range(n):
        with p.if_(i == stop_at):
            p.break_()
        total += i
        with p.if_((i & 1) == 0):
            evens += 1
    p.return_(total * 100 + evens)


def _sum_to(n, stop_at):
    total = evens = 0
    for i in range(n & 31):
        if i == stop_at:
            break
        total += i
        evens += i % 2 == 0
    return total * 100 + evens


def test_bounded_loop_with_break_and_vars():
    run(sum_to, {(n, s): _sum_to(n, s) for n in (0, 1, 5, 31, 40) for s in (0, 3, 255)})


@xdp
def nested_loops(p):
    eth = p.packet.header(Ethernet)
    n, m = eth.dst[0] & 7, eth.dst[1] & 7
    acc = p.var(u32, 0)
    for i in p.range(n):
        for j in p.range(m):
            acc += i * j + 1
    for k in p.range(10, 0, -2):  # a constant, descending range
        acc += k
    p.return_(acc)


def test_nested_and_descending_loops():
    def want(n, m):
        return sum(i * j + 1 for i in range(n & 7) for j in range(m & 7)) + sum(range(10, 0, -2))
    run(nested_loops, {(n, m): want(n, m) for n in (0, 3, 7) for m in (0, 2, 7)})


@xdp
def goto_loop(p):
    eth = p.packet.header(Ethernet)
    n = p.var(u32, eth.dst[0])
    n.set((n << 8) | eth.dst[1])  # up to 65535: more than the verifier would walk through
    i = p.var(u32, 0)
    acc = p.var(u32, 0)
    with p.while_(lambda: i < n):
        acc += i ^ 0x5A
        i += 1
    p.return_(acc)


@xdp
def goto_range(p):
    eth = p.packet.header(Ethernet)
    n = p.var(u32, eth.dst[0])
    n.set((n << 8) | eth.dst[1])
    stop = p.var(u32, eth.dst[2])
    stop.set(stop << 8)
    acc = p.var(u32, 0)
    for i in p.range(n, may_goto=True):
        with p.if_(i == stop):  # a bound the verifier cannot know either
            p.break_()
        acc += i
    p.return_(acc)


def test_may_goto_loops():
    def want_while(n):
        return sum(i ^ 0x5A for i in range(n)) & 0xFFFFFFFF
    run(goto_loop, {(hi, lo): want_while(hi << 8 | lo) for hi, lo in ((0, 0), (0, 7), (3, 200))})
    run(goto_range, {(hi, lo, s): sum(range(min(hi << 8 | lo, s << 8))) & 0xFFFFFFFF
                     for hi, lo, s in ((0, 0, 1), (1, 1, 1), (1, 1, 2), (255, 255, 255))})


def test_plain_range_over_an_unbounded_count_needs_may_goto():
    @xdp
    def unbounded(p):
        eth = p.packet.header(Ethernet)
        n = p.var(u32, eth.dst[0])
        n.set((n << 24) | eth.dst[1])
        acc = p.var(u32, 0)
        for i in p.range(n):
            acc += i
        p.return_(acc)

    with pytest.raises(VerifierError):
        unbounded.load()


class Acc(Struct):
    total: u64
    limit: u64


@subprog
def step(p, index, ctx):
    acc = p.deref(ctx, Acc)
    with p.if_(index >= acc.limit):
        p.return_(1)  # stop
    acc.total = acc.total + index * index
    p.return_(0)


@xdp
def with_bpf_loop(p):
    eth = p.packet.header(Ethernet)
    acc = p.stack(Acc, total=7, limit=eth.dst[1])
    runs = p.loop(eth.dst[0], step, acc)
    p.return_(acc.total * 1000 + runs.cast(u64))  # bpf_loop returns a long


def test_bpf_loop_with_a_callback():
    def want(n, limit):
        total, runs = 7, 0
        for i in range(n):
            runs += 1
            if i >= limit:
                break
            total += i * i
        return total * 1000 + runs
    run(with_bpf_loop, {(n, lim): want(n, lim) for n in (0, 1, 10, 30) for lim in (0, 5, 100)})


# -- local functions -----------------------------------------------------------------------------

@subprog
def mix3(p, a, b, c):
    with p.if_(a > b):
        p.return_(a * 3 + c)
    p.return_(b * 5 + twice(p, c))


@subprog
def twice(p, x):
    p.return_(x + x)


@xdp
def calls(p):
    eth = p.packet.header(Ethernet)
    a, b = eth.dst[0], eth.dst[1]
    r = mix3(p, a, b, 4)
    r2 = twice(p, r)
    p.return_(r2 + mix3(p, 1, 2, a))


def test_subprograms_with_arguments_and_results():
    def m3(a, b, c):
        return a * 3 + c if a > b else b * 5 + 2 * c
    run(calls, {(a, b): 2 * m3(a, b, 4) + m3(1, 2, a) for a in (0, 3, 9) for b in (0, 3, 9)})


# -- many live values, across calls ------------------------------------------------------------

@xdp
def crowded(p):
    eth = p.packet.header(Ethernet)
    vals = [p.var(u32, eth.dst[i]) for i in range(6)] + [p.var(u32, eth.src[i]) for i in range(6)]
    t0 = p.call("ktime_get_ns")
    for k, v in enumerate(vals):
        v.set(v * (k + 1))
    t1 = p.call("ktime_get_ns")
    p.call("get_prandom_u32")
    total = p.var(u64, 0)
    for v in vals:
        total += v
    with p.if_(t1 < t0):
        p.return_(0)
    extra = p.var(u32, eth.proto.host())
    p.return_(total + extra)


def test_more_live_values_than_registers_across_helper_calls():
    data = tuple(range(3, 15)) + (0x12, 0x34)
    want = sum(b * (k + 1) for k, b in enumerate(data[:12])) + 0x1234
    run(crowded, {data: want})
    listing = crowded.listing()
    assert "*(u64 *)(r10 -" in listing  # some value did go to the stack


@xdp
def narrow_var(p):
    eth = p.packet.header(Ethernet)
    x = p.var(u8, eth.dst[0])
    for _ in p.range(3):
        x += 100  # wraps at 8 bits, as C's uint8_t would
    p.return_(x)


def test_narrow_var_wraps():
    run(narrow_var, {(v,): (v + 300) & 0xFF for v in (0, 1, 100, 255)})


# -- packet pointers follow control flow ---------------------------------------------------------

def test_packet_pointer_valid_after_a_branch_that_returned():
    """A packet-changing helper in a branch that returns does not invalidate pointers after it."""
    from pybpf.dsl import IPPROTO_TCP, TC_ACT_OK, TC_ACT_SHOT, DSLError, tc

    @tc
    def prog(p):
        _, ip = p.packet.headers(Ethernet, IPv4)
        with p.if_(ip.protocol == IPPROTO_TCP):
            p.call("l3_csum_replace", p.ctx, 24, 0, 0, 4)
            p.return_(TC_ACT_OK)
        with p.if_(ip.ttl == 1):        # no path to here passes the helper
            p.return_(TC_ACT_SHOT)
        p.return_(ip.ttl)

    with prog.load() as loaded:
        ipv4 = bytes(12) + b"\x08\x00" + bytes([0x45, 0, 0, 20, 0, 0, 0, 0, 9, 17]) + bytes(10)
        assert loaded.test_run(ipv4).retval == 9

    @tc
    def changed(p):
        _, ip = p.packet.headers(Ethernet, IPv4)
        with p.if_(ip.protocol == IPPROTO_TCP):
            p.call("l3_csum_replace", p.ctx, 24, 0, 0, 4)
        with p.else_():
            pass
        p.return_(ip.ttl)              # one path to here did change the packet

    with pytest.raises(DSLError, match="after bpf_l3_csum_replace changed the packet"):
        changed.build()


# -- bounds checks the builder can prove redundant ----------------------------------------------

class Frame40(Struct):
    head: Bytes(39)
    tail: Bytes(1)


@xdp
def reread(p):
    eth, ip = p.packet.headers(Ethernet, IPv4)            # checks 34 bytes
    r = p.var(u32, 0)
    with p.if_(ip.ttl == 1):
        _, ip2 = p.packet.headers(Ethernet, IPv4)         # implied: dropped
        r.set(ip2.protocol)
    with p.else_():
        eth3 = p.packet.header(Ethernet)                  # implied: dropped
        r.set(eth3.dst[0] + 100)
    (big,) = p.packet.headers(Frame40)                    # wider: kept
    p.return_(r + big.tail[0] * 1000)


def test_implied_bounds_checks_are_dropped_and_wider_ones_kept():
    listing = reread.listing()
    checks = [line for line in listing.splitlines() if "> r" in line and "goto" in line]
    assert len(checks) == 2, listing              # 34 bytes, then 40 bytes
    ipv4 = bytes([9]) + bytes(11) + b"\x08\x00" + bytes([0x45, 0, 0, 20, 0, 0, 0, 0, 1, 17])
    with reread.load() as loaded:
        assert loaded.test_run(ipv4.ljust(40, b"\0")).retval == 17
        assert loaded.test_run((ipv4[:22] + b"\x05" + ipv4[23:]).ljust(40, b"\0")).retval == 109
        assert loaded.test_run(ipv4.ljust(39, b"\0") + b"\x02").retval == 17 + 2000
        assert loaded.test_run(ipv4.ljust(39, b"\0")).retval == 2   # short: XDP_PASS


@xdp
def required(p):
    eth = p.packet.header(Ethernet)
    p.packet.require(40, on_short=1)                 # a constant length
    need = p.var(u32, eth.dst[0] * 4)                # a length read from the packet
    p.packet.require(need, on_short=3)
    p.return_(2)


def test_require_checks_a_length_without_reading_the_bytes():
    listing = required.listing()
    assert "-= 1" not in listing and "+= 1\n" not in listing   # data + need > data_end, as is
    with required.load() as loaded:
        for size, first, want in [(39, 0, 1), (40, 0, 2), (40, 10, 2), (40, 11, 3),
                                  (80, 20, 2), (80, 21, 3), (80, 255, 3)]:
            frame_ = bytes([first]).ljust(size, b"\0")
            assert loaded.test_run(frame_).retval == want, (size, first)


@xdp
def ranges(p):
    eth = p.packet.header(Ethernet)
    x = eth.dst[0]
    r = p.var(u32, 0)
    with p.if_(((x & 0xF) << 2) > 60):     # never true: the jump and the body go
        r.set(100)
    acc = p.var(u32, 0)
    for _ in p.range(eth.dst[1] & 127):    # a loop: acc's range widens to unknown
        acc += 1000
    with p.if_(acc > 65535):               # may be true: kept
        r.set(r + 1)
    with p.if_(x > 200):
        r.set(r + 2)
    p.return_(r)


def test_value_ranges_decide_jumps_soundly():
    listing = ranges.listing()
    assert "> 60" not in listing and "<= 60" not in listing, listing
    assert "65535" in listing
    run(ranges, {(0, 0): 0, (201, 0): 2, (15, 66): 1, (255, 127): 3, (200, 65): 0})
