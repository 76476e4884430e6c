"""Perf event array reader: per-CPU buffers, order per CPU, lost-record counts."""

import os

import kit
import pytest
from records import PACKET, Record

from pybpf.syscall._uapi import MapType
from pybpf.syscall.perf import PerfBuffer, online_cpus
from pybpf.syscall.testrun import test_run as run_prog

pytestmark = pytest.mark.kernel


@pytest.fixture
def on_cpu0():
    """Run the test pinned to CPU 0 so test_run's program fires there."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    yield
    os.sched_setaffinity(0, before)


@pytest.fixture
def producer():
    seq = kit.counter_map()
    perf = kit.Map(MapType.PERF_EVENT_ARRAY, 4, 4, len(online_cpus()))
    yield perf, kit.perf_producer(seq, perf)
    perf.close()
    seq.close()


@pytest.mark.parametrize("tuples", [False, True])
def test_n_events_arrive_once_in_order(on_cpu0, producer, tuples):
    perf, prog = producer
    with PerfBuffer(perf, decode=Record, tuples=tuples, pages=256) as pb:
        assert len(pb.rings) == len(online_cpus())
        run_prog(prog, PACKET, repeat=3000)
        got = pb.poll(1)
        assert pb.poll(0.05) == []
        assert pb.lost == 0
    assert {cpu for cpu, _ in got} == {0}
    rows = [r if tuples else (r.seq, r.cpu, r.magic, r.seq_x3) for _, r in got]
    assert [r[0] for r in rows] == list(range(3000))
    assert all(r[1] == 0 and r[2] == kit.MAGIC and r[3] == 3 * r[0] for r in rows)


def test_raw_bytes_and_callback(on_cpu0, producer):
    perf, prog = producer
    with PerfBuffer(perf) as pb:
        run_prog(prog, PACKET, repeat=4)
        seen = []
        pb.poll(1)  # wait for the wake-up, then read again with a callback
        run_prog(prog, PACKET, repeat=2)
        assert pb.consume(lambda cpu, raw: seen.append(Record.unpack(raw).seq)) == 2
    assert seen == [4, 5]


def test_overflow_reports_lost_records(on_cpu0, producer):
    perf, prog = producer
    with PerfBuffer(perf, decode=Record, pages=1) as pb:
        run_prog(prog, PACKET, repeat=1000)
        kept = pb.drain()
        run_prog(prog, PACKET, repeat=1)  # the kernel reports the loss with its next record
        later = pb.drain()
        assert len(kept) < 1000
        assert pb.lost == 1000 - len(kept)
    assert [r.seq for _, r in kept] == list(range(len(kept)))
    assert [r.seq for _, r in later] == [1000]


def test_pages_must_be_power_of_two(producer):
    with pytest.raises(ValueError, match="power of two"):
        PerfBuffer(producer[0], pages=3)
