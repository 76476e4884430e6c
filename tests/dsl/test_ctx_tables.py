"""pybpf.dsl._ctx makes each context struct on first use, and each agrees with its table."""

import subprocess
import sys

import pytest

from pybpf.dsl import _ctx
from pybpf.types import Struct

CLASSES = {"xdp_md": "XdpMd", "__sk_buff": "SkBuff", "bpf_sock_addr": "BpfSockAddr",
           "bpf_sock_ops": "BpfSockOps", "sk_msg_md": "SkMsgMd",
           "sk_reuseport_md": "SkReuseportMd", "bpf_sock": "BpfSock",
           "bpf_sk_lookup": "BpfSkLookup", "bpf_sysctl": "BpfSysctl",
           "bpf_sockopt": "BpfSockopt", "bpf_cgroup_dev_ctx": "BpfCgroupDevCtx",
           "bpf_flow_keys": "BpfFlowKeys"}


def test_import_makes_no_struct():
    code = ("from pybpf.dsl import _ctx\nassert not _ctx._made\n"
            "from programs.bind_guard import guard_bind4\nguard_bind4.build()\n"
            "print(*_ctx._made)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["bpf_sock_addr"]  # a cgroup/bind4 program: its context only


@pytest.mark.parametrize("cname", sorted(CLASSES))
def test_struct_matches_table(cname):
    size, cls = _ctx.STRUCTS[cname]  # _check ran: layout == offset table
    assert issubclass(cls, Struct) and cls.size == size
    assert getattr(_ctx, CLASSES[cname]) is cls and cls.__qualname__ == CLASSES[cname]
    assert cls.__module__ == "pybpf.dsl._ctx" and cls.__doc__ == f"struct {cname}."
    assert _ctx.STRUCTS[cname] is _ctx.STRUCTS[cname]  # made once
    table = _ctx.FIELDS[cname]
    assert [f.name for f in cls.fields] == [f.attr for f in table.values() if f.in_struct]


def test_mappings():
    assert list(_ctx.STRUCTS) == list(_ctx.FIELDS) == list(CLASSES)
    assert len(_ctx.STRUCTS) == 12 and "xdp_md" in _ctx.FIELDS and "nope" not in _ctx.STRUCTS
    assert _ctx.FIELDS.get("nope") is None
    with pytest.raises(KeyError):
        _ctx.STRUCTS["nope"]
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ctx.Nope  # noqa: B018
    assert set(CLASSES.values()) <= set(dir(_ctx))
