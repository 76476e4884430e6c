"""Which context fields a program may read or write, and with which access sizes.

    r = rules("cgroup_sock_addr", "cgroup_inet4_connect")
    r.struct                      # BpfSockAddr (pybpf.types Struct of struct bpf_sock_addr)
    r.field("user_ip4")           # FieldRule(read_sizes=(1, 2, 4), write_sizes=(4,), ...)
    r.check_store("user_ip4", 4)  # ok; check_store("family", 4) raises ContextError

The verifier asks one callback per program type, ``<type>_is_valid_access(off,
size, type, prog, info)`` in net/core/filter.c (Linux 6.18), whether a load or
store of ``size`` bytes at ``off`` in the context is allowed.  Each callback is
transcribed below as a Python predicate of the same name and shape, so a rule
can be checked against its source line by line; FieldRule tables are derived
from the predicates at each field's offset.  tests/dsl/test_ctx_access.py loads
a program per field, offset and size to check the transcription against the
running kernel's verifier.

Sizes are in bytes.  ``read_sizes`` / ``write_sizes`` hold at the field's first
byte; narrow reads at inner offsets (``*(u8 *)(ctx->mark + 1)``) and 8-byte
accesses to IPv6 address halves are answered by ``allows(offset, size, write)``
and ``check_load(name, size, index=...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from pybpf._record import record
from pybpf.dsl._ctx import FIELDS, STRUCTS
from pybpf.errors import PyBPFError

SIZES = (1, 2, 4, 8)


class ContextError(PyBPFError, ValueError):
    """A context field is unknown, or not readable/writable that way in this program type."""


@record
class FieldRule:
    """How one context field may be accessed by one program type / attach type."""

    name: str
    offset: int
    slot: int                   # bytes the field occupies in the context struct
    type: object                # pybpf.types value type (be32, Array(u32, 5), ...)
    read_sizes: tuple[int, ...]
    write_sizes: tuple[int, ...]
    pointer_kind: str | None    # "packet", "packet_end", "packet_meta", "socket", ...

    @property
    def read(self) -> bool:
        """True if some load of this field is allowed."""
        return bool(self.read_sizes)

    @property
    def write(self) -> bool:
        """True if some store to this field is allowed."""
        return bool(self.write_sizes)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Allowed load sizes (alias of read_sizes)."""
        return self.read_sizes


# --- offsets, exactly as the kernel's macros compute them ----------------------

def _off(struct: str, name: str) -> int:
    return FIELDS[struct][name].offset


def _range(struct: str, name: str) -> range:
    """bpf_ctx_range(TYPE, MEMBER): every byte of the member."""
    f = FIELDS[struct][name]
    return range(f.offset, f.offset + f.slot)


def _range_till(struct: str, first: str, last: str) -> range:
    """bpf_ctx_range_till(TYPE, M1, M2): from M1's first byte to M2's last."""
    end = FIELDS[struct][last]
    return range(_off(struct, first), end.offset + end.slot)


def _range_ptr(struct: str, name: str) -> range:
    """bpf_ctx_range_ptr(TYPE, MEMBER): the 8 bytes of a __bpf_md_ptr."""
    return range(_off(struct, name), _off(struct, name) + 8)


def _narrow_ok(size: int, size_default: int) -> bool:
    """bpf_ctx_narrow_access_ok() (include/linux/filter.h)."""
    return size <= size_default and size & (size - 1) == 0


def _wide_ok(off: int, size: int, struct: str, name: str) -> bool:
    """bpf_ctx_wide_access_ok(): an aligned 8-byte access inside an array member."""
    r = _range(struct, name)
    return size == 8 and off >= r.start and off + 8 <= r.stop and off % 8 == 0


# --- struct __sk_buff ------------------------------------------------------------

SKB = "__sk_buff"


def bpf_skb_is_valid_access(off: int, size: int, write: bool) -> bool:
    """bpf_skb_is_valid_access(): the checks every __sk_buff program type shares."""
    if off < 0 or off >= STRUCTS[SKB][0] or off % size:
        return False
    if off in _range(SKB, "cb"):
        return off + size <= _range(SKB, "cb").stop
    if any(off in _range(SKB, f) for f in ("data", "data_meta", "data_end")):
        return size == 4
    if any(off in _range(SKB, f) for f in ("remote_ip6", "local_ip6", "remote_ip4", "local_ip4")):
        return size == 4
    if off in _range_ptr(SKB, "flow_keys"):
        return False
    if off in _range(SKB, "hwtstamp"):
        return not write and size == 8
    if off in _range(SKB, "tstamp"):
        return size == 8
    if off in _range_ptr(SKB, "sk"):
        return not write and size == 8
    if off == _off(SKB, "tstamp_type"):
        return False
    if _range(SKB, "tstamp_type").stop <= off < _off(SKB, "hwtstamp"):
        return False  # padding
    if write:
        return size == 4
    return _narrow_ok(size, 4)


def _in_any(off: int, ranges) -> bool:
    return any(off in r for r in ranges)


def sk_filter_is_valid_access(off: int, size: int, write: bool, attach: str | None) -> bool:
    """sk_filter_is_valid_access(): BPF_PROG_TYPE_SOCKET_FILTER."""
    if _in_any(off, (_range(SKB, "tc_classid"), _range(SKB, "data"), _range(SKB, "data_meta"),
                     _range(SKB, "data_end"), _range_till(SKB, "family", "local_port"),
                     _range(SKB, "tstamp"), _range(SKB, "wire_len"), _range(SKB, "hwtstamp"))):
        return False
    if write and off not in _range(SKB, "cb"):
        return False
    return bpf_skb_is_valid_access(off, size, write)


def cg_skb_is_valid_access(off: int, size: int, write: bool, attach: str | None) -> bool:
    """cg_skb_is_valid_access(): BPF_PROG_TYPE_CGROUP_SKB (data, data_end and tstamp writes
    need CAP_BPF, which pybpf assumes: it runs as root)."""
    if _in_any(off, (_range(SKB, "tc_classid"), _range(SKB, "data_meta"),
                     _range(SKB, "wire_len"))):
        return False
    if write and not _in_any(off, (_range(SKB, "mark"), _range(SKB, "priority"),
                                   _range(SKB, "cb"), _range(SKB, "tstamp"))):
        return False
    return bpf_skb_is_valid_access(off, size, write)


def tc_cls_act_is_valid_access(off: int, size: int, write: bool, attach: str | None) -> bool:
    """tc_cls_act_is_valid_access(): BPF_PROG_TYPE_SCHED_CLS and SCHED_ACT."""
    if write and not _in_any(off, (_range(SKB, "mark"), _range(SKB, "tc_index"),
                                   _range(SKB, "priority"), _range(SKB, "tc_classid"),
                                   _range(SKB, "cb"), _range(SKB, "tstamp"),
                                   _range(SKB, "queue_mapping"))):
        return False
    if off in _range_till(SKB, "family", "local_port"):
        return False
    if off == _off(SKB, "tstamp_type"):
        return size == 1
    return bpf_skb_is_valid_access(off, size, write)


def sk_skb_is_valid_access(off: int, size: int, write: bool, attach: str | None) -> bool:
    """sk_skb_is_valid_access(): BPF_PROG_TYPE_SK_SKB."""
    if _in_any(off, (_range(SKB, "tc_classid"), _range(SKB, "data_meta"), _range(SKB, "tstamp"),
                     _range(SKB, "wire_len"), _range(SKB, "hwtstamp"))):
        return False
    if write and not _in_any(off, (_range(SKB, "tc_index"), _range(SKB, "priority"))):
        return False
    if off in _range(SKB, "mark"):
        return False
    return bpf_skb_is_valid_access(off, size, write)


def flow_dissector_is_valid_access(off: int, size: int, write: bool, attach: str | None) -> bool:
    """flow_dissector_is_valid_access(): BPF_PROG_TYPE_FLOW_DISSECTOR."""
    if off < 0 or off >= STRUCTS[SKB][0] or off % size or write:
        return False
    if off in _range(SKB, "data") or off in _range(SKB, "data_end"):
        return size == 4
    if off in _range_ptr(SKB, "flow_keys"):
        return size == 8
    return False


_SKB_PACKET = {"data": "packet", "data_end": "packet_end", "data_meta": "packet_meta",
               "sk": "sock_common_or_null"}

# --- struct xdp_md -----------------------------------------------------------------

XDP = "xdp_md"


def xdp_is_valid_access(off: int, size: int, write: bool, attach: str | None) -> bool:
    """xdp_is_valid_access(): BPF_PROG_TYPE_XDP (writes only exist for offloaded programs,
    which pybpf does not load)."""
    if attach != "xdp_devmap" and off == _off(XDP, "egress_ifindex"):
        return False
    if write:
        return False
    # __is_valid_xdp_access()
    return 0 <= off < STRUCTS[XDP][0] and off % size == 0 and size == 4


_XDP_PACKET = {"data": "packet", "data_end": "packet_end", "data_meta": "packet_meta"}

# --- struct bpf_sock_addr ---------------------------------------------------------

SA = "bpf_sock_addr"
_INET4 = {"cgroup_inet4_bind", "cgroup_inet4_connect", "cgroup_inet4_getpeername",
          "cgroup_inet4_getsockname", "cgroup_udp4_sendmsg", "cgroup_udp4_recvmsg"}
_INET6 = {"cgroup_inet6_bind", "cgroup_inet6_connect", "cgroup_inet6_getpeername",
          "cgroup_inet6_getsockname", "cgroup_udp6_sendmsg", "cgroup_udp6_recvmsg"}
_UNIX = {"cgroup_unix_connect", "cgroup_unix_sendmsg", "cgroup_unix_recvmsg",
         "cgroup_unix_getpeername", "cgroup_unix_getsockname"}


def sock_addr_is_valid_access(off: int, size: int, write: bool, attach: str | None) -> bool:
    """sock_addr_is_valid_access(): BPF_PROG_TYPE_CGROUP_SOCK_ADDR."""
    if off < 0 or off >= STRUCTS[SA][0] or off % size:
        return False
    # fields of the other address family are off limits
    if off in _range(SA, "user_ip4") and attach not in _INET4:
        return False
    if off in _range(SA, "user_ip6") and attach not in _INET6:
        return False
    if off in _range(SA, "msg_src_ip4") and attach != "cgroup_udp4_sendmsg":
        return False
    if off in _range(SA, "msg_src_ip6") and attach != "cgroup_udp6_sendmsg":
        return False
    if _in_any(off, (_range(SA, "user_ip4"), _range(SA, "user_ip6"), _range(SA, "msg_src_ip4"),
                     _range(SA, "msg_src_ip6"), _range(SA, "user_port"))):
        if _wide_ok(off, size, SA, "user_ip6") or _wide_ok(off, size, SA, "msg_src_ip6"):
            return True
        return size == 4 if write else _narrow_ok(size, 4)
    if off in _range_ptr(SA, "sk"):
        return not write and size == 8
    if _in_any(off, (_range(SA, "user_family"), _range(SA, "family"), _range(SA, "type"),
                     _range(SA, "protocol"))):
        return not write and size == 4
    return False


_SA_POINTERS = {"sk": "socket"}

# --- struct bpf_sock_ops ----------------------------------------------------------

SO = "bpf_sock_ops"


def sock_ops_is_valid_access(off: int, size: int, write: bool, attach: str | None) -> bool:
    """sock_ops_is_valid_access(): BPF_PROG_TYPE_SOCK_OPS."""
    if off < 0 or off >= STRUCTS[SO][0] or off % size:
        return False
    if write:
        return off in (_off(SO, "reply"), _off(SO, "sk_txhash")) and size == 4
    if off in _range_till(SO, "bytes_received", "bytes_acked"):
        return size == 8
    if _in_any(off, (_range_ptr(SO, "sk"), _range_ptr(SO, "skb_data"),
                     _range_ptr(SO, "skb_data_end"))):
        return size == 8
    if off == _off(SO, "skb_tcp_flags"):
        return _narrow_ok(size, 4)
    if off in _range(SO, "skb_hwtstamp"):
        return size == 8
    return size == 4


_SO_POINTERS = {"sk": "socket_or_null", "skb_data": "packet", "skb_data_end": "packet_end"}

# --- struct sk_msg_md --------------------------------------------------------------

SM = "sk_msg_md"


def sk_msg_is_valid_access(off: int, size: int, write: bool, attach: str | None) -> bool:
    """sk_msg_is_valid_access(): BPF_PROG_TYPE_SK_MSG."""
    if write or off % size:
        return False
    if _in_any(off, (_range_ptr(SM, "data"), _range_ptr(SM, "data_end"), _range_ptr(SM, "sk"))):
        return size == 8
    if _in_any(off, (_range(SM, "family"), _range(SM, "remote_ip4"), _range(SM, "local_ip4"),
                     _range(SM, "remote_ip6"), _range(SM, "local_ip6"), _range(SM, "remote_port"),
                     _range(SM, "local_port"), _range(SM, "size"))):
        return size == 4
    return False


_SM_POINTERS = {"data": "packet", "data_end": "packet_end", "sk": "socket"}

# --- struct bpf_sock (cgroup_sock programs) ----------------------------------------

SK = "bpf_sock"


def bpf_sock_is_valid_access(off: int, size: int, write: bool) -> bool:
    """bpf_sock_is_valid_access(): shared by every reader of struct bpf_sock."""
    if off < 0 or off >= STRUCTS[SK][0] or off % size:
        return False
    exact = {_off(SK, f) for f in ("state", "family", "type", "protocol", "src_port",
                                   "rx_queue_mapping")}
    if off in exact or _in_any(off, (_range(SK, "src_ip4"), _range(SK, "src_ip6"),
                                     _range(SK, "dst_ip4"), _range(SK, "dst_ip6"))):
        return _narrow_ok(size, 4)
    if off in _range(SK, "dst_port"):
        return _narrow_ok(size, 4 if size == 4 else FIELDS[SK]["dst_port"].slot)
    if _range(SK, "dst_port").stop <= off < _off(SK, "dst_ip4"):
        return False
    return size == 4


def sock_filter_is_valid_access(off: int, size: int, write: bool, attach: str | None) -> bool:
    """sock_filter_is_valid_access(): BPF_PROG_TYPE_CGROUP_SOCK, with
    __sock_filter_check_attach_type()."""
    if not bpf_sock_is_valid_access(off, size, write):
        return False
    if off in (_off(SK, "bound_dev_if"), _off(SK, "mark"), _off(SK, "priority")):
        return attach in ("cgroup_inet_sock_create", "cgroup_inet_sock_release")
    if off in _range(SK, "src_ip4"):
        return attach == "cgroup_inet4_post_bind" and not write
    if off in _range(SK, "src_ip6"):
        return attach == "cgroup_inet6_post_bind" and not write
    if off in _range(SK, "src_port"):
        return attach in ("cgroup_inet4_post_bind", "cgroup_inet6_post_bind") and not write
    return not write


# --- struct sk_reuseport_md -------------------------------------------------------

RP = "sk_reuseport_md"


def sk_reuseport_is_valid_access(off: int, size: int, write: bool, attach: str | None) -> bool:
    """sk_reuseport_is_valid_access(): BPF_PROG_TYPE_SK_REUSEPORT (read only)."""
    if off < 0 or off >= STRUCTS[RP][0] or off % size or write:
        return False
    if off in (_off(RP, "data"), _off(RP, "data_end"), _off(RP, "sk"), _off(RP, "migrating_sk")):
        return size == 8
    if off == _off(RP, "hash"):
        return size == 4
    if off in _range(RP, "eth_protocol") and size < 2:  # sizeof(sk_buff.protocol)
        return False
    if _in_any(off, (_range(RP, "eth_protocol"), _range(RP, "ip_protocol"),
                     _range(RP, "bind_inany"), _range(RP, "len"))):
        return _narrow_ok(size, 4)
    return False


_RP_POINTERS = {"data": "packet", "data_end": "packet_end", "sk": "socket",
                "migrating_sk": "sock_common_or_null"}

# --- struct bpf_sk_lookup ------------------------------------------------------------

LK = "bpf_sk_lookup"


def sk_lookup_is_valid_access(off: int, size: int, write: bool, attach: str | None) -> bool:
    """sk_lookup_is_valid_access(): BPF_PROG_TYPE_SK_LOOKUP (read only; ``cookie`` shares
    the 8 bytes of ``sk`` and reads as the socket pointer)."""
    if off < 0 or off >= STRUCTS[LK][0] or off % size or write:
        return False
    if off in _range_ptr(LK, "sk"):
        return size == 8
    if _in_any(off, (_range(LK, "family"), _range(LK, "protocol"), _range(LK, "remote_ip4"),
                     _range(LK, "local_ip4"), _range(LK, "remote_ip6"), _range(LK, "local_ip6"),
                     _range(LK, "local_port"), _range(LK, "ingress_ifindex"))):
        return _narrow_ok(size, 4)
    if off in _range(LK, "remote_port"):
        return size == 4 or _narrow_ok(size, 2)  # 4-byte loads kept for old programs
    if _range(LK, "remote_port").stop <= off < _off(LK, "local_ip4"):
        return _narrow_ok(size, 2)  # zero padding, readable for old programs
    return False


_LK_POINTERS = {"sk": "socket_or_null", "cookie": "socket_or_null"}

# --- program type -> rules -------------------------------------------------------------

Predicate = Callable[[int, int, bool, "str | None"], bool]


@record
class _Hook:
    struct: str
    predicate: Predicate
    pointers: dict
    attach_types: frozenset | None  # None: any (the attach type does not matter)
    default_attach: str | None


_HOOKS: dict[str, _Hook] = {
    "socket_filter": _Hook(SKB, sk_filter_is_valid_access, {"sk": "sock_common_or_null"},
                           None, None),
    "sched_cls": _Hook(SKB, tc_cls_act_is_valid_access, _SKB_PACKET, None, None),
    "sched_act": _Hook(SKB, tc_cls_act_is_valid_access, _SKB_PACKET, None, None),
    "cgroup_skb": _Hook(SKB, cg_skb_is_valid_access,
                        {k: v for k, v in _SKB_PACKET.items() if k != "data_meta"},
                        frozenset({"cgroup_inet_ingress", "cgroup_inet_egress"}),
                        "cgroup_inet_ingress"),
    "sk_skb": _Hook(SKB, sk_skb_is_valid_access,
                    {k: v for k, v in _SKB_PACKET.items() if k != "data_meta"},
                    frozenset({"sk_skb_stream_parser", "sk_skb_stream_verdict",
                               "sk_skb_verdict"}), "sk_skb_stream_verdict"),
    "flow_dissector": _Hook(SKB, flow_dissector_is_valid_access,
                            {"data": "packet", "data_end": "packet_end",
                             "flow_keys": "flow_keys"},
                            frozenset({"flow_dissector"}), "flow_dissector"),
    "xdp": _Hook(XDP, xdp_is_valid_access, _XDP_PACKET,
                 frozenset({"xdp", "xdp_devmap", "xdp_cpumap"}), "xdp"),
    "cgroup_sock_addr": _Hook(SA, sock_addr_is_valid_access, _SA_POINTERS,
                              frozenset(_INET4 | _INET6 | _UNIX), None),
    "sock_ops": _Hook(SO, sock_ops_is_valid_access, _SO_POINTERS,
                      frozenset({"cgroup_sock_ops"}), "cgroup_sock_ops"),
    "sk_msg": _Hook(SM, sk_msg_is_valid_access, _SM_POINTERS,
                    frozenset({"sk_msg_verdict"}), "sk_msg_verdict"),
    "sk_reuseport": _Hook(RP, sk_reuseport_is_valid_access, _RP_POINTERS,
                          frozenset({"sk_reuseport_select", "sk_reuseport_select_or_migrate"}),
                          "sk_reuseport_select"),
    "sk_lookup": _Hook(LK, sk_lookup_is_valid_access, _LK_POINTERS,
                       frozenset({"sk_lookup"}), "sk_lookup"),
    "cgroup_sock": _Hook(SK, sock_filter_is_valid_access, {},
                         frozenset({"cgroup_inet_sock_create", "cgroup_inet_sock_release",
                                    "cgroup_inet4_post_bind", "cgroup_inet6_post_bind"}),
                         "cgroup_inet_sock_create"),
}

PROGRAM_TYPES = tuple(_HOOKS)


class ContextRules:
    """The context of one program type / attach type: its struct and per-field rules."""

    def __init__(self, prog_type: str, attach_type: str | None, hook: _Hook):
        self.prog_type = prog_type
        self.attach_type = attach_type
        self.struct_name = hook.struct
        self.struct = STRUCTS[hook.struct][1]
        self.kernel_function = hook.predicate.__name__
        self._predicate = hook.predicate
        self._pointers = hook.pointers
        # Rules are derived when a field is first used: a program touches a few of
        # the context's fields, and asking the predicate about all of __sk_buff's
        # (eight questions per field) took a millisecond.
        self._rules: dict[str, FieldRule] = {}

    @property
    def fields(self) -> dict[str, FieldRule]:
        """Every field's rule by name, in the order of the context struct."""
        return {name: self.field(name) for name in FIELDS[self.struct_name]}

    def __repr__(self) -> str:
        attach = f", {self.attach_type!r}" if self.attach_type else ""
        return f"rules({self.prog_type!r}{attach})"

    def allows(self, offset: int, size: int, write: bool) -> bool:
        """The verifier's answer for a ``size``-byte load/store at ``offset`` of the context."""
        if size not in SIZES:
            return False
        return self._predicate(offset, size, write, self.attach_type)

    def field(self, name: str) -> FieldRule:
        """The rule of field ``name``; ContextError naming the accessible fields if unknown."""
        rule = self._rules.get(name)
        if rule is not None:
            return rule
        f = FIELDS[self.struct_name].get(name)
        if f is None:
            readable = ", ".join(n for n, r in self.fields.items() if r.read)
            raise ContextError(
                f"struct {self.struct_name} has no field {name!r} (in {self._where()} "
                f"the readable fields are: {readable})")
        rule = self._rules[name] = FieldRule(
            f.name, f.offset, f.slot, f.type,
            tuple(s for s in SIZES if self.allows(f.offset, s, False)),
            tuple(s for s in SIZES if self.allows(f.offset, s, True)),
            self._pointers.get(f.name))
        return rule

    def check_load(self, name: str, size: int | None = None, index: int = 0) -> FieldRule:
        """The rule of ``name`` if a ``size``-byte load (default: the natural one) at element
        ``index`` is allowed; ContextError saying what is allowed otherwise."""
        return self._check(name, size, index, write=False)

    def check_store(self, name: str, size: int | None = None, index: int = 0) -> FieldRule:
        """Like check_load, for a store."""
        return self._check(name, size, index, write=True)

    def _check(self, name: str, size: int | None, index: int, write: bool) -> FieldRule:
        rule = self.field(name)
        elem = getattr(rule.type, "elem", None)
        unit = elem.size if elem is not None else rule.type.size
        count = rule.slot // unit if elem is not None else 1
        if not 0 <= index < count:
            raise ContextError(f"{self.struct_name}.{name} has {count} element(s); "
                               f"index {index} is out of range")
        if size is None:
            size = unit if unit in SIZES else rule.slot
        what = "written" if write else "read"
        offset = rule.offset + index * unit
        if self.allows(offset, size, write):
            return rule
        allowed = rule.write_sizes if write else rule.read_sizes
        label = f"{name}[{index}]" if elem is not None else name
        if not allowed:
            raise ContextError(f"{self.struct_name}.{name} cannot be {what} in "
                               f"{self._where()} ({self.kernel_function} in net/core/filter.c)")
        raise ContextError(f"{self.struct_name}.{label} cannot be {what} with a {size}-byte "
                           f"access in {self._where()}; allowed sizes: "
                           f"{', '.join(map(str, allowed))} bytes ({self.kernel_function})")

    def _where(self) -> str:
        if self.attach_type:
            return f"{self.prog_type} programs attached as {self.attach_type}"
        return f"{self.prog_type} programs"


def _name(value) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "name", value)).lower()


@cache
def _rules(prog_type: str, attach_type: str | None) -> ContextRules:
    hook = _HOOKS.get(prog_type)
    if hook is None:
        raise ContextError(f"no context rules for program type {prog_type!r}; known: "
                           f"{', '.join(PROGRAM_TYPES)}")
    if attach_type is None:
        attach_type = hook.default_attach
    if hook.attach_types is not None:
        if attach_type is None:
            raise ContextError(f"{prog_type} programs need an attach type to know their "
                               f"context: one of {', '.join(sorted(hook.attach_types))}")
        if attach_type not in hook.attach_types:
            raise ContextError(f"attach type {attach_type!r} is not one of {prog_type}'s: "
                               f"{', '.join(sorted(hook.attach_types))}")
    return ContextRules(prog_type, attach_type, hook)


def rules(prog_type, attach_type=None) -> ContextRules:
    """The context rules of ``prog_type`` ("xdp", ProgType.SCHED_CLS) attached as
    ``attach_type`` ("cgroup_inet4_connect", AttachType.XDP_DEVMAP, or None for the default)."""
    return _rules(_name(prog_type), _name(attach_type))
