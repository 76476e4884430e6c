"""Context access rules (pybpf.dsl.access) against the running kernel's verifier.

For every hook and every field of its context struct, each byte offset of the
field is loaded and stored with 1, 2, 4 and 8 bytes; the verifier's verdict
must equal ``ContextRules.allows``.  A rejection only counts if the verifier
says it was the context access ("invalid bpf_context access"), so an
unrelated failure cannot pass for a correct "no".
"""

from __future__ import annotations

import pytest

from pybpf import asm
from pybpf.asm import R0, R1, R2, Arith
from pybpf.dsl._ctx import FIELDS, STRUCTS
from pybpf.dsl.access import SIZES, ContextError, rules
from pybpf.errors import VerifierError
from pybpf.syscall import load_program

# (program type, attach type or None, a return value the hook accepts)
HOOKS = [
    ("xdp", "xdp", 2),                                  # XDP_PASS
    ("xdp", "xdp_devmap", 2),
    ("sched_cls", None, 0),                             # TC_ACT_OK
    ("socket_filter", None, 0),
    ("cgroup_skb", "cgroup_inet_ingress", 1),
    ("cgroup_skb", "cgroup_inet_egress", 1),
    ("sk_skb", "sk_skb_stream_verdict", 1),             # SK_PASS
    ("flow_dissector", "flow_dissector", 0),            # BPF_OK
    ("cgroup_sock_addr", "cgroup_inet4_connect", 1),
    ("cgroup_sock_addr", "cgroup_inet6_connect", 1),
    ("cgroup_sock_addr", "cgroup_inet4_bind", 1),
    ("cgroup_sock_addr", "cgroup_udp4_sendmsg", 1),
    ("cgroup_sock_addr", "cgroup_udp6_sendmsg", 1),
    ("cgroup_sock_addr", "cgroup_udp4_recvmsg", 1),
    ("cgroup_sock_addr", "cgroup_inet4_getpeername", 1),
    ("cgroup_sock_addr", "cgroup_unix_connect", 1),
    ("sock_ops", "cgroup_sock_ops", 1),
    ("sk_msg", "sk_msg_verdict", 1),                    # SK_PASS
    ("sk_reuseport", "sk_reuseport_select", 1),         # SK_PASS
    ("sk_reuseport", "sk_reuseport_select_or_migrate", 1),
    ("sk_lookup", "sk_lookup", 1),                      # SK_PASS
    ("cgroup_sock", "cgroup_inet_sock_create", 1),
    ("cgroup_sock", "cgroup_inet4_post_bind", 1),
    ("cgroup_sock", "cgroup_inet6_post_bind", 1),
]


def _cases():
    for prog_type, attach, ret in HOOKS:
        struct = rules(prog_type, attach).struct_name
        for name in FIELDS[struct]:
            yield pytest.param(prog_type, attach, ret, name,
                               id=f"{prog_type}-{attach or 'default'}-{name}")


def _gap_cases():
    for prog_type, attach, ret in HOOKS:
        yield pytest.param(prog_type, attach, ret, id=f"{prog_type}-{attach or 'default'}")


def _program(offset: int, size: int, write: bool, ret: int):
    if write:
        body = [asm.Alu(Arith.MOV, R2, 0), asm.Store(R1, R2, offset, size)]
    else:
        body = [asm.Load(R2, R1, offset, size)]
    return body + [asm.Alu(Arith.MOV, R0, ret), asm.Exit()]


def kernel_allows(prog_type: str, attach: str | None, ret: int, offset: int, size: int,
                  write: bool) -> bool:
    """Load the one-access program; True if the verifier accepts it."""
    try:
        with load_program(prog_type, _program(offset, size, write, ret),
                          expected_attach_type=attach):
            return True
    except VerifierError as e:
        if "invalid bpf_context access" not in e.log:
            raise AssertionError(f"{prog_type}/{attach}: {'store' if write else 'load'} of "
                                 f"{size} bytes at {offset} rejected for another reason:\n"
                                 f"{e.log}") from e
        return False


def _sweep(prog_type, attach, ret, offsets):
    r = rules(prog_type, attach)
    mismatches = []
    for offset in offsets:
        for size in SIZES:
            for write in (False, True):
                kernel = kernel_allows(prog_type, attach, ret, offset, size, write)
                ours = r.allows(offset, size, write)
                if kernel != ours:
                    mismatches.append(f"{'store' if write else 'load'} size {size} at "
                                      f"{offset}: kernel {'accepts' if kernel else 'rejects'}")
    return mismatches


pytestmark = pytest.mark.kernel


@pytest.mark.parametrize("prog_type, attach, ret, name", list(_cases()))
def test_field_access_matches_verifier(prog_type, attach, ret, name):
    r = rules(prog_type, attach)
    f = FIELDS[r.struct_name][name]
    mismatches = _sweep(prog_type, attach, ret, range(f.offset, f.offset + f.slot))
    assert not mismatches, f"{r}: {r.struct_name}.{name}:\n" + "\n".join(mismatches)


@pytest.mark.parametrize("prog_type, attach, ret", list(_gap_cases()))
def test_padding_and_past_the_end_match_verifier(prog_type, attach, ret):
    r = rules(prog_type, attach)
    size = STRUCTS[r.struct_name][0]
    covered = set()
    for f in FIELDS[r.struct_name].values():
        covered.update(range(f.offset, f.offset + f.slot))
    gaps = [o for o in range(size) if o not in covered] + [size, size + 4]
    mismatches = _sweep(prog_type, attach, ret, gaps)
    assert not mismatches, f"{r} padding:\n" + "\n".join(mismatches)


# --- the API without the kernel -------------------------------------------------------

@pytest.mark.parametrize("prog_type, attach, ret", list(_gap_cases()))
def test_natural_size_rules_are_consistent(prog_type, attach, ret):
    r = rules(prog_type, attach)
    for rule in r.fields.values():
        assert rule.read == bool(rule.read_sizes) and rule.write == bool(rule.write_sizes)
        if rule.pointer_kind is not None:
            assert rule.read, f"{r}: pointer field {rule.name} is not readable"


def test_unknown_field_lists_readable_ones():
    with pytest.raises(ContextError, match=r"no field 'ifindx'.*ifindex"):
        rules("sched_cls").field("ifindx")


def test_store_to_read_only_field_names_kernel_function():
    with pytest.raises(ContextError, match="sock_addr_is_valid_access"):
        rules("cgroup_sock_addr", "cgroup_inet4_connect").check_store("family")


def test_wrong_size_lists_allowed_sizes():
    with pytest.raises(ContextError, match="allowed sizes: 4 bytes"):
        rules("xdp").check_load("data", 8)


def test_other_family_fields_are_closed():
    r = rules("cgroup_sock_addr", "cgroup_inet4_connect")
    assert not r.field("user_ip6").read and r.field("user_ip4").read
    assert r.check_load("user_ip4", 1).type.name == "be32"
    six = rules("cgroup_sock_addr", "cgroup_inet6_connect")
    six.check_store("user_ip6", 8, index=2)
    with pytest.raises(ContextError, match="8-byte"):
        six.check_store("user_ip6", 8, index=1)


def test_packet_pointers_only_where_the_kernel_gives_them():
    assert rules("sched_cls").field("data").pointer_kind == "packet"
    assert rules("xdp").field("data_end").pointer_kind == "packet_end"
    assert not rules("socket_filter").field("data").read


def test_sock_addr_needs_an_attach_type():
    with pytest.raises(ContextError, match="cgroup_inet4_connect"):
        rules("cgroup_sock_addr")
