"""Feature probes and the doctor report."""

import gzip

import pytest

from pybpf.syscall import HelperId, MapType, ProgType, probes
from pybpf.syscall.doctor import report

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("no_leaks")]


def kernel_config(option: str) -> bool:
    with gzip.open("/proc/config.gz", "rt") as f:
        return any(line.strip() == f"{option}=y" for line in f)


def test_program_and_map_types():
    assert probes.prog_type(ProgType.XDP).supported is True
    assert probes.prog_type(ProgType.XDP).since == "4.8"
    assert probes.prog_type(ProgType.SYSCALL).supported is True
    assert probes.map_type(MapType.RINGBUF).supported is True
    assert probes.map_type(MapType.RINGBUF).since == "5.8"
    assert probes.prog_type(ProgType.XDP) is probes.prog_type(ProgType.XDP)  # cached


@pytest.mark.parametrize("mtype, since", [
    (MapType.ARRAY_OF_MAPS, "4.12"), (MapType.HASH_OF_MAPS, "4.12"),   # with an inner map
    (MapType.SK_STORAGE, "5.2"), (MapType.INODE_STORAGE, "5.10"),     # with BTF for key/value
    (MapType.TASK_STORAGE, "5.11"), (MapType.CGRP_STORAGE, "6.2"),
    (MapType.STRUCT_OPS, "5.6"),                                       # ENOTSUPP: type known
])
def test_map_types_that_need_an_inner_map_or_btf_are_probed(mtype, since):
    if mtype == MapType.INODE_STORAGE and not kernel_config("CONFIG_BPF_LSM"):
        pytest.skip("inode storage needs CONFIG_BPF_LSM")
    probe = probes.map_type(mtype)
    assert (probe.supported, probe.since) == (True, since), probe


def test_every_map_type_this_kernel_knows_is_decided():
    undecided = [str(probes.map_type(t)) for t in MapType
                 if t.value and probes.map_type(t).supported is None
                 and t not in (MapType.INSN_ARRAY, MapType.RHASH)]   # not in the probe table
    assert undecided == []


def test_helpers():
    lookup = probes.helper(ProgType.XDP, HelperId.map_lookup_elem)
    assert lookup.supported is True and lookup.since == "3.19"
    assert probes.helper(ProgType.XDP, HelperId.xdp_adjust_head).since == "4.10"
    assert probes.helper(ProgType.SOCKET_FILTER, HelperId.xdp_adjust_head).supported is False


def test_helper_versions_follow_the_table():
    assert probes.helper_since(HelperId.ringbuf_output) == ("5.8", "")
    assert probes.helper_since(HelperId.skc_to_mptcp_sock) == ("5.19", "")  # doc misspells it
    # Every helper this uapi knows has a release, and releases grow with ids up to one
    # merge window (helpers from parallel trees: xdp_output, id 121, is 5.6, id 120 is 5.7).
    since = {h: probes.helper_since(h)[0] for h in HelperId if h}
    assert "?" not in since.values()

    def release(h):
        return tuple(map(int, since[h].split(".")))
    ids = sorted(since)
    newest = release(ids[0])
    for h in ids:
        assert release(h) >= (newest[0], newest[1] - 1) or release(h)[0] > newest[0], h
        newest = max(newest, release(h))


def test_isa_and_features():
    assert all(p.supported for p in probes.isa())  # 6.18 has ISA v4
    names = {p.name: p for p in probes.features()}
    assert names["map batch ops"].supported and names["log_true_size"].supported
    assert names["log_true_size"].since == "6.4"


def test_link_kinds():
    links = {p.name.removeprefix("link "): p for p in probes.links()}
    for kind in ("cgroup", "netns (flow_dissector)", "netns (sk_lookup)", "perf_event",
                 "netfilter", "tcx", "sockmap", "iter"):
        assert links[kind].supported is True, links[kind]
    assert links["tcx"].since == "6.6" and links["sockmap"].since == "6.10"
    # Without CONFIG_NETKIT, netkit_link_attach is a stub answering EINVAL.
    assert links["netkit"].supported is kernel_config("CONFIG_NETKIT")
    assert links["xdp"].supported is None and "not probed" in links["xdp"].detail
    assert probes.link_kind("tcx") is links["tcx"]  # cached
    with pytest.raises(ValueError, match="unknown link kind 'nope'"):
        probes.link_kind("nope")


def test_doctor_report():
    text = report()
    assert "kernel " in text and "kernel BTF      yes" in text
    assert "CAP_BPF=yes" in text and "bpffs" in text and "cgroup v2" in text
    assert "prog_type xdp" in text and "since 4.8" in text
    assert "link tcx" in text and "since 6.6" in text
