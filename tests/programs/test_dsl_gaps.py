"""DSL core bugs found while writing programs/ (owned by the DSL-core helper).

Each test is the smallest program showing the bug (fixed ones stay as regression tests).
"""

import pytest

from pybpf.dsl import Ethernet, u32, xdp

pytestmark = pytest.mark.kernel


@xdp
def elif_chain(p):
    eth = p.packet.header(Ethernet)
    x = p.var(u32, eth.dst[0])
    r = p.var(u32, 0)
    with p.if_(x == 1):
        x.set(3)
        r.set(10)
    with p.elif_(x == 2):
        r.set(20)
    with p.elif_(x == 3):
        r.set(r + 30)
    p.return_(r)


def test_elif_chain_of_three_runs_one_branch():
    with elif_chain.load() as prog:
        assert prog.test_run(b"\x01" + bytes(13)).retval == 10


@xdp
def many_live(p):
    eth = p.packet.header(Ethernet)
    vs = [p.var(u32, eth.dst[i]) for i in range(6)] + [p.var(u32, eth.src[i]) for i in range(5)]
    total = p.var(u32, 0)
    for v in vs:
        total += v
    for v in vs:
        total += v
    p.return_(total)


def test_eleven_live_values_spill_and_build():
    with many_live.load() as prog:
        assert prog.test_run(bytes(range(1, 15))).retval == 2 * sum(range(1, 12))


def test_field_named_type_or_value_is_not_shadowed():
    """Struct fields named ``type``/``value``/``size`` win over Ptr's own names (ICMP.type)."""
    from pybpf.dsl import ICMP

    @xdp
    def icmp_type(p):
        ic = p.packet.header(ICMP, at=34)
        p.return_(ic.type)

    with icmp_type.load() as prog:
        assert prog.test_run(bytes(34) + b"\x08" + bytes(7)).retval == 8
