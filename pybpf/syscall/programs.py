"""BPF programs: BPF_PROG_LOAD with verifier diagnostics, info, xlated dump, pinning.

    prog = load_program("socket_filter", insns, license="GPL", name="drop_all")

``insns`` is raw bytes (n * 8, little endian ``struct bpf_insn``), a list of
pybpf.asm instructions, or any object with ``encode(maps=...)`` (the
assembler's Program), which turns symbolic map references in LD_IMM64 into
the fds given in ``maps``.  A rejected program raises VerifierError carrying
the complete log, the failing instruction and, with line info, its source.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping, Sequence

from pybpf import asm
from pybpf._record import record
from pybpf.errors import AsmError, BPFError, VerifierError
from pybpf.syscall._ffi import address, ffi
from pybpf.syscall._uapi import AttachType, Cmd, ProgType, StatsType
from pybpf.syscall.bpf import bpf, new_attr, uapi_member
from pybpf.syscall.maps import check_name
from pybpf.syscall.objects import FdObject, cstring, fd_by_id, get_info, obj_get
from pybpf.syscall.testrun import TestRun, test_run
from pybpf.syscall.verifier import (
    LOG_LEVEL_STATS,
    PROG_LOG,
    VerifierStats,
    load_with_log,
    parse_failure,
    parse_stats,
)

BPF_INSN_SIZE = 8
LD_IMM64 = 0x18  # BPF_LD | BPF_DW | BPF_IMM: the one opcode spanning two slots


def prog_type(value) -> ProgType:
    """A ProgType from a ProgType, its int or its name ("xdp", "sched_cls")."""
    return uapi_member(ProgType, value, "program type")


def attach_type(value) -> AttachType:
    """An AttachType from an AttachType, its int or its name ("cgroup_inet_ingress")."""
    return uapi_member(AttachType, value, "attach type")


def instruction_bytes(insns, maps: Mapping[str, int] | None = None) -> bytes:
    """Raw instruction bytes from bytes, asm instructions or an object with ``encode(maps=)``."""
    if isinstance(insns, (bytes, bytearray, memoryview)):
        code = bytes(insns)
    elif isinstance(insns, str):
        raise TypeError("instructions must be bytes or assembled instructions, not str "
                        "(assemble text with pybpf.asm first)")
    elif hasattr(insns, "encode"):
        code = insns.encode(maps=dict(maps or {}))
    elif isinstance(insns, Sequence):
        code = asm.encode(insns, dict(maps or {}))
    else:
        raise TypeError(f"cannot load instructions from {type(insns).__name__}")
    if not code or len(code) % BPF_INSN_SIZE:
        raise ValueError(f"program of {len(code)} bytes is not a non-empty whole number of "
                         f"{BPF_INSN_SIZE}-byte instructions")
    return code


def disassemble_at(code: bytes, index: int) -> str | None:
    """The instruction in slot ``index`` of ``code`` in LLVM syntax (None if unavailable)."""
    start = index * BPF_INSN_SIZE
    if not 0 <= start < len(code):
        return None
    width = 2 * BPF_INSN_SIZE if code[start] == LD_IMM64 else BPF_INSN_SIZE
    try:
        decoded = asm.decode(code[start:start + width])
    except AsmError:
        return None
    return str(decoded[0]) if decoded else None


@record(slots=False)
class ProgramInfo:
    """struct bpf_prog_info, as the kernel reports it."""

    id: int
    type: ProgType | int
    name: str
    tag: str
    xlated_len: int
    jited_len: int
    map_ids: tuple[int, ...]
    verified_insns: int
    run_time_ns: int
    run_cnt: int
    recursion_misses: int
    load_time: int
    created_by_uid: int
    btf_id: int
    gpl_compatible: bool


class Program(FdObject):
    """A loaded BPF program owned through its fd."""

    kind = "prog"

    def __init__(self, fd: int, type: ProgType | int, name: str = "", *, log: str = "",
                 stats: VerifierStats | None = None):
        super().__init__(fd, name)
        self.type = type
        self.log = log
        self.stats = stats

    @classmethod
    def from_pinned(cls, path: str | os.PathLike) -> Program:
        """BPF_OBJ_GET of a pinned program."""
        return cls._from_fd(obj_get(path))

    @classmethod
    def from_id(cls, prog_id: int) -> Program:
        """BPF_PROG_GET_FD_BY_ID (needs CAP_SYS_ADMIN)."""
        return cls._from_fd(fd_by_id("prog", prog_id))

    @classmethod
    def _from_fd(cls, fd: int) -> Program:
        try:
            info = _info(fd)
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, info.type, info.name)

    def info(self) -> ProgramInfo:
        """BPF_OBJ_GET_INFO_BY_FD, map ids included."""
        return _info(self.fd)

    @property
    def id(self) -> int:
        """The kernel's program id."""
        return self.info().id

    def xlated(self) -> bytes:
        """The instructions after the verifier's rewrites (bpftool prog dump xlated)."""
        size = get_info(self.fd, "struct bpf_prog_info").xlated_prog_len
        buf = ffi.new("char[]", max(size, 1))

        def fill(info):
            info.xlated_prog_len = size
            info.xlated_prog_insns = address(buf)

        get_info(self.fd, "struct bpf_prog_info", fill)
        return ffi.buffer(buf, size)[:]

    def disassemble(self) -> list[str]:
        """The xlated instructions in LLVM syntax."""
        return [str(i) for i in asm.decode(self.xlated())]

    def test_run(self, data: bytes = b"", **kwargs) -> TestRun:
        """BPF_PROG_TEST_RUN; see pybpf.syscall.testrun.test_run."""
        return test_run(self, data, **kwargs)


def _info(fd: int) -> ProgramInfo:
    first = get_info(fd, "struct bpf_prog_info")
    count = first.nr_map_ids
    ids = ffi.new("uint32_t[]", max(count, 1))

    def fill(info):
        info.nr_map_ids = count
        info.map_ids = address(ids)

    i = get_info(fd, "struct bpf_prog_info", fill) if count else first
    try:
        ptype = ProgType(i.type)
    except ValueError:
        ptype = i.type
    return ProgramInfo(
        i.id, ptype, cstring(i.name), bytes(ffi.buffer(i.tag)).hex(), i.xlated_prog_len,
        i.jited_prog_len, tuple(ids[k] for k in range(min(count, i.nr_map_ids))),
        i.verified_insns, i.run_time_ns, i.run_cnt, i.recursion_misses, i.load_time,
        i.created_by_uid, i.btf_id, bool(i.gpl_compatible),
    )


def load_program(type, insns, *, license: str = "GPL", name: str = "",
                 maps: Mapping[str, int] | None = None, expected_attach_type=None,
                 attach_btf_id: int = 0, attach_btf_obj_fd: int = 0, attach_prog_fd: int = 0,
                 prog_btf_fd: int = 0, func_info: bytes = b"", func_info_rec_size: int = 8,
                 line_info: bytes = b"", line_info_rec_size: int = 16, flags: int = 0,
                 ifindex: int = 0, kern_version: int = 0, log_level: int = 0,
                 log_size: int = 64 * 1024, stats: bool = False,
                 source_lines: Mapping[int, str] | None = None) -> Program:
    """BPF_PROG_LOAD; VerifierError with the full log when the verifier says no.

    ``stats=True`` asks for BPF_LOG_STATS and sets ``Program.stats``;
    ``source_lines`` maps instruction index to "file:line: text" for errors.
    """
    ptype = prog_type(type)
    code = instruction_bytes(insns, maps)
    raw_name = check_name(name)
    lic = ffi.new("char[]", license.encode())
    code_buf = ffi.from_buffer(code)
    attr = new_attr()
    attr.prog_type = ptype
    attr.insn_cnt = len(code) // BPF_INSN_SIZE
    attr.insns = address(code_buf)
    attr.license = address(lic)
    ffi.memmove(attr.prog_name, raw_name, len(raw_name))
    if expected_attach_type is not None:
        attr.expected_attach_type = attach_type(expected_attach_type)
    attr.attach_btf_id = attach_btf_id
    if attach_prog_fd:
        attr.attach_prog_fd = attach_prog_fd
    elif attach_btf_obj_fd:
        attr.attach_btf_obj_fd = attach_btf_obj_fd
    attr.prog_flags = flags
    attr.prog_ifindex = ifindex
    attr.kern_version = kern_version
    keep = []
    if prog_btf_fd:
        attr.prog_btf_fd = prog_btf_fd
    for data, rec, field in ((func_info, func_info_rec_size, "func_info"),
                             (line_info, line_info_rec_size, "line_info")):
        if data:
            if len(data) % rec:
                raise ValueError(f"{field} of {len(data)} bytes is not a multiple of its record "
                                 f"size {rec}")
            buf = ffi.from_buffer(bytes(data))
            keep.append(buf)
            setattr(attr, field, address(buf))
            setattr(attr, f"{field}_rec_size", rec)
            setattr(attr, f"{field}_cnt", len(data) // rec)
    level = log_level | (LOG_LEVEL_STATS if stats else 0)
    try:
        fd, log = load_with_log(Cmd.PROG_LOAD, attr, PROG_LOG, log_level=level,
                                log_size=log_size)
    except BPFError as e:
        raise _verifier_error(e, code, name, source_lines) from e
    return Program(fd, ptype, name, log=log, stats=parse_stats(log) if stats else None)


def _verifier_error(e: BPFError, code: bytes, name: str,
                    source_lines: Mapping[int, str] | None) -> BPFError:
    log = getattr(e, "log", "")
    if not log.strip():
        if e.errno == errno.EINVAL:
            return BPFError(e.errno, e.command, f"{e.detail} (no verifier log: the kernel "
                            "rejected the attributes, e.g. program type, attach type or flags)")
        return e
    failure = parse_failure(log)
    index = failure.insn_index
    insn = disassemble_at(code, index) if index is not None else None
    if insn is None:
        insn = failure.insn_text
    source = failure.source
    if source_lines and index is not None and index in source_lines:
        source = source_lines[index]
    return VerifierError(e.errno, log, summary=failure.summary, insn_index=index, insn=insn,
                         source=source, program=name or None)


def enable_stats(kind: StatsType = StatsType.RUN_TIME) -> FdObject:
    """BPF_ENABLE_STATS: run_time_ns/run_cnt are counted while the returned fd is open."""
    attr = new_attr()
    attr.enable_stats.type = kind
    stats = FdObject(bpf(Cmd.ENABLE_STATS, attr), "stats")
    stats.kind = "stats"
    return stats
