"""TC through TCX links and through clsact + cls_bpf, on a veth in a sandbox namespace."""

import kit
import pytest

from pybpf.syscall._uapi import ProgType
from pybpf.syscall.attach.tc import attach_tc, query_tc
from pybpf.syscall.links import AttachError

pytestmark = pytest.mark.kernel
TC_ACT_OK, TC_ACT_SHOT, TCX_NEXT = 0, 2, -1


def _qdiscs(ns, ifname):
    return ns.check_output(["tc", "qdisc", "show", "dev", ifname])


@pytest.mark.parametrize("mechanism", ["link", "netlink"])
@pytest.mark.parametrize("side", ["ingress", "egress"])
def test_drop_counts_and_detach_restores(udp, counter, mechanism, side):
    end = udp.right if side == "ingress" else udp.left
    drop = kit.counter_prog(ProgType.SCHED_CLS, counter, TC_ACT_SHOT)
    with end.ns.entered():
        att = attach_tc(drop, end.ifname, side, mechanism=mechanism)
    assert udp.exchange(5) == 0
    assert counter.u64() >= 5
    att.detach()
    assert udp.exchange(5) == 5
    assert "clsact" not in _qdiscs(end.ns, end.ifname)


@pytest.mark.parametrize("mechanism", ["link", "netlink"])
def test_update_swaps_program(udp, counter, mechanism):
    right = udp.right
    drop = kit.counter_prog(ProgType.SCHED_CLS, counter, TC_ACT_SHOT)
    allow = kit.counter_prog(ProgType.SCHED_CLS, counter, TC_ACT_OK)
    with right.ns.entered(), attach_tc(drop, right.ifname, mechanism=mechanism) as att:
        assert udp.exchange(3) == 0
        att.update(allow)
        assert udp.exchange(3) == 3


def test_tcx_anchors_order_programs(udp):
    right = udp.right
    maps = [kit.counter_map() for _ in range(3)]
    progs = [kit.counter_prog(ProgType.SCHED_CLS, m, TCX_NEXT) for m in maps]
    ids = [kit_id(p) for p in progs]
    with right.ns.entered():
        middle = attach_tc(progs[1], right.ifname, mechanism="link")
        first = attach_tc(progs[0], right.ifname, mechanism="link", before=middle)
        last = attach_tc(progs[2], right.ifname, mechanism="link", after=progs[1])
        q = query_tc(right.ifname)
    assert q["prog_ids"] == ids
    assert len(q["link_ids"]) == 3
    assert udp.exchange(3) == 3
    assert all(m.u64() >= 3 for m in maps)
    for att in (first, middle, last):
        att.detach()
    with right.ns.entered():
        assert query_tc(right.ifname)["prog_ids"] == []


def kit_id(prog):
    from pybpf.syscall.objects import get_info
    return get_info(prog.fd, "struct bpf_prog_info").id


def test_cls_bpf_keeps_a_clsact_it_did_not_add(udp, counter):
    right = udp.right
    with right.ns.ipr() as ipr:  # "someone else" made the clsact qdisc
        ipr.tc("add", "clsact", right.ifindex)
    drop = kit.counter_prog(ProgType.SCHED_CLS, counter, TC_ACT_SHOT)
    with right.ns.entered():
        att = attach_tc(drop, right.ifname, mechanism="netlink", priority=7)
    assert "pref 7 bpf" in right.ns.check_output(
        ["tc", "filter", "show", "dev", right.ifname, "ingress"])
    assert udp.exchange(3) == 0
    att.detach()
    assert udp.exchange(3) == 3
    assert "clsact" in _qdiscs(right.ns, right.ifname)
    assert right.ns.check_output(["tc", "filter", "show", "dev", right.ifname, "ingress"]) == ""


def test_cls_bpf_keeps_qdisc_while_another_filter_uses_it(udp, counter):
    right = udp.right
    a = kit.counter_prog(ProgType.SCHED_CLS, counter, TC_ACT_OK)
    with right.ns.entered():
        first = attach_tc(a, right.ifname, mechanism="netlink", priority=1)
        second = attach_tc(a, right.ifname, mechanism="netlink", priority=2)
    first.detach()
    assert "clsact" in _qdiscs(right.ns, right.ifname)
    second.detach()
    assert "clsact" not in _qdiscs(right.ns, right.ifname)


def test_anchors_need_links(pair, counter):
    _, right = pair
    p = kit.counter_prog(ProgType.SCHED_CLS, counter, 0)
    with right.ns.entered(), pytest.raises(AttachError, match="TCX"):
        attach_tc(p, right.ifname, mechanism="netlink", first=True)


def test_wrong_program_type_and_direction(pair, counter):
    _, right = pair
    p = kit.counter_prog(ProgType.XDP, counter, 2)
    with right.ns.entered():
        with pytest.raises(AttachError, match="BPF_PROG_TYPE_SCHED_CLS"):
            attach_tc(p, right.ifname)
        with pytest.raises(AttachError, match="direction"):
            attach_tc(p, right.ifname, "sideways")


def test_keep_leaves_filter_and_qdisc(udp, counter):
    right = udp.right
    drop = kit.counter_prog(ProgType.SCHED_CLS, counter, TC_ACT_SHOT)
    with right.ns.entered():
        att = attach_tc(drop, right.ifname, mechanism="netlink")
    att.keep()
    att.detach()
    assert udp.exchange(2) == 0
    assert "clsact" in _qdiscs(right.ns, right.ifname)
    with right.ns.ipr() as ipr:
        ipr.tc("del", "clsact", right.ifindex)
    assert udp.exchange(2) == 2
