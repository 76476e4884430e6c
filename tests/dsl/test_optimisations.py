"""Optimisations on virtual code, each shown in a listing and run in the kernel.

Jump threading by value ranges (``pybpf.dsl.ranges``), value-numbered common
subexpressions and chain prefixes (``pybpf.dsl.cse``), spills by region
(``pybpf.dsl.regalloc``). Every program reads its inputs from the packet (so
nothing folds at build time); each test checks the listing for the rewrite and
the results of ``test_run`` against Python on several inputs.
"""

from __future__ import annotations

import re
import struct

import pytest

from pybpf.dsl import UDP, Array, Ethernet, Hash, IPv4, Struct, be32, u8, u32, u64, xdp

pytestmark = pytest.mark.kernel


class In(Struct):
    """Inputs: eight bytes, then two big-endian words."""

    a: u8
    b: u8
    c: u8
    d: u8
    e: u8
    f: u8
    g: u8
    h: u8
    old: be32
    new: be32


def frame(*data: int, old: int = 0, new: int = 0) -> bytes:
    return (bytes(data).ljust(8, b"\0") + struct.pack(">II", old, new)).ljust(64, b"\0")


def insns(prog) -> list[str]:
    """The listing's instructions and labels (``name:``), without source lines."""
    out = []
    for line in prog.listing().splitlines():
        text = line.strip()
        if text[:1].isdigit():
            out.append(text.split(":", 1)[1].strip())
        elif text.endswith(":") and not text.startswith(";"):
            out.append(text)
    return out


def target(lines: list[str], pattern: str) -> str:
    """The label the one jump matching ``pattern`` (a regex) goes to."""
    found = [line for line in lines if re.fullmatch(pattern + r" goto (\S+)", line)]
    assert len(found) == 1, (pattern, lines)
    return found[0].rsplit(" ", 1)[1]


def label_before(lines: list[str], pattern: str) -> str:
    """The label right before the instruction matching ``pattern``."""
    i = next(i for i, line in enumerate(lines) if re.fullmatch(pattern, line))
    assert lines[i - 1].endswith(":"), lines
    return lines[i - 1][:-1]


# -- jump threading --------------------------------------------------------------------------

@xdp
def threaded(p):
    w = p.packet.header(In)
    x = w.a.cast(u32)
    r = p.var(u32, 1)
    with p.if_(x == 6):
        with p.if_(w.b == 1):
            r.set(10)
    with p.if_(x == 17):   # where x == 6 holds, known false: the inner test skips it
        r.set(r + 100)
    p.return_(r + w.c)


def test_an_edge_whose_state_decides_the_next_test_skips_it():
    lines = insns(threaded)
    # the b test (inside x == 6) goes where ``if x != 17`` would lead: past the + 100
    assert target(lines, r"if w\d != 1") == target(lines, r"if w\d != 17"), lines
    with threaded.load() as loaded:
        for a in (0, 5, 6, 7, 17, 255):
            for b in (0, 1, 2):
                got = loaded.test_run(frame(a, b, 3)).retval
                want = (10 if a == 6 and b == 1 else 1) + (100 if a == 17 else 0) + 3
                assert got == want, (a, b, "\n".join(lines))


@xdp
def not_threaded(p):
    w = p.packet.header(In)
    x = w.a.cast(u32)
    r = p.var(u32, 1)
    with p.if_(x < 10):
        with p.if_(w.b == 1):
            r.set(10)
    with p.if_(x == 7):    # x < 10 does not decide x == 7: the test stays on that path
        r.set(r + 100)
    p.return_(r + w.c)


def test_an_edge_whose_state_does_not_decide_the_test_still_reaches_it():
    lines = insns(not_threaded)
    before = label_before(lines, r"if w\d != 7 goto \S+")
    assert target(lines, r"if w\d != 1") == before, lines
    # the other edge into that test (x >= 10) decides it: it goes past the + 100
    assert target(lines, r"if w\d >= 10") == target(lines, r"if w\d != 7"), lines
    with not_threaded.load() as loaded:
        for a in (0, 6, 7, 9, 10, 11, 200):
            for b in (0, 1):
                got = loaded.test_run(frame(a, b, 5)).retval
                want = (10 if a < 10 and b == 1 else 1) + (100 if a == 7 else 0) + 5
                assert got == want, (a, b, "\n".join(lines))


class Entry(Struct):
    n: u32


flows = Hash(u32, Entry, max_entries=8)


@xdp
def lookup_then_test(p):
    w = p.packet.header(In)
    proto = w.a.cast(u32)
    b = w.b.cast(u32)
    key = p.stack(u32, b)
    with p.if_(proto == 6):
        with flows.lookup(key) as hit:
            p.return_(hit.n)
    with p.if_(proto == 17):   # known false after a failed lookup inside proto == 6
        p.return_(1000 + b)
    p.return_(2000 + proto)


def test_a_failed_lookup_skips_the_test_it_decides():
    lines = insns(lookup_then_test)
    assert target(lines, r"if r0 == 0") == target(lines, r"if w\d != 17"), lines
    with lookup_then_test.load() as loaded:
        loaded["flows"][4] = Entry(44)
        for a, b, want in ((6, 4, 44), (6, 5, 2006), (17, 4, 1004), (17, 9, 1009),
                           (1, 4, 2001), (16, 4, 2016)):
            got = loaded.test_run(frame(a, b)).retval
            assert got == want, (a, b, "\n".join(lines))


# -- common subexpressions -----------------------------------------------------------------

def _halves(p, word):
    """Both 16-bit halves of a word in host order, the high one complemented."""
    h = word.host()
    return (h & 0xFFFF) + (~h >> 16)


@xdp
def numbered(p):
    w = p.packet.header(In)
    s1 = _halves(p, w.old)
    with p.if_(w.a == 1):
        p.return_(s1)
    s2 = _halves(p, w.old)   # the same load, then the same chain read through its renames
    t = _halves(p, w.new)    # a different word: computed again
    p.return_(s1 * 3 + (s2 ^ w.b) + t)


def _py_halves(word: int) -> int:
    return (word & 0xFFFF) + ((~word & 0xFFFFFFFF) >> 16)


def test_a_repeated_expression_is_computed_once():
    lines = insns(numbered)
    assert sum(line.startswith("r") and "= be32 r" in line for line in lines) == 2, lines
    assert sum(line.endswith("^= -1") for line in lines) == 2, lines
    assert sum(line.endswith(">>= 16") for line in lines) == 2, lines
    with numbered.load() as loaded:
        for a, b, old, new in ((1, 0, 0x12345678, 0), (0, 0, 0x12345678, 0x9ABCDEF0),
                               (0, 0x5A, 0xFFFFFFFF, 1), (2, 7, 0, 0xFFFF0000)):
            got = loaded.test_run(frame(a, b, old=old, new=new)).retval
            s = _py_halves(old)
            want = s if a == 1 else (s * 3 + (s ^ b) + _py_halves(new)) & 0xFFFFFFFF
            assert got == want, (a, b, hex(old), hex(new), "\n".join(lines))


@xdp
def after_options(p):
    eth = p.packet.header(Ethernet)                  # data + 14 checked against data_end
    ip = p.packet.header(IPv4, after=eth)
    udp = p.packet.header(UDP, after=ip)             # data + 14 + ihl*4: starts from data + 14
    start = p.var(u32, 14 + ip.header_length + 8)    # 14 + ihl*4 again: from ihl*4
    p.return_(start * 256 + udp.len.host())


def _ipv4_udp(ihl: int, udp_len: int) -> bytes:
    eth = b"\xff" * 12 + b"\x08\x00"
    ip = bytes([0x40 | ihl]) + bytes(4 * ihl - 1)
    udp = struct.pack(">HHHH", 1, 2, udp_len, 0)
    return (eth + ip + udp).ljust(128, b"\0")


def test_a_chain_starts_from_the_longest_prefix_computed():
    lines = insns(after_options)
    assert sum(line.endswith("+= 14") for line in lines) == 1, lines   # data + 14 once
    assert sum(line.endswith("&= 15") for line in lines) == 1, lines   # ihl once
    assert sum(line.endswith("<<= 2") for line in lines) == 1, lines
    with after_options.load() as loaded:
        for ihl, udp_len in ((5, 8), (5, 0x1234), (6, 77), (15, 0xFFFF)):
            got = loaded.test_run(_ipv4_udp(ihl, udp_len)).retval
            assert got == (14 + 4 * ihl + 8) * 256 + udp_len, (ihl, "\n".join(lines))


# -- spills by region ------------------------------------------------------------------------

weights = Array(u32, Entry, max_entries=4)


@xdp
def crowded(p):
    w = p.packet.header(In)
    vals = [getattr(w, n).cast(u64) * (k + 3) for k, n in enumerate("abcdefg")]
    mix = p.var(u64, vals[0])
    for v in vals[1:]:
        mix ^= v                         # every value read before the first call
    total = p.var(u64, mix)
    for k in range(3):                   # three helper calls with eight values live across
        with weights.lookup(p.const(k, u32)) as e:
            total += e.n * (vals[0] + vals[1] + vals[2]) + k
    for k, v in enumerate(vals):         # vals[3:] are read once more, at the end
        total += v << k
    p.return_(total)


def _regions(lines: list[str]) -> list[list[str]]:
    """The listing cut after each label, jump, exit and call (a spilled value's regions)."""
    out, cur = [], []
    for line in lines:
        if line.endswith(":"):
            out.append(cur)
            cur = []
            continue
        cur.append(line)
        if line.startswith(("if ", "goto", "call", "exit")):
            out.append(cur)
            cur = []
    return [r for r in out + [cur] if r]


def test_spilled_values_stay_in_registers_within_a_region():
    lines = insns(crowded)
    slot = re.compile(r"\*\(u64 \*\)\(r10 - (\d+)\)")
    stores = [line for line in lines if re.match(slot.pattern + " = r", line)]
    assert stores, lines   # more values live across the calls than r6-r9 hold
    regions = _regions(lines)
    first_call = next(i for i, r in enumerate(regions) if r[-1].startswith("call"))
    for i, region in enumerate(regions):
        loads = [m.group(1) for line in region if (m := re.search("= " + slot.pattern, line))]
        # no reload before the first call: every value is still in the register it was made in
        assert not loads or i > first_call, (region, lines)
        # at most one load of a slot per region; the next uses read its register
        assert len(loads) == len(set(loads)), (region, lines)
        stored = [m.group(1) for line in region
                  if (m := re.match(slot.pattern + " = r", line))]
        assert len(stored) == len(set(stored)), (region, lines)
    # r6-r9 keep what every region reads (total, vals[0:3]); the four values read
    # only at the end are the ones spilled: one store and one load each
    assert len(stores) == 4, lines
    assert sum(bool(slot.search(line)) for line in lines) == 8, lines
    with crowded.load() as loaded:
        for k, n in enumerate((3, 0, 1000)):
            loaded["weights"][k] = Entry(n)
        for data in ((1, 2, 3, 4, 5, 6, 7), (255,) * 7, (0,) * 7, (9, 0, 200, 17, 1, 128, 64)):
            vals = [x * (k + 3) for k, x in enumerate(data)]
            mix = 0
            for v in vals:
                mix ^= v
            total = mix + sum(n * (vals[0] + vals[1] + vals[2]) + k
                              for k, n in enumerate((3, 0, 1000)))
            total += sum(v << k for k, v in enumerate(vals))
            got = loaded.test_run(frame(*data)).retval
            assert got == total & 0xFFFFFFFF, (data, "\n".join(lines))
