"""Peepholes on allocated code (pybpf.dsl.optimize), checked in the kernel with test_run.

Each program reads its inputs from the packet (so nothing folds at build time),
runs the pattern the peephole rewrites, and returns the result; Python computes
the same from the same bytes, and the listing shows the rewrite happened.
"""

from __future__ import annotations

import struct

import pytest

from pybpf.dsl import XDP_PASS, Struct, u8, u16, u32, u64, xdp
from pybpf.types import be16

pytestmark = pytest.mark.kernel


class Words(Struct):
    """Inputs: a 16-bit checksum and two 32-bit words, all in host order."""

    csum: u16
    pad: u16
    old: u32
    new: u32
    b0: u8
    b1: u8


def _fold(p, s):
    return (s & 0xFFFF) + (s >> 16)


@xdp
def csum_chain(p):
    w = p.packet.header(Words)
    # RFC 1624 twice (HC' = ~(~HC + ~m + m')), the second undoing the first's complement
    s = (~w.csum.cast(u32) & 0xFFFF) + (~w.old & 0xFFFF) + (~w.old >> 16) \
        + (w.new & 0xFFFF) + (w.new >> 16)
    s = _fold(p, _fold(p, s))
    once = ~s & 0xFFFF
    s2 = (~once & 0xFFFF) + (w.old & 0xFFFF) + (w.old >> 16)
    s2 = _fold(p, _fold(p, s2))
    p.return_((~s2 & 0xFFFF).net(16))   # the mask folds into the be16


def _python(csum: int, old: int, new: int) -> int:
    def fold(s):
        return (s & 0xFFFF) + (s >> 16)
    s = (~csum & 0xFFFF) + (~old & 0xFFFF) + ((~old & 0xFFFFFFFF) >> 16) + (new & 0xFFFF) + (new >> 16)
    once = ~fold(fold(s)) & 0xFFFF
    s2 = (~once & 0xFFFF) + (old & 0xFFFF) + (old >> 16)
    out = ~fold(fold(s2)) & 0xFFFF
    return int.from_bytes(out.to_bytes(2, "big"), "little")


@xdp
def stack_bytes(p):
    w = p.packet.header(Words)
    key = p.stack(Words, b0=6, b1=0)   # two u8 store-immediates side by side: one u16 store
    key.old = w.old
    p.return_(key.b0.cast(u32) + key.b1.cast(u32) * 256 + key.old)


def frame(csum: int, old: int, new: int) -> bytes:
    return struct.pack("<HHII", csum, 0, old, new).ljust(64, b"\0")


CASES = [(0, 0, 0), (0xFFFF, 0xFFFFFFFF, 0), (0x1234, 0x0A000002, 0x0A000009),
         (0xB1E6, 0xC0A80001, 0x7F000001), (1, 0xFFFF0000, 0x0000FFFF)]


def test_checksum_masks_fold_into_the_byte_swap():
    listing = csum_chain.listing()
    with csum_chain.load() as loaded:
        for csum, old, new in CASES:
            got = loaded.test_run(frame(csum, old, new)).retval
            assert got == _python(csum, old, new), f"{(csum, old, new)}\n{listing}"
    lines = [line.split(":", 1)[1].strip() for line in listing.splitlines()
             if line.strip()[:1].isdigit()]
    swap = next(i for i, line in enumerate(lines) if "be16" in line)
    # the last fold and the complement before the swap keep no mask (clang's shape)
    assert lines[swap - 1].endswith("^= -1"), listing
    assert not any(line.endswith("&= 65535") for line in lines[swap - 6:swap]), listing
    # ~once & 0xffff right after once = ~s & 0xffff: the two complements cancel, and
    # ~old is computed once for its low and high halves (CSE): ~old, the last ~; the
    # 16-bit csum has no bits above 0xffff, so ~csum & 0xffff is csum ^ 0xffff
    assert sum(line.endswith("^= -1") for line in lines) == 2, listing
    assert sum(line.endswith("^= 65535") for line in lines) == 1, listing


def test_adjacent_stack_byte_stores_merge():
    listing = stack_bytes.listing()
    assert "*(u16 *)(r10 - " in listing and "= 6" in listing, listing
    with stack_bytes.load() as loaded:
        got = loaded.test_run(frame(0, 0x01020304, 0)).retval
    assert got == 6 + 0x01020304


@xdp
def membership(p):
    w = p.packet.header(Words)
    x = w.b0.cast(u32)
    hit = p.var(u32, 0)
    with p.if_((x == 0) | (x == 43) | (x == 60)):   # form A: ... if x != 60 goto miss
        hit.set(1)
    with p.if_((x == 1) | (x == 2) | (x == 63) | (x == 44)):
        hit.set(hit + 2)
    p.return_(hit)


def test_equality_chains_become_one_bit_test():
    listing = membership.listing()
    assert listing.count(" ll") == 2 and listing.count(" >>= r") == 2, listing
    with membership.load() as loaded:
        for x in (*range(70), 127, 128, 191, 255):
            data = struct.pack("<HHIIB", 0, 0, 0, 0, x).ljust(64, b"\0")
            want = (x in (0, 43, 60)) + 2 * (x in (1, 2, 63, 44))
            assert loaded.test_run(data).retval == want, f"x={x}\n{listing}"


# -- masks of bits already known to be zero ---------------------------------------------------

class Halves(Struct):
    """Inputs: a port in network order, a length and a word in host order."""

    port: be16
    len: u16
    word: u32


class Folded(Struct):
    a: u32
    b: u32
    c: u32
    d: u32
    e: u32
    f: u32
    g: u32
    h: u32
    i: u32
    j: u32
    k: u32


@xdp
def complements(p):
    h, out = p.packet.headers(Halves, Folded)
    out.a = ~h.port.host() & 0xFFFF          # be16 zero-extends: ~x & 0xffff is x ^ 0xffff
    out.b = ~h.len & 0xFFFF                  # a u16 load zero-extends
    out.c = ~(h.word >> 16) & 0xFFFF         # a 32-bit >> 16 leaves 16 bits
    out.d = ~(h.word & 0xFF) & 0xFF          # a mask leaves 8
    out.e = ~h.word & 0xFFFF                 # all 32 bits may be set: ~ and & stay
    out.f = ~(h.len + h.len) & 0xFFFF        # 17 bits: ~ and & stay
    out.g = (h.word & 0xF0F0) & 0xFFF0       # the second mask clears nothing left to clear
    # upper 32 bits set in a 64-bit register: the 32-bit ~ clears them all the same
    out.h = ~((h.word.cast(u64) << 32) | h.len).cast(u32) & 0xFFFF
    # be16 moves the low byte up: after it, & 0xff00 clears nothing and & 0xff everything
    swapped = (h.len & 0xFF).net(16).cast(u16)
    out.i = swapped & 0xFF00
    out.j = swapped & 0x00FF
    # a 64-bit << 32 leaves its bits in the upper half, which & 0xffff clears
    out.k = ((h.len.cast(u64) << 32) & 0xFFFF) >> 32
    p.return_(XDP_PASS)


def _complements(port: int, length: int, word: int) -> tuple:
    return (~port & 0xFFFF, ~length & 0xFFFF, ~(word >> 16) & 0xFFFF, ~(word & 0xFF) & 0xFF,
            ~word & 0xFFFF, ~(2 * length) & 0xFFFF, word & 0xF0F0 & 0xFFF0, ~length & 0xFFFF,
            (length & 0xFF) << 8, 0, 0)


def test_masks_of_known_zero_bits_fold():
    listing = complements.listing()
    lines = [line.split(":", 1)[1].strip() for line in listing.splitlines()
             if line.strip()[:1].isdigit()]
    assert sum(line.endswith("^= 65535") for line in lines) == 4, listing   # a, b, c, h
    assert sum(line.endswith("^= 255") for line in lines) == 1, listing     # d
    assert sum(line.endswith("^= -1") for line in lines) == 2, listing      # e, f
    assert sum(line.endswith("&= 65535") for line in lines) == 3, listing   # e, f, k
    assert sum(line.endswith("&= 65520") for line in lines) == 0, listing   # g
    assert sum(line.endswith("&= 65280") for line in lines) == 0, listing   # i
    assert sum(line.endswith("&= 255") for line in lines) == 3, listing     # d, i, j: 0xff
    size = Halves.size + Folded.size
    with complements.load() as loaded:
        for port, length, word in ((0, 0, 0), (0xFFFF, 0xFFFF, 0xFFFFFFFF), (0x1234, 0x8001, 0xDEADBEEF),
                                   (0x00FF, 0x0100, 0x0000F0F0), (0xFF00, 0x7FFF, 0x80000001)):
            data = Halves.pack(Halves(port, length, word)).ljust(size, b"\0")
            run = loaded.test_run(data)
            assert run.retval == XDP_PASS
            got = Folded.unpack(run.data_out[Halves.size:size])
            want = _complements(port, length, word)
            assert tuple(got) == want, f"{(port, length, word)}: {got} != {want}\n{listing}"


@xdp
def lone_mask(p):
    (h,) = p.packet.headers(Halves)
    low = h.len & 0xF0F0
    p.return_(h.len + (low & 0xFFF0))   # the second mask clears only bits already zero


def test_a_lone_mask_of_zero_bits_is_found_by_the_pass_scan():
    """No other fold in the program: optimize's scan alone must ask for the peephole."""
    listing = lone_mask.listing()
    assert "&= 65520" not in listing, listing
    with lone_mask.load() as loaded:
        for length in (0, 0xFFFF, 0x1234):
            data = Halves.pack(Halves(0, length, 0)).ljust(64, b"\0")   # XDP needs 14 bytes
            assert loaded.test_run(data).retval == length + (length & 0xF0F0)
