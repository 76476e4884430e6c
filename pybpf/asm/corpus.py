"""Reader of the bpf_conformance / ubpf ``.data`` test format.

A file is a header of ``#`` comments followed by sections, each opened by a
line ``-- name`` (optionally ``-- name @ file`` to take the body from a file
next to it)::

    -- asm          ubpf-style assembler text
    -- raw          instruction slots: u64 lines (0x...) or byte lines (07 00 ...)
    -- mem          hex bytes; the program gets r1 = pointer, r2 = length
    -- result       expected r0 (hex with 0x, else decimal)
    -- error        expected failure message (error pattern: a regex)

Other sections (``no jit``, ``c``, ``pyelf``, ``description`` ...) are kept
by name. Malformed files raise AsmError naming ``file:line``.
"""

from __future__ import annotations

import re
from pathlib import Path

from pybpf._record import field, record
from pybpf.errors import AsmError

KNOWN_SECTIONS = frozenset({
    "asm", "raw", "mem", "result", "error", "error pattern", "no jit",
    "no register offset", "c", "pyelf", "description", "reload", "unload",
})
"""Section names the bpf_conformance and ubpf runners understand."""

_HEADER = re.compile(r"--\s+(.*?)\s*(?:@\s*(\S+))?\s*$")
_U64 = re.compile(r"0[xX][0-9a-fA-F]{1,16}$")
_BYTE = re.compile(r"[0-9a-fA-F]{2}$")


@record
class Section:
    """One ``-- name`` section: its body text and the 1-based line its body starts on."""

    name: str
    text: str
    line: int
    source: str | None = None  # the ``@ file`` the body came from


@record
class TestFile:
    """A parsed ``.data`` file: its sections by name, in file order."""

    path: Path
    sections: dict[str, Section] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        """The body of section ``name``, or None when absent."""
        section = self.sections.get(name)
        return None if section is None else section.text

    @property
    def asm(self) -> str | None:
        """The ``-- asm`` text (comments kept; the assembler strips them)."""
        return self.get("asm")

    @property
    def asm_where(self) -> tuple[str, int]:
        """(file name, first line) of the asm text, for errors that point at the real source."""
        s = self.sections["asm"]
        if s.source:
            return str(self.path.parent / s.source), 1
        return str(self.path), s.line

    @property
    def raw(self) -> bytes | None:
        """The ``-- raw`` slots as little-endian instruction bytes."""
        s = self.sections.get("raw")
        return None if s is None else _raw_bytes(self.path, s)

    @property
    def mem(self) -> bytes | None:
        """The ``-- mem`` bytes (empty when the section is present but empty)."""
        s = self.sections.get("mem")
        return None if s is None else _hex_bytes(self.path, s)

    @property
    def result(self) -> int | None:
        """The expected r0 as an unsigned 64-bit value."""
        s = self.sections.get("result")
        if s is None:
            return None
        text = _strip(s.text).strip()
        try:
            return int(text, 16 if text.lower().startswith("0x") else 10) & (1 << 64) - 1
        except ValueError:
            raise AsmError(f"result {text!r} is not a number", f"{self.path}:{s.line}") from None

    @property
    def error(self) -> str | None:
        """The expected error message (``-- error`` or ``-- error pattern``)."""
        text = self.get("error")
        if text is None:
            text = self.get("error pattern")
        return None if text is None else text.strip()

    def unknown_sections(self) -> list[Section]:
        """Sections no runner understands (a misspelt or invented directive)."""
        return [s for s in self.sections.values() if s.name not in KNOWN_SECTIONS]


def _strip(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def _raw_bytes(path: Path, s: Section) -> bytes:
    out = bytearray()
    for n, line in enumerate(s.text.splitlines(), s.line):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) == 1 and _U64.match(words[0]):
            out += int(words[0], 16).to_bytes(8, "little")
        elif len(words) == 8 and all(_BYTE.match(w) for w in words):
            out += bytes(int(w, 16) for w in words)
        else:
            raise AsmError(f"raw line {line.strip()!r} is neither a 0x u64 nor 8 hex bytes",
                           f"{path}:{n}")
    return bytes(out)


def _hex_bytes(path: Path, s: Section) -> bytes:
    # Either plain hex bytes or tcpdump -x lines ("0x0010:  0040 a8de ...").
    digits = []
    for line in _strip(s.text).splitlines():
        words = line.split()
        if words and words[0].endswith(":"):
            words = words[1:]
        digits += words
    try:
        return bytes.fromhex("".join(digits))
    except ValueError:
        raise AsmError("mem is not hex bytes", f"{path}:{s.line}") from None


def parse(text: str, path: str | Path = "<data>") -> TestFile:
    """Split ``.data`` text into sections; ``@ file`` bodies are read relative to ``path``."""
    path = Path(path)
    sections: dict[str, Section] = {}
    name = source = None
    body: list[str] = []
    start = 0

    def close():
        if name is None:
            return
        text = "\n".join(body) + ("\n" if body else "")
        if source is not None:
            try:
                text = (path.parent / source).read_text()
            except OSError as e:
                raise AsmError(f"section {name!r} refers to {source}: {e.strerror}",
                               f"{path}:{start - 1}") from None
        sections[name] = Section(name, text, start, source)

    for n, line in enumerate(text.splitlines(), 1):
        m = _HEADER.match(line) if line.startswith("--") else None
        if m:
            close()
            name, source, body, start = m.group(1), m.group(2), [], n + 1
            if name in sections:
                raise AsmError(f"section {name!r} appears twice", f"{path}:{n}")
        elif name is not None:
            body.append(line)
        elif line.strip() and not line.lstrip().startswith("#"):
            raise AsmError(f"text before the first section: {line.strip()!r}", f"{path}:{n}")
    close()
    return TestFile(path, sections)


def read(path: str | Path) -> TestFile:
    """Parse the ``.data`` file at ``path``."""
    path = Path(path)
    return parse(path.read_text(), path)
