"""Ring buffer reader: every record once, in order, decoded; discards skipped; several rings."""

import time

import kit
import pytest
from records import PACKET, Record

from pybpf.syscall._uapi import MapType
from pybpf.syscall.events import RingBuffer, RingBufferGroup
from pybpf.syscall.testrun import test_run as run_prog

pytestmark = pytest.mark.kernel


@pytest.fixture
def ring():
    seq = kit.counter_map()
    ring_map = kit.Map(MapType.RINGBUF, 0, 0, 1 << 20)
    yield seq, ring_map, kit.ringbuf_producer(seq, ring_map)
    ring_map.close()
    seq.close()


def _check(seqs_and_x3, n):
    assert [s for s, _ in seqs_and_x3] == list(range(n))
    assert all(x == 3 * s for s, x in seqs_and_x3)


@pytest.mark.parametrize("mode", ["objects", "tuples", "bytes"])
def test_n_events_arrive_once_in_order(ring, mode):
    _, ring_map, prog = ring
    decode = None if mode == "bytes" else Record
    with RingBuffer(ring_map, decode=decode, tuples=mode == "tuples") as rb:
        n = 5000
        run_prog(prog, PACKET, repeat=n)
        got = rb.poll(timeout=1)
        assert rb.poll(timeout=0.05) == []  # nothing twice
    assert len(got) == n
    if mode == "objects":
        assert all(r.magic == kit.MAGIC for r in got)
        _check([(r.seq, r.seq_x3) for r in got], n)
    elif mode == "tuples":
        _check([(t[0], t[3]) for t in got], n)
    else:
        rows = [Record.unpack(b) for b in got]
        assert all(len(b) == kit.RECORD_SIZE for b in got)
        _check([(r.seq, r.seq_x3) for r in rows], n)


def test_discarded_records_are_skipped():
    seq = kit.counter_map()
    ring_map = kit.Map(MapType.RINGBUF, 0, 0, 1 << 16)
    prog = kit.ringbuf_producer(seq, ring_map, discard_every=4)
    with RingBuffer(ring_map, decode=Record) as rb:
        run_prog(prog, PACKET, repeat=40)
        got = [r.seq for r in rb.poll(1)]
    assert got == [i for i in range(40) if i % 4]


def test_batches_across_many_wakeups(ring):
    _, ring_map, prog = ring
    rb = RingBuffer(ring_map, decode=Record, tuples=True)
    seen = []
    for _ in range(20):
        run_prog(prog, PACKET, repeat=1000)
        seen.extend(t[0] for t in rb.poll(1))
    assert seen == list(range(20000))
    rb.close()


def test_limit_and_consume_callback(ring):
    _, ring_map, prog = ring
    with RingBuffer(ring_map, decode=Record) as rb:
        run_prog(prog, PACKET, repeat=10)
        first = rb.drain(limit=4)
        rest = []
        assert rb.consume(rest.append) == 6
    assert [r.seq for r in first + rest] == list(range(10))


def test_iteration_waits_for_records(ring):
    _, ring_map, prog = ring
    with RingBuffer(ring_map, decode=Record) as rb:
        run_prog(prog, PACKET, repeat=3)
        seqs = []
        for record in rb:
            seqs.append(record.seq)
            if len(seqs) == 3:
                break
    assert seqs == [0, 1, 2]


def test_poll_times_out_when_empty(ring):
    _, ring_map, _ = ring
    with RingBuffer(ring_map) as rb:
        start = time.monotonic()
        assert rb.poll(timeout=0.2) == []
        assert 0.15 < time.monotonic() - start < 2


def test_several_ring_buffers_in_one_poll():
    seqs = [kit.counter_map(), kit.counter_map()]
    maps = [kit.Map(MapType.RINGBUF, 0, 0, 1 << 16) for _ in range(2)]
    progs = [kit.ringbuf_producer(s, m) for s, m in zip(seqs, maps, strict=True)]
    rings = [RingBuffer(m, decode=Record) for m in maps]
    got = {0: [], 1: []}
    with RingBufferGroup(*rings) as group:
        run_prog(progs[0], PACKET, repeat=5)
        run_prog(progs[1], PACKET, repeat=7)
        while len(got[0]) + len(got[1]) < 12:
            assert group.poll(1, lambda ring, rec: got[rings.index(ring)].append(rec.seq))
        assert group.poll(0.05) == 0
    assert got == {0: list(range(5)), 1: list(range(7))}
    for r in rings:
        r.close()


def test_not_a_ringbuf():
    from pybpf.errors import PyBPFError

    m = kit.counter_map()
    with pytest.raises(PyBPFError, match="not a BPF_MAP_TYPE_RINGBUF"):
        RingBuffer(m)
