"""E2BIG from a non-zero tail of union bpf_attr names the attributes the kernel lacks."""

import errno

import pytest

from pybpf.btf.kernel import vmlinux
from pybpf.errors import BPFError
from pybpf.syscall import Cmd, bpf
from pybpf.syscall._ffi import ffi
from pybpf.syscall.attr_tail import ATTR_SIZE, fields_beyond, kernel_attr_size
from pybpf.syscall.bpf import new_attr

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("no_leaks")]


def test_kernel_attr_size_matches_kernel_btf():
    assert kernel_attr_size() == min(vmlinux().union("bpf_attr").size, ATTR_SIZE)


def test_fields_set_beyond_an_older_kernel_are_named():
    attr = new_attr()
    attr.prog_type = 1
    attr.log_true_size = 0  # zero: fine on any kernel
    attr.prog_token_fd = 3
    attr.keyring_id = 1
    older = ffi.offsetof("union bpf_attr", "log_true_size")  # a 6.3-sized union
    assert fields_beyond(Cmd.PROG_LOAD, attr, ATTR_SIZE, older) == ["prog_token_fd",
                                                                     "keyring_id"]
    link = new_attr()
    link.link_create.tcx.expected_revision = 7
    # The kernel cannot tell union members apart: every field over those bytes is named.
    names = " ; ".join(fields_beyond(Cmd.LINK_CREATE, link, ATTR_SIZE, 16))
    assert "link_create.tcx.expected_revision" in names
    assert "link_create.netkit.expected_revision" in names
    assert "link_create.attach_type" not in names
    assert fields_beyond(Cmd.PROG_LOAD, new_attr(), ATTR_SIZE, 16) == []


def test_real_kernel_e2big_names_the_tail():
    size = kernel_attr_size() + 8
    buf = ffi.new("unsigned char[]", size)
    buf[size - 3] = 0x5A
    with pytest.raises(BPFError) as e:
        bpf(Cmd.PROG_LOAD, buf, size=size)
    assert e.value.errno == errno.E2BIG
    assert f"union bpf_attr has {kernel_attr_size()} bytes" in str(e.value)
    assert f"bytes at offset {size - 3}" in str(e.value)


def test_other_e2big_keeps_the_generic_reason():
    attr = new_attr()
    attr.prog_type, attr.insn_cnt = 1, 2_000_000  # above BPF_COMPLEXITY_LIMIT_INSNS
    with pytest.raises(BPFError) as e:
        bpf(Cmd.PROG_LOAD, attr)
    assert e.value.errno == errno.E2BIG and "above this kernel's limit" in str(e.value)
