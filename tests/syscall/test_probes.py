"""Feature probes and the doctor report."""

import pytest

from pybpf.syscall import HelperId, MapType, ProgType, probes
from pybpf.syscall.doctor import report

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("no_leaks")]


def test_program_and_map_types():
    assert probes.prog_type(ProgType.XDP).supported is True
    assert probes.prog_type(ProgType.XDP).since == "4.8"
    assert probes.prog_type(ProgType.SYSCALL).supported is True
    assert probes.map_type(MapType.RINGBUF).supported is True
    assert probes.map_type(MapType.RINGBUF).since == "5.8"
    assert probes.prog_type(ProgType.XDP) is probes.prog_type(ProgType.XDP)  # cached


def test_helpers():
    assert probes.helper(ProgType.XDP, HelperId.map_lookup_elem).supported is True
    assert probes.helper(ProgType.SOCKET_FILTER, HelperId.xdp_adjust_head).supported is False


def test_isa_and_features():
    assert all(p.supported for p in probes.isa())  # 6.18 has ISA v4
    names = {p.name: p for p in probes.features()}
    assert names["map batch ops"].supported and names["log_true_size"].supported
    assert names["log_true_size"].since == "6.4"


def test_doctor_report():
    text = report()
    assert "kernel " in text and "kernel BTF      yes" in text
    assert "CAP_BPF=yes" in text and "bpffs" in text and "cgroup v2" in text
    assert "prog_type xdp" in text and "since 4.8" in text
