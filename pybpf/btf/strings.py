"""The BTF string section: NUL-terminated names addressed by byte offset.

Offset 0 is always the empty string.  In split BTF (kernel modules) the
section continues the base's: offsets below the base's ``str_len`` name base
strings, larger ones index this section at ``offset - base_len``.
"""

from __future__ import annotations

from pybpf.errors import BTFError


class StringTable:
    """An append-only, deduplicated string section.

    Seeded from existing bytes (``StringTable(data)``) it keeps every old
    string at its old offset, so rebuilding parsed BTF reproduces its bytes.
    """

    __slots__ = ("_chunks", "_size", "_offsets", "base_len")

    def __init__(self, data: bytes = b"\0", base_len: int = 0):
        if not data:
            data = b"\0"
        if data[:1] != b"\0" or data[-1:] != b"\0":
            raise BTFError("string section must start and end with a NUL byte")
        self.base_len = base_len
        self._chunks = [bytes(data)]
        self._size = len(data)
        self._offsets: dict[str, int] = {}
        pos = 0
        for raw in bytes(data).split(b"\0")[:-1]:
            text = raw.decode("utf-8", "surrogateescape")
            self._offsets.setdefault(text, base_len + pos)
            pos += len(raw) + 1

    def add(self, text: str) -> int:
        """The offset of ``text``, appending it if it is new."""
        off = self._offsets.get(text)
        if off is not None:
            return off
        if "\0" in text:
            raise BTFError(f"BTF string {text!r} contains a NUL byte")
        try:
            raw = text.encode("utf-8") + b"\0"  # one wire.BtfStringSection entry
        except UnicodeEncodeError as e:
            raise BTFError(f"BTF string {text!r} is not valid UTF-8 text: {e}") from e
        off = self.base_len + self._size
        self._chunks.append(raw)
        self._size += len(raw)
        self._offsets[text] = off
        return off

    @property
    def data(self) -> bytes:
        """The section's bytes."""
        if len(self._chunks) > 1:
            self._chunks = [b"".join(self._chunks)]
        return self._chunks[0]

    def __len__(self) -> int:
        return self._size


def string_at(data: bytes, off: int, base: bytes = b"") -> str:
    """The NUL-terminated string at ``off``; base strings come first in split BTF."""
    if off < len(base):
        data, rel = base, off
    else:
        rel = off - len(base)
    if not 0 <= rel < len(data):
        raise BTFError(f"string offset {off} is outside the string section "
                       f"({len(base) + len(data)} bytes)")
    end = data.find(b"\0", rel)
    if end < 0:
        raise BTFError(f"string at offset {off} is not NUL-terminated")
    return data[rel:end].decode("utf-8", "surrogateescape")
