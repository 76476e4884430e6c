"""Tracepoint programs: the record layout read from tracefs at build time.

``events/<category>/<name>/format`` lists every field of the record the
program receives (``field:long ret; offset:16; size:8; signed:1;``). These
become the context's fields, read-only, so ``p.ctx.ret`` and
``p.ctx.uservaddr`` work like struct fields and an unknown name is an error
listing the real ones. Byte arrays of 4 and 16 bytes (``__u8 saddr[4]``,
``saddr_v6[16]``) are addresses in network order and read as ``be32`` /
``be32[4]``; other arrays stay byte arrays.
"""

from __future__ import annotations

import os
import re

from pybpf.dsl.access import ContextError, FieldRule
from pybpf.types import SCALARS, Array, Bytes, Struct, be32

_FIELD = re.compile(r"field:(?P<decl>[^;]+);\s*offset:(?P<off>\d+);\s*size:(?P<size>\d+);"
                    r"\s*signed:(?P<signed>\d);")


def _field_type(decl: str, size: int, signed: bool):
    name = decl.split()[-1]
    m = re.match(r"(\w+)\[(\d+)\]$", name)
    if m:
        count = int(m[2])
        if size == 4 and count == 4:
            return m[1], be32
        if size == 16 and count == 16:
            return m[1], Array(be32, 4)
        elem = size // count
        if elem == 1:
            return m[1], Bytes(size)
        return m[1], Array(SCALARS[("s" if signed else "u") + str(elem * 8)], count)
    if size not in (1, 2, 4, 8):
        return name, Bytes(size)
    return name, SCALARS[("s" if signed else "u") + str(size * 8)]


class TracepointRules:
    """Context rules for one tracepoint: every record field readable, none writable."""

    def __init__(self, category: str, name: str, format_text: str):
        self.prog_type = "tracepoint"
        self.struct_name = f"{category}:{name}"
        self.fields: dict[str, FieldRule] = {}
        for m in _FIELD.finditer(format_text):
            fname, t = _field_type(m["decl"].strip(), int(m["size"]), m["signed"] == "1")
            size = int(m["size"])
            unit = t.elem.size if isinstance(t, Array) else (size if size in (1, 2, 4, 8) else 0)
            self.fields[fname] = FieldRule(fname, int(m["off"]), size, t,
                                           (unit,) if unit else (), (), None)
        if not self.fields:
            raise ContextError(f"tracepoint {self.struct_name} has no fields in its format")
        annotations = {n: r.type for n, r in self.fields.items()
                       if not n.startswith(("common_", "_"))}
        self.struct = type(f"tp_{name}", (Struct,), {"__annotations__": annotations})

    def field(self, name: str) -> FieldRule:
        try:
            return self.fields[name]
        except KeyError:
            raise ContextError(f"tracepoint {self.struct_name} has no field {name!r} (fields: "
                               f"{', '.join(self.fields)})") from None

    def check_load(self, name: str, size: int | None = None, index: int = 0) -> FieldRule:
        rule = self.field(name)
        if not rule.read_sizes:
            raise ContextError(f"{self.struct_name} field {name!r} ({rule.slot} bytes) has no "
                               "scalar type to read")
        return rule

    def check_store(self, name: str, size: int | None = None, index: int = 0) -> FieldRule:
        self.field(name)
        raise ContextError(f"tracepoint records are read-only: cannot write {name!r} of "
                           f"{self.struct_name}")


def tracepoint_rules(category: str, name: str) -> TracepointRules:
    """Read the tracepoint's format from tracefs (mounting it if needed)."""
    from pybpf.syscall.tracefs import tracefs_root

    path = os.path.join(tracefs_root(), "events", category, name, "format")
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        raise ContextError(f"no tracepoint {category}:{name} on this kernel ({path} missing)") from None
    return TracepointRules(category, name, text)
