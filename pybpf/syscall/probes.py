"""Feature probes: what the running kernel supports, each naming the kernel that brought it.

Each probe asks the kernel directly (create a tiny map, load a two-instruction
program, issue a command with a harmless argument) and reads the errno, as
libbpf's ``libbpf_probe_bpf_*`` and cilium's ``features`` package do.  Results
are cached for the life of the process.
"""

from __future__ import annotations

import errno
import functools
import os

from pybpf._record import record
from pybpf.btf.kernel import vmlinux
from pybpf.errors import BPFError, BTFError
from pybpf.syscall._ffi import address, ffi
from pybpf.syscall._helper_since import HELPER_SINCE
from pybpf.syscall._uapi import (
    BPF_F_SLEEPABLE,
    AttachType,
    Cmd,
    HelperId,
    MapFlags,
    MapType,
    ProgType,
)
from pybpf.syscall.bpf import ENOTSUPP, bpf, new_attr
from pybpf.syscall.maps import Map
from pybpf.syscall.programs import load_program
from pybpf.syscall.verifier import PROG_LOG, load_with_log

EXIT0 = bytes.fromhex("b700000000000000" "9500000000000000")  # r0 = 0; exit

#: Program types and the kernel release that added them.
PROG_TYPE_SINCE = {
    ProgType.SOCKET_FILTER: "3.19", ProgType.KPROBE: "4.1", ProgType.SCHED_CLS: "4.1",
    ProgType.SCHED_ACT: "4.1", ProgType.TRACEPOINT: "4.7", ProgType.XDP: "4.8",
    ProgType.PERF_EVENT: "4.9", ProgType.CGROUP_SKB: "4.10", ProgType.CGROUP_SOCK: "4.10",
    ProgType.LWT_IN: "4.10", ProgType.LWT_OUT: "4.10", ProgType.LWT_XMIT: "4.10",
    ProgType.SOCK_OPS: "4.13", ProgType.SK_SKB: "4.14", ProgType.CGROUP_DEVICE: "4.15",
    ProgType.SK_MSG: "4.17", ProgType.RAW_TRACEPOINT: "4.17",
    ProgType.CGROUP_SOCK_ADDR: "4.17", ProgType.LWT_SEG6LOCAL: "4.18",
    ProgType.LIRC_MODE2: "4.18", ProgType.SK_REUSEPORT: "4.19",
    ProgType.FLOW_DISSECTOR: "4.20", ProgType.CGROUP_SYSCTL: "5.2",
    ProgType.RAW_TRACEPOINT_WRITABLE: "5.2", ProgType.CGROUP_SOCKOPT: "5.3",
    ProgType.SK_LOOKUP: "5.9", ProgType.SYSCALL: "5.14", ProgType.NETFILTER: "6.4",
}
#: Types that cannot load without an attach target; not probed by loading.
NEEDS_TARGET = {ProgType.TRACING: "5.5", ProgType.STRUCT_OPS: "5.6", ProgType.EXT: "5.6",
                ProgType.LSM: "5.7"}

#: Map types, the kernel that added them, and (key, value, max_entries, flags) to probe with.
MAP_TYPE_SINCE = {
    MapType.HASH: ("3.19", 4, 4, 1, 0), MapType.ARRAY: ("3.19", 4, 4, 1, 0),
    MapType.PROG_ARRAY: ("4.2", 4, 4, 1, 0), MapType.PERF_EVENT_ARRAY: ("4.3", 4, 4, 1, 0),
    MapType.PERCPU_HASH: ("4.6", 4, 4, 1, 0), MapType.PERCPU_ARRAY: ("4.6", 4, 4, 1, 0),
    MapType.STACK_TRACE: ("4.6", 4, 8, 1, 0), MapType.CGROUP_ARRAY: ("4.8", 4, 4, 1, 0),
    MapType.LRU_HASH: ("4.10", 4, 4, 1, 0), MapType.LRU_PERCPU_HASH: ("4.10", 4, 4, 1, 0),
    MapType.LPM_TRIE: ("4.11", 8, 4, 1, MapFlags.NO_PREALLOC),
    MapType.DEVMAP: ("4.14", 4, 4, 1, 0), MapType.SOCKMAP: ("4.14", 4, 4, 1, 0),
    MapType.CPUMAP: ("4.15", 4, 4, 1, 0), MapType.XSKMAP: ("4.18", 4, 4, 1, 0),
    MapType.SOCKHASH: ("4.18", 4, 4, 1, 0), MapType.CGROUP_STORAGE: ("4.19", 16, 8, 0, 0),
    MapType.REUSEPORT_SOCKARRAY: ("4.19", 4, 4, 1, 0),
    MapType.PERCPU_CGROUP_STORAGE: ("4.20", 16, 8, 0, 0),
    MapType.QUEUE: ("4.20", 0, 4, 1, 0), MapType.STACK: ("4.20", 0, 4, 1, 0),
    MapType.DEVMAP_HASH: ("5.4", 4, 4, 1, 0), MapType.RINGBUF: ("5.8", 0, 0, 4096, 0),
    MapType.BLOOM_FILTER: ("5.16", 0, 4, 1, 0), MapType.USER_RINGBUF: ("6.1", 0, 0, 4096, 0),
    MapType.ARENA: ("6.9", 0, 0, 1, MapFlags.MMAPABLE),
}
#: Local-storage maps: created with BTF (an int key, a struct value), no preallocation.
LOCAL_STORAGE_SINCE = {MapType.SK_STORAGE: "5.2", MapType.INODE_STORAGE: "5.10",
                       MapType.TASK_STORAGE: "5.11", MapType.CGRP_STORAGE: "6.2"}
#: Maps of maps: created with a template inner map.
MAP_OF_MAPS_SINCE = {MapType.ARRAY_OF_MAPS: "4.12", MapType.HASH_OF_MAPS: "4.12"}


@record(slots=False)
class Probe:
    """One probe's answer: ``supported`` is None when the probe could not decide."""

    name: str
    supported: bool | None
    since: str
    detail: str = ""

    def __str__(self) -> str:
        mark = {True: "yes", False: "no", None: "?"}[self.supported]
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.name:<32} {mark:<4} since {self.since}{extra}"


#: Load attributes some program types insist on.
_PROBE_EXTRA = {
    ProgType.CGROUP_SOCK_ADDR: {"expected_attach_type": "cgroup_inet4_connect"},
    ProgType.CGROUP_SOCKOPT: {"expected_attach_type": "cgroup_getsockopt"},
    ProgType.SK_LOOKUP: {"expected_attach_type": "sk_lookup"},
    ProgType.NETFILTER: {"expected_attach_type": "netfilter"},
    ProgType.SYSCALL: {"flags": BPF_F_SLEEPABLE},
}


@functools.cache
def prog_type(ptype: ProgType) -> Probe:
    """Can a program of ``ptype`` be loaded? (loads ``r0 = 0; exit``)."""
    name = f"prog_type {ptype.name.lower()}"
    if ptype in NEEDS_TARGET:
        return Probe(name, None, NEEDS_TARGET[ptype], "needs an attach target to probe")
    since = PROG_TYPE_SINCE.get(ptype, "?")
    extra = _PROBE_EXTRA.get(ptype, {})
    try:
        load_program(ptype, EXIT0, **extra).close()
    except BPFError as e:
        if e.errno in (errno.EINVAL, errno.E2BIG, ENOTSUPP):
            return Probe(name, False, since, e.detail)
        return Probe(name, None, since, str(e))
    return Probe(name, True, since)


@functools.cache
def map_type(mtype: MapType) -> Probe:
    """Can a map of ``mtype`` be created? (as libbpf's ``libbpf_probe_bpf_map_type``)."""
    name = f"map_type {mtype.name.lower()}"
    if mtype == MapType.STRUCT_OPS:
        return _struct_ops_probe(name)
    if mtype in LOCAL_STORAGE_SINCE:
        since = LOCAL_STORAGE_SINCE[mtype]
        create = _create_local_storage
    elif mtype in MAP_OF_MAPS_SINCE:
        since = MAP_OF_MAPS_SINCE[mtype]
        create = _create_map_of_maps
    elif mtype in MAP_TYPE_SINCE:
        since, key, value, entries, flags = MAP_TYPE_SINCE[mtype]
        def create(mtype):
            return Map.create(mtype, key, value, entries, flags=flags)
    else:
        return Probe(name, None, "?", "no probe in pybpf's table for this type")
    try:
        create(mtype).close()
    except BPFError as e:
        if e.errno in (errno.EINVAL, errno.E2BIG, ENOTSUPP):
            return Probe(name, False, since, e.detail.split(":")[0])
        return Probe(name, None, since, str(e))
    return Probe(name, True, since)


def _create_map_of_maps(mtype: MapType) -> Map:
    with Map.create(MapType.HASH, 4, 4, 1) as inner:
        return Map.create(mtype, 4, 4, 1, inner_map=inner)


def _create_local_storage(mtype: MapType) -> Map:
    # The kernel checks the key is a 4-byte int in BTF; the value needs any BTF type.
    from pybpf.btf import model as m
    from pybpf.btf.emit import encode
    from pybpf.btf.uapi import IntEncoding
    from pybpf.syscall.btf_object import load_btf
    int_ = m.Int("int", 4, 32, IntEncoding.SIGNED)
    value = m.Struct("val", 4, (m.Member("cnt", 1, 0),))
    with load_btf(encode([int_, value])) as btf:
        return Map.create(mtype, 4, 4, 0, flags=MapFlags.NO_PREALLOC, btf_fd=btf.fd,
                          btf_key_type_id=1, btf_value_type_id=2)


def _struct_ops_probe(name: str) -> Probe:
    """A STRUCT_OPS map naming vmlinux type 1 (never a struct_ops type): ENOTSUPP if known."""
    since = "5.6"
    try:
        Map.create(MapType.STRUCT_OPS, 4, 4, 1, btf_vmlinux_value_type_id=1).close()
    except BPFError as e:
        if e.errno == ENOTSUPP:
            return Probe(name, True, since)
        if e.errno == errno.EINVAL:
            return Probe(name, False, since, e.detail.split(":")[0])
        return Probe(name, None, since, str(e))
    return Probe(name, True, since)


def helper_since(helper_id: HelperId) -> tuple[str, str]:
    """(release that added ``helper_id``, note): from the generated helper table.

    A helper missing from the table gets "?": helper ids are assigned in merge
    order, which is not release order (xdp_output, id 121, is 5.6 while ids 120
    and 122 are 5.7), so neighbours' releases cannot be trusted for it.
    """
    entry = HELPER_SINCE.get(int(helper_id))
    if entry and entry[0] == HelperId(helper_id).name:
        return entry[1], ""
    newest = max(HELPER_SINCE)
    name, since = HELPER_SINCE[newest]
    if int(helper_id) > newest:
        return "?", f"newer than the helper table (its last entry: {name}, {since})"
    return "?", "not in the helper table"


@functools.cache
def helper(ptype: ProgType, helper_id: HelperId) -> Probe:
    """May programs of ``ptype`` call ``helper_id``? (loads ``call helper; exit``)."""
    code = bytes([0x85, 0, 0, 0]) + int(helper_id).to_bytes(4, "little") + EXIT0
    name = f"helper {helper_id.name} in {ptype.name.lower()}"
    since, note = helper_since(helper_id)
    attr, _keep = _prog_attr(ptype, code)
    try:
        fd, _ = load_with_log(Cmd.PROG_LOAD, attr, PROG_LOG, log_level=1, log_size=16384)
    except BPFError as e:
        log = getattr(e, "log", "")
        if any(text in log for text in _NO_HELPER):
            return Probe(name, False, since, note)
        return Probe(name, bool(log), since, note if log else e.detail)
    os.close(fd)
    return Probe(name, True, since, note)


def _prog_attr(ptype: ProgType, code: bytes):
    """A PROG_LOAD attr for ``code``; keep the second item alive while using the first."""
    attr = new_attr()
    code_buf, lic_buf = ffi.from_buffer(code), ffi.new("char[]", b"GPL")
    attr.prog_type, attr.insn_cnt = ptype, len(code) // 8
    attr.insns, attr.license = address(code_buf), address(lic_buf)
    return attr, (code_buf, lic_buf)


#: Verifier messages meaning "this helper is unknown or not allowed here" (kernel/bpf/verifier.c).
_NO_HELPER = ("invalid func", "unknown func", "cannot use helper", "cannot call")

# ISA extensions: a program using each one (jump ext: JLT; JMP32; v4: MOVSX).
_ISA = {
    "v2 (JLT/JLE/JSLT/JSLE)": ("4.14", "b700000000000000" "a500000001000000" "9500000000000000"),
    "v3 (JMP32)": ("5.1", "b400000000000000" "2600000001000000" "9500000000000000"),
    "v4 (sign extension, sdiv, bswap, gotol)": (
        "6.6", "b700000001000000" "bf00080000000000" "9500000000000000"),
}


@functools.cache
def isa() -> tuple[Probe, ...]:
    """Which BPF ISA versions the verifier accepts."""
    out = []
    for name, (since, hexcode) in _ISA.items():
        try:
            load_program(ProgType.SOCKET_FILTER, bytes.fromhex(hexcode)).close()
            out.append(Probe(f"isa {name}", True, since))
        except BPFError as e:
            out.append(Probe(f"isa {name}", False, since, e.detail))
    return tuple(out)


def _bad_prog_fd(attr) -> None:
    attr.test.prog_fd = 0xFFFFFFFF  # EBADF from a kernel that knows the command


def _command_known(cmd: Cmd, fill) -> bool | None:
    attr = new_attr()
    fill(attr)
    try:
        bpf(cmd, attr)
    except BPFError as e:
        return e.errno != errno.EINVAL
    return True


@functools.cache
def features() -> tuple[Probe, ...]:
    """Commands and attributes beyond program and map types."""
    probes = []
    with Map.create(MapType.HASH, 4, 4, 1) as m:
        def batch(attr):
            attr.batch.map_fd = m.fd
            attr.batch.count = 0

        probes.append(Probe("map batch ops", _command_known(Cmd.MAP_LOOKUP_BATCH, batch), "5.6"))
    probes.append(Probe("test_run", _command_known(Cmd.PROG_TEST_RUN, _bad_prog_fd), "4.12"))

    def link(attr):
        attr.link_create.prog_fd = 0xFFFFFFFF
    probes.append(Probe("bpf_link (LINK_CREATE)", _command_known(Cmd.LINK_CREATE, link), "5.7"))
    probes.append(Probe("log_true_size", _log_true_size(), "6.4"))
    return tuple(probes)


def _log_true_size() -> bool:
    """Does the kernel report the log size it needed (attr.log_true_size)?"""
    attr, _keep = _prog_attr(ProgType.SOCKET_FILTER, EXIT0)
    fd, _ = load_with_log(Cmd.PROG_LOAD, attr, PROG_LOG, log_level=1, log_size=4096)
    os.close(fd)
    return attr.log_true_size > 0


# --- bpf_link kinds -----------------------------------------------------------------------
#
# Each kind is probed by loading a program of the right type and issuing
# BPF_LINK_CREATE with a target that cannot exist (fd -1, ifindex 0, protocol
# family 0).  A kernel with that link kind reaches the kind's own code, which
# fails on the target with a *distinct* errno; a kernel without it stops in
# link_create()'s ``default: return -EINVAL`` or in the attach-type check
# (kernel/bpf/syscall.c).  Nothing is ever attached.  Where the kind's code
# answers EINVAL for a bad target too (xdp), or where the only test would attach
# to a kernel function or tracepoint (tracing, raw_tracepoint, kprobe_multi,
# uprobe_multi), the kind is reported as not probed.

NO_FD = 0xFFFFFFFF  # -1 as __u32: fdget() fails with EBADF


@record(slots=False)
class _LinkSpec:
    since: str
    prog: ProgType
    attach: AttachType
    fill: str  # which impossible target: "fd", "ifindex", "pf"
    yes: int  # the errno the kind's own code answers with
    why: str  # which kernel function gives that errno
    extra: tuple = ()  # load_program keywords


LINK_KINDS = {
    "cgroup": _LinkSpec("5.7", ProgType.CGROUP_SKB, AttachType.CGROUP_INET_INGRESS, "fd",
                        errno.EBADF, "cgroup_bpf_link_attach: cgroup_get_from_fd",
                        (("expected_attach_type", "cgroup_inet_ingress"),)),
    "netns (flow_dissector)": _LinkSpec(
        "5.8", ProgType.FLOW_DISSECTOR, AttachType.FLOW_DISSECTOR, "fd", errno.EBADF,
        "netns_bpf_link_create: get_net_ns_by_fd",
        (("expected_attach_type", "flow_dissector"),)),
    "netns (sk_lookup)": _LinkSpec(
        "5.9", ProgType.SK_LOOKUP, AttachType.SK_LOOKUP, "fd", errno.EBADF,
        "netns_bpf_link_create: get_net_ns_by_fd", (("expected_attach_type", "sk_lookup"),)),
    "perf_event": _LinkSpec("5.15", ProgType.TRACEPOINT, AttachType.PERF_EVENT, "fd",
                            errno.EBADF, "bpf_perf_link_attach: perf_event_get"),
    "netfilter": _LinkSpec("6.4", ProgType.NETFILTER, AttachType.NETFILTER, "pf",
                           errno.EAFNOSUPPORT, "bpf_nf_link_attach: protocol family 0",
                           (("expected_attach_type", "netfilter"),)),
    "tcx": _LinkSpec("6.6", ProgType.SCHED_CLS, AttachType.TCX_INGRESS, "ifindex",
                     errno.ENODEV, "tcx_link_attach: no device with ifindex 0"),
    "netkit": _LinkSpec("6.7", ProgType.SCHED_CLS, AttachType.NETKIT_PRIMARY, "ifindex",
                        errno.ENODEV, "netkit_link_attach: no device with ifindex 0"),
    "sockmap": _LinkSpec("6.10", ProgType.SK_SKB, AttachType.SK_SKB_STREAM_VERDICT, "fd",
                         errno.EBADF, "sock_map_link_create: bpf_map_get_with_uref"),
}
#: Kinds not probed, with the reason and the kernel that brought them.
LINK_NOT_PROBED = {
    "xdp": ("5.9", "bpf_xdp_link_attach answers EINVAL for a missing device, as a kernel "
                   "without XDP links does; only attaching to a real device would tell"),
    "tracing (fentry/fexit/fmod_ret)": ("5.7", "would attach to a kernel function"),
    "raw_tracepoint": ("5.7", "would attach to a tracepoint"),
    "kprobe_multi": ("5.18", "would attach to kernel functions"),
    "uprobe_multi": ("6.6", "would attach to a binary"),
    "struct_ops": ("6.4", "needs a struct_ops map with a kernel-defined value type"),
}


@functools.cache
def link_kind(kind: str) -> Probe:
    """Does the kernel have bpf_link kind ``kind`` (a key of LINK_KINDS or LINK_NOT_PROBED)?"""
    name = f"link {kind}"
    if kind == "iter":
        return _iter_link()
    if kind in LINK_NOT_PROBED:
        since, why = LINK_NOT_PROBED[kind]
        return Probe(name, None, since, f"not probed: {why}")
    spec = LINK_KINDS.get(kind)
    if spec is None:
        known = ", ".join(sorted([*LINK_KINDS, *LINK_NOT_PROBED, "iter"]))
        raise ValueError(f"unknown link kind {kind!r}; known: {known}")
    try:
        prog = load_program(spec.prog, EXIT0, **dict(spec.extra))
    except BPFError as e:
        return Probe(name, False, spec.since, f"program type {spec.prog.name.lower()} does "
                     f"not load: {e.detail}")
    with prog:
        attr = new_attr()
        attr.link_create.prog_fd = prog.fd
        attr.link_create.attach_type = spec.attach
        if spec.fill == "fd":
            attr.link_create.target_fd = NO_FD
        elif spec.fill == "pf":
            attr.link_create.netfilter.pf = 0  # NFPROTO_UNSPEC
        try:
            os.close(bpf(Cmd.LINK_CREATE, attr))  # cannot happen: the target does not exist
            return Probe(name, True, spec.since, "a link was created on an empty target")
        except BPFError as e:
            if e.errno == spec.yes:
                return Probe(name, True, spec.since)
            if e.errno in (errno.EINVAL, errno.EOPNOTSUPP, ENOTSUPP):
                code = errno.errorcode.get(e.errno, "ENOTSUPP")
                return Probe(name, False, spec.since, f"{code}: LINK_CREATE stops before the "
                             "kind's own code (too old, or configured out)")
            return Probe(name, None, spec.since, f"unexpected {e.detail} (expected "
                         f"{errno.errorcode[spec.yes]} from {spec.why})")


def _iter_link() -> Probe:
    """An iterator link over BPF maps: created and closed, attached to nothing (5.8)."""
    name, since = "link iter", "5.8"
    try:
        target = vmlinux().func("bpf_iter_bpf_map").type_id
    except (BTFError, OSError) as e:
        return Probe(name, None, since, f"needs kernel BTF: {e}")
    try:
        prog = load_program(ProgType.TRACING, EXIT0, expected_attach_type=AttachType.TRACE_ITER,
                            attach_btf_id=target)
    except BPFError as e:
        return Probe(name, False, since, f"iterator program does not load: {e.detail}")
    with prog:
        attr = new_attr()
        attr.link_create.prog_fd = prog.fd
        attr.link_create.attach_type = AttachType.TRACE_ITER
        try:
            os.close(bpf(Cmd.LINK_CREATE, attr))
        except BPFError as e:
            return Probe(name, e.errno != errno.EINVAL and None, since, e.detail)
    return Probe(name, True, since)


def links() -> tuple[Probe, ...]:
    """Every bpf_link kind, probed where that can be done without attaching to anything."""
    kinds = [*LINK_KINDS, "iter", *LINK_NOT_PROBED]
    return tuple(link_kind(k) for k in kinds)
