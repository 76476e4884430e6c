"""Program BTF: FUNC records, func_info and line_info for BPF_PROG_LOAD.

With these the verifier log and ``bpftool prog dump xlated ... linum`` show
the user's Python source instead of bare instruction numbers.  The kernel
requires (kernel/bpf/verifier.c, check_btf_func / check_btf_line):

* one ``bpf_func_info`` per subprogram, in order, the first at insn 0, each
  naming a BTF_KIND_FUNC whose type is a FUNC_PROTO;
* ``bpf_line_info`` records sorted by ``insn_off`` with a record at the
  first instruction of every subprogram; file name and line text are
  offsets into the BTF string section.

Here ``insn_off`` counts instructions (a 16-byte ``ld_imm64`` counts two),
as BPF_PROG_LOAD expects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pybpf._record import field, record
from pybpf.asm.program import SourcePos
from pybpf.btf import model as m
from pybpf.btf.builder import Builder
from pybpf.btf.emit import encode, func_info_array, line_info_array
from pybpf.btf.strings import StringTable
from pybpf.btf.uapi import (
    FUNC_INFO_SIZE,
    LINE_INFO_SIZE,
    MAX_COLUMN,
    MAX_LINE,
    FuncLinkage,
    IntEncoding,
)
from pybpf.errors import BTFError


@record
class ProgramBTF:
    """What BPF_PROG_LOAD takes: ``prog_btf_fd`` (load ``btf`` first), func and line info."""

    btf: bytes
    func_info: bytes
    line_info: bytes
    func_info_rec_size: int = FUNC_INFO_SIZE
    line_info_rec_size: int = LINE_INFO_SIZE
    func_type_ids: Mapping[str, int] = field(default_factory=dict)

    @property
    def func_info_cnt(self) -> int:
        """Number of bpf_func_info records."""
        return len(self.func_info) // self.func_info_rec_size

    @property
    def line_info_cnt(self) -> int:
        """Number of bpf_line_info records."""
        return len(self.line_info) // self.line_info_rec_size


def program_btf(functions: Sequence[tuple[str, int]],
                lines: Sequence[tuple[int, SourcePos]] = (),
                *, args: Mapping[str, int] | None = None,
                builder: Builder | None = None) -> ProgramBTF:
    """BTF, func_info and line_info for a program.

    Positions are ``pybpf.asm.program.SourcePos`` (or anything with ``file``,
    ``line``, ``column`` and ``text``).

    ``functions`` are (name, first insn) for the main program (at insn 0)
    and every subprogram.  The main program is ``int name(void *ctx)`` with
    global linkage; subprograms are static ``int name(__u64 arg1, ...)``
    with ``args[name]`` arguments (default 0; the verifier only checks the
    signatures of global functions).  ``lines`` are (insn, SourcePos) for
    instructions with a known source; a line_info record is emitted where
    the position changes and at every function's first instruction.
    ``builder`` may already hold types (map values, globals) to share the blob.
    """
    funcs = sorted(functions, key=lambda f: f[1])
    _check_functions(funcs)
    b = builder if builder is not None else Builder()
    int_id = b.add(m.Int("int", 4, 32, IntEncoding.SIGNED))
    u64_id = b.add(m.Typedef("__u64", b.add(m.Int("long long unsigned int", 8, 64))))
    ctx_id = b.add(m.Ptr(0))
    func_ids, func_recs = {}, []
    for i, (name, insn) in enumerate(funcs):
        if i == 0:
            proto = m.FuncProto(int_id, (m.Param("ctx", ctx_id),))
            linkage = FuncLinkage.GLOBAL
        else:
            nargs = (args or {}).get(name, 0)
            if not 0 <= nargs <= 5:
                raise BTFError(f"function {name!r} has {nargs} arguments; BPF allows 0..5")
            proto = m.FuncProto(int_id, tuple(m.Param(f"arg{k}", u64_id)
                                              for k in range(1, nargs + 1)))
            linkage = FuncLinkage.STATIC
        func_ids[name] = b.add(m.Func(name, b.add(proto), linkage))
        func_recs.append((insn, func_ids[name]))

    strings = StringTable(base_len=len(b.base.strings) if b.base else 0)
    line_recs = [_line_record(insn, pos, strings) for insn, pos in _line_points(funcs, lines)]
    spec = b.spec()
    btf = encode(spec.types, strings=strings.data, base=b.base)
    return ProgramBTF(btf, func_info_array(func_recs), line_info_array(line_recs),
                      func_type_ids=func_ids)


def program_btf_for(program, **kwargs) -> ProgramBTF:
    """program_btf for an assembled ``pybpf.asm.Program``: its functions and the source
    position of every instruction (slot offsets, so ld_imm64 counts two)."""
    slots = program.slot_offsets()
    lines = [(slots[i], pos) for i, pos in enumerate(program.sources) if pos is not None]
    return program_btf([(f.name, f.offset) for f in program.functions], lines, **kwargs)


def _check_functions(funcs: list[tuple[str, int]]) -> None:
    if not funcs:
        raise BTFError("a program needs at least its main function")
    if funcs[0][1] != 0:
        raise BTFError(f"the first function {funcs[0][0]!r} starts at insn {funcs[0][1]}, "
                       "but the main program must start at insn 0")
    seen: dict[str, int] = {}
    offsets: set[int] = set()
    for name, insn in funcs:
        if not (name.isascii() and name.isidentifier()):   # [A-Za-z_][A-Za-z0-9_]*
            raise BTFError(f"function name {name!r} is not a C identifier (the kernel requires one)")
        if name in seen:
            raise BTFError(f"function {name!r} is listed twice (insn {seen[name]} and {insn})")
        if insn in offsets:
            raise BTFError(f"two functions start at insn {insn}")
        seen[name] = insn
        offsets.add(insn)


def _line_points(funcs, lines) -> list[tuple[int, SourcePos]]:
    """(insn, pos) where the position changes, plus every function's first insn."""
    ordered = sorted(lines, key=lambda x: x[0])
    for (a, _), (b_, _) in zip(ordered, ordered[1:], strict=False):
        if a == b_:
            raise BTFError(f"two source positions for insn {a}")
    if not ordered:
        return []
    starts = {insn for _, insn in funcs}
    points, last = [], None
    for insn, pos in ordered:
        key = (pos.file, pos.line, pos.column)
        if key != last or insn in starts:
            points.append((insn, pos))
            last = key
    # A function whose first instruction has no position borrows its first known one.
    have = {insn for insn, _ in points}
    bounds = sorted(starts) + [None]
    for start, end in zip(bounds, bounds[1:], strict=False):
        if start in have:
            continue
        inside = [p for insn, p in ordered if insn >= start and (end is None or insn < end)]
        if inside:
            points.append((start, inside[0]))
    return sorted(points, key=lambda x: x[0])


def _line_record(insn: int, pos: SourcePos, strings: StringTable) -> tuple[int, ...]:
    """(insn_off, file_name_off, line_off, line, column) for one bpf_line_info."""
    if not 0 < pos.line <= MAX_LINE:
        raise BTFError(f"{pos.file}: line {pos.line} does not fit bpf_line_info (1..{MAX_LINE})")
    column = pos.column if 0 <= pos.column <= MAX_COLUMN else 0  # 0 = column unknown
    return (insn, strings.add(pos.file), strings.add(pos.text.rstrip("\r\n")), pos.line, column)
