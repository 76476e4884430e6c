"""A program: instructions, labels, functions and source positions.

Labels are names scoped to the program; jumps, local calls and function
address loads may target them. ``resolve()`` turns every label into a
relative offset and checks that it fits (a conditional jump or ``goto`` that
needs more than 16 bits is an error suggesting ``gotol``, never a silent
wrap). Undefined and duplicate labels are reported together, each with the
position of the line that used or defined it. Map references stay symbolic
until the loader supplies fds to ``encode(maps=...)``.
"""

from __future__ import annotations

from collections import namedtuple

from pybpf._record import record
from pybpf.asm.codec import encode
from pybpf.asm.instruction import S16, Instruction
from pybpf.asm.jump import Goto, Jump, MayGoto
from pybpf.asm.memory import LoadMap
from pybpf.errors import AsmError

TYPE_CHECKING = False  # as typing's, without importing it: these names are for annotations
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping


class SourcePos(namedtuple("SourcePos", "file line column text", defaults=(0, ""))):
    """Where an instruction came from: file, 1-based line and column, and the line's text.

    A namedtuple rather than a record: the assembler makes one per line. Not a
    typing.NamedTuple, which would import typing (and re) on every start-up.
    """

    __slots__ = ()

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" + (f":{self.column}" if self.column else "")


@record
class Function:
    """A function's name and the slot index of its first instruction."""

    name: str
    offset: int


_SHORT = (Jump, Goto, MayGoto)


class Program:
    """An ordered list of instructions with labels and per-instruction source positions."""

    def __init__(self, instructions: Iterable[Instruction] = (), name: str = "prog"):
        self.name = name
        self.instructions: list[Instruction] = []
        self._sources: list[SourcePos | None] = []
        self._lazy_sources: tuple | None = None
        self._labels: dict[str, int] = {}  # label -> instruction index
        self._label_pos: dict[str, SourcePos | None] = {}
        self._duplicates: list[tuple[str, SourcePos | None]] = []
        self._functions: list[tuple[str, int]] = [(name, 0)]
        for insn in instructions:
            self.append(insn)

    # --- building ---

    def append(self, insn: Instruction, source: SourcePos | None = None) -> Program:
        """Add one instruction; ``source`` is the position that produced it."""
        if not isinstance(insn, Instruction):
            raise AsmError(f"{insn!r} is not an instruction", str(source) if source else None)
        self.instructions.append(insn)
        if self._lazy_sources is None:
            self._sources.append(source)
        else:
            self.sources.append(source)  # the property materialises lazy sources first
        return self

    def extend(self, insns: Iterable[Instruction], source: SourcePos | None = None) -> Program:
        for insn in insns:
            self.append(insn, source)
        return self

    def label(self, name: str, source: SourcePos | None = None) -> Program:
        """Define ``name`` at the next instruction (duplicates are reported at resolve())."""
        if name in self._labels:
            self._duplicates.append((name, source))
        else:
            self._labels[name] = len(self.instructions)
            self._label_pos[name] = source
        return self

    def function(self, name: str, source: SourcePos | None = None) -> Program:
        """Start a bpf-to-bpf subprogram here: a label plus a func_info entry."""
        self.label(name, source)
        if len(self.instructions) == 0 and self._functions[0][1] == 0:
            self._functions[0] = (name, 0)
        else:
            self._functions.append((name, len(self.instructions)))
        return self

    # --- reading ---

    @property
    def sources(self) -> list[SourcePos | None]:
        """The source position of each instruction (None where unknown)."""
        if self._lazy_sources is not None:
            filename, lines, linenos = self._lazy_sources
            self._lazy_sources = None
            made = []
            for n in linenos:
                raw = lines[n - 1]
                made.append(SourcePos(filename, n, len(raw) - len(raw.lstrip()) + 1, raw))
            self._sources[:0] = made
        return self._sources

    def set_line_sources(self, filename: str, lines: list[str], linenos) -> None:
        """Give the first instructions' sources as line numbers into ``lines``, made lazily.

        The assembler uses this so that a million-line file does not build a
        million SourcePos objects unless someone asks for them.
        """
        if self._sources or self._lazy_sources is not None:
            raise AsmError("set_line_sources must come before any other source")
        self._lazy_sources = (filename, lines, linenos)

    def __len__(self) -> int:
        return len(self.instructions)

    def __iter__(self) -> Iterator[Instruction]:
        return iter(self.instructions)

    @property
    def labels(self) -> dict[str, int]:
        """Label name -> instruction index."""
        return dict(self._labels)

    def slot_offsets(self) -> list[int]:
        """The slot index of each instruction (a 64-bit immediate load takes two)."""
        out, slot = [], 0
        for insn in self.instructions:
            out.append(slot)
            slot += insn.slots
        return out

    @property
    def functions(self) -> list[Function]:
        """Functions (main first) with the slot offset where each starts."""
        slots = self.slot_offsets()
        total = sum(i.slots for i in self.instructions)
        return [Function(n, slots[i] if i < len(slots) else total) for n, i in self._functions]

    def map_names(self) -> set[str]:
        """Names of maps referenced symbolically, which the loader must resolve."""
        return {i.map for i in self.instructions if isinstance(i, LoadMap) and i.is_symbolic}

    # --- assembling ---

    def resolve(self) -> list[Instruction]:
        """Instructions with every label target replaced by its relative slot offset."""
        slots = self.slot_offsets()
        slots.append(slots[-1] + self.instructions[-1].slots if slots else 0)
        problems = [f"{_where(pos)}duplicate label {name!r} (first defined at "
                    f"{_where(self._label_pos[name]).rstrip(': ') or 'an earlier line'})"
                    for name, pos in self._duplicates]
        out = []
        for index, insn in enumerate(self.instructions):
            targets = insn.targets()
            if not targets or not isinstance(targets[0], str):
                out.append(insn)
                continue
            name = targets[0]
            if name not in self._labels:
                where = _where(self.sources[index])
                problems.append(f"{where}undefined label {name!r} in {insn}")
                out.append(insn)
                continue
            rel = slots[self._labels[name]] - (slots[index] + 1)
            if isinstance(insn, _SHORT) and not S16[0] <= rel <= S16[1]:
                where = _where(self.sources[index])
                hint = " (use gotol)" if isinstance(insn, Goto) else \
                    " (invert the condition around a gotol)" if isinstance(insn, Jump) else ""
                problems.append(f"{where}jump to {name!r} is {rel} slots away, beyond the s16 "
                                f"range of {type(insn).__name__}{hint}")
                out.append(insn)
                continue
            out.append(insn.with_target(rel))
        if problems:
            raise AsmError("\n".join(problems))
        return out

    def encode(self, maps: Mapping[str, int] | None = None) -> bytes:
        """Deterministic little-endian bytes; symbolic maps are looked up in ``maps``."""
        return encode(self.resolve(), maps)

    def listing(self, *, offsets: bool = True) -> str:
        """Disassembly with labels, and source lines where they change."""
        by_index: dict[int, list[str]] = {}
        for name, idx in self._labels.items():
            by_index.setdefault(idx, []).append(name)
        lines, last = [], None
        for index, (slot, insn) in enumerate(zip(self.slot_offsets(), self.instructions, strict=True)):
            for name in by_index.get(index, ()):
                lines.append(f"{name}:")
            src = self.sources[index]
            if src is not None and src != last and src.text:
                lines.append(f"; {src.text.strip()}  [{src}]")
                last = src
            lines.append(f"{slot:5}: {insn}" if offsets else f"\t{insn}")
        for name in by_index.get(len(self.instructions), ()):
            lines.append(f"{name}:")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.listing()


def _where(pos: SourcePos | None) -> str:
    return f"{pos}: " if pos is not None else ""
