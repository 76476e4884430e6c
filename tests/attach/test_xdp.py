"""XDP through bpf_link and through netlink, on a veth in a sandbox namespace."""

import errno

import kit
import pytest

from pybpf.errors import BPFError
from pybpf.syscall._uapi import ProgType
from pybpf.syscall.attach.xdp import attach_xdp, query_xdp
from pybpf.syscall.links import AttachError

pytestmark = pytest.mark.kernel
XDP_DROP, XDP_PASS = 1, 2


@pytest.mark.parametrize("mechanism", ["link", "netlink"])
@pytest.mark.parametrize("mode", [None, "skb"])
def test_drop_counts_and_detach_restores(udp, counter, mechanism, mode):
    right = udp.right
    drop = kit.counter_prog(ProgType.XDP, counter, XDP_DROP)
    with right.ns.entered():
        att = attach_xdp(drop, right.ifname, mechanism=mechanism, mode=mode)
        assert query_xdp(right.ifname) == {mode or "driver": att.info().prog_id}
    assert att.mechanism == mechanism
    assert udp.exchange(5) == 0
    assert counter.u64() >= 5
    att.detach()
    with right.ns.entered():
        assert query_xdp(right.ifname) == {}
    assert udp.exchange(5) == 5
    att.detach()  # idempotent


@pytest.mark.parametrize("mechanism", ["link", "netlink"])
def test_update_swaps_program(udp, counter, mechanism):
    right = udp.right
    drop = kit.counter_prog(ProgType.XDP, counter, XDP_DROP)
    allow = kit.counter_prog(ProgType.XDP, counter, XDP_PASS)
    with right.ns.entered():
        with attach_xdp(drop, right.ifname, mechanism=mechanism) as att:
            assert udp.exchange(3) == 0
            att.update(allow)
            assert udp.exchange(3) == 3
            assert query_xdp(right.ifname)["driver"] == att.info().prog_id
        assert query_xdp(right.ifname) == {}


def test_link_info_names_interface(pair, counter):
    _, right = pair
    prog = kit.counter_prog(ProgType.XDP, counter, XDP_PASS)
    with right.ns.entered(), attach_xdp(prog, right.ifname, mechanism="link") as att:
        info = att.info()
    assert info.target == {"ifindex": right.ifindex}
    assert info.link_id and info.link_type.name == "XDP"


def test_netlink_does_not_overwrite_without_replace(pair, counter):
    _, right = pair
    a = kit.counter_prog(ProgType.XDP, counter, XDP_PASS)
    b = kit.counter_prog(ProgType.XDP, counter, XDP_PASS)
    with right.ns.entered():
        with attach_xdp(a, right.ifname, mechanism="netlink"):
            with pytest.raises(BPFError) as info:
                attach_xdp(b, right.ifname, mechanism="netlink")
            assert info.value.errno in (errno.EEXIST, errno.EBUSY)
            with attach_xdp(b, right.ifname, mechanism="netlink", replace=True) as att_b:
                assert query_xdp(right.ifname)["driver"] == att_b.info().prog_id


def test_link_refuses_when_netlink_program_present(pair, counter):
    _, right = pair
    prog = kit.counter_prog(ProgType.XDP, counter, XDP_PASS)
    with right.ns.entered(), attach_xdp(prog, right.ifname, mechanism="netlink"):
        with pytest.raises(BPFError):
            attach_xdp(prog, right.ifname, mechanism="link")


def test_wrong_program_type_is_named(pair, counter):
    _, right = pair
    prog = kit.counter_prog(ProgType.SCHED_CLS, counter, 0)
    with right.ns.entered(), pytest.raises(AttachError, match="SCHED_CLS.*BPF_PROG_TYPE_XDP"):
        attach_xdp(prog, right.ifname)


def test_missing_interface_is_named(counter):
    prog = kit.counter_prog(ProgType.XDP, counter, XDP_PASS)
    with pytest.raises(AttachError, match="no network interface 'nonexistent0'"):
        attach_xdp(prog, "nonexistent0")


def test_bad_mode_and_mechanism(pair, counter):
    _, right = pair
    prog = kit.counter_prog(ProgType.XDP, counter, XDP_PASS)
    with right.ns.entered():
        with pytest.raises(AttachError, match="mode"):
            attach_xdp(prog, right.ifname, mode="turbo")
        with pytest.raises(AttachError, match="mechanism"):
            attach_xdp(prog, right.ifname, mechanism="ioctl")


def test_keep_leaves_netlink_program_until_removed_by_hand(pair, counter):
    _, right = pair
    prog = kit.counter_prog(ProgType.XDP, counter, XDP_PASS)
    with right.ns.entered():
        att = attach_xdp(prog, right.ifname, mechanism="netlink")
        att.keep()
        att.detach()  # a kept attachment is no longer pybpf's to remove
        assert "driver" in query_xdp(right.ifname)
    with right.ns.ipr() as ipr:
        ipr.link("set", index=right.ifindex, xdp_fd=-1)
    with right.ns.entered():
        assert query_xdp(right.ifname) == {}


def test_links_cannot_be_kept(pair, counter):
    _, right = pair
    prog = kit.counter_prog(ProgType.XDP, counter, XDP_PASS)
    with right.ns.entered(), attach_xdp(prog, right.ifname, mechanism="link") as att:
        with pytest.raises(AttachError, match="pin"):
            att.keep()
