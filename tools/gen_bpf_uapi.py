#!/usr/bin/env python3
"""Generate pybpf/syscall/_uapi.py from the uapi header linux/bpf.h.

Run at development time only; gcc and pycparser are needed here and never at
run time (afterwards, run tools/gen_ffi.py to refresh the cffi module built from CDEF):

    .venv/bin/python tools/gen_bpf_uapi.py [--header PATH] [--out PATH]

The header is preprocessed with ``gcc -E`` (attributes stripped) and parsed
with pycparser.  From it we take:

* the named enums pybpf uses (commands, map/program/attach/link types, helper
  ids, ...) and a few anonymous flag enums, as IntEnum/IntFlag classes;
* integer ``#define``s starting with ``BPF_`` (load flags, name lengths);
* the cffi declarations of ``union bpf_attr`` and the ``bpf_*_info`` structs,
  re-printed from the parsed tree, with each type's size measured by gcc so
  that ``_ffi`` can check cffi's layout against the C compiler's at import;
* helper prototypes from the doc comments (``long bpf_map_update_elem(struct
  bpf_map *map, const void *key, const void *value, u64 flags)``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from pycparser import c_ast, c_generator, c_parser

DEFAULT_HEADER = "/usr/include/linux/bpf.h"
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "pybpf", "syscall", "_uapi.py")

# Named enums: (C name, Python class, prefix stripped from member names, is a flag set).
NAMED_ENUMS = [
    ("bpf_cmd", "Cmd", "BPF_", False),
    ("bpf_map_type", "MapType", "BPF_MAP_TYPE_", False),
    ("bpf_prog_type", "ProgType", "BPF_PROG_TYPE_", False),
    ("bpf_attach_type", "AttachType", "BPF_", False),
    ("bpf_link_type", "LinkType", "BPF_LINK_TYPE_", False),
    ("bpf_func_id", "HelperId", "BPF_FUNC_", False),
    ("bpf_stats_type", "StatsType", "BPF_STATS_", False),
]

# Anonymous enums, recognised by one member: (member, Python class, prefix, is a flag set).
ANONYMOUS_ENUMS = [
    ("BPF_F_NO_PREALLOC", "MapFlags", "BPF_F_", True),
    ("BPF_NOEXIST", "UpdateFlags", "BPF_", False),
    ("BPF_RINGBUF_BUSY_BIT", "RingbufHeader", "BPF_RINGBUF_", False),
]

# Types declared for cffi (and everything they need).
CDEF_TYPES = [
    "union bpf_attr",
    "struct bpf_prog_info",
    "struct bpf_map_info",
    "struct bpf_btf_info",
    "struct bpf_link_info",
]

HELPER_LINE = re.compile(
    r"^ \* (?P<ret>(?:const )?(?:struct |enum |unsigned )?\w+(?: \w+)?[ *]*?)\s*"
    r"(?P<stars>\**)bpf_(?P<name>\w+)\((?P<args>[^()]*)\)\s*$"
)


def preprocess(header: str) -> str:
    """``gcc -E`` the header with GNU attributes removed, so pycparser can read it."""
    cmd = [
        "gcc", "-E", "-P", "-D__attribute__(x)=", "-D__extension__=",
        "-D__signed__=signed", header,
    ]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def macros(header: str) -> dict[str, str]:
    """The header's own ``#define NAME value`` lines (``gcc -dM``), function-like ones excluded."""
    out = subprocess.run(
        ["gcc", "-E", "-dM", header], check=True, capture_output=True, text=True
    ).stdout
    found = {}
    for line in out.splitlines():
        m = re.match(r"#define (BPF_\w+|BTF_\w+|XDP_\w+) (.+)$", line)
        if m:
            found[m.group(1)] = m.group(2).strip()
    return found


class ConstEval:
    """Evaluate the integer constant expressions found in enums and #defines."""

    def __init__(self) -> None:
        self.names: dict[str, int] = {}

    def literal(self, text: str) -> int:
        return int(text.rstrip("uUlL"), 0)

    def __call__(self, node: c_ast.Node) -> int:
        if isinstance(node, c_ast.Constant):
            if node.type == "char":
                return ord(node.value.strip("'"))
            return self.literal(node.value)
        if isinstance(node, c_ast.ID):
            return self.names[node.name]
        if isinstance(node, c_ast.Cast):
            return self(node.expr)
        if isinstance(node, c_ast.UnaryOp):
            value = self(node.expr)
            return {"-": -value, "~": ~value, "+": value, "!": int(not value)}[node.op]
        if isinstance(node, c_ast.BinaryOp):
            a, b = self(node.left), self(node.right)
            ops = {
                "<<": lambda: a << b, ">>": lambda: a >> b, "|": lambda: a | b,
                "&": lambda: a & b, "+": lambda: a + b, "-": lambda: a - b,
                "*": lambda: a * b, "/": lambda: a // b,
            }
            return ops[node.op]()
        raise ValueError(f"cannot evaluate {type(node).__name__}")

    def text(self, expr: str) -> int:
        tree = c_parser.CParser().parse(f"int x = {expr};")
        return self(tree.ext[0].init)


@dataclass
class Parsed:
    tree: c_ast.FileAST
    enums: dict[str, list[tuple[str, int]]]
    anonymous: list[list[tuple[str, int]]]
    evaluator: ConstEval


def parse(source: str) -> Parsed:
    tree = c_parser.CParser().parse(source)
    ev = ConstEval()
    enums: dict[str, list[tuple[str, int]]] = {}
    anonymous: list[list[tuple[str, int]]] = []

    class Visitor(c_ast.NodeVisitor):
        def visit_Enum(self, node: c_ast.Enum) -> None:
            if node.values is None:
                return
            members, value = [], -1
            for e in node.values.enumerators:
                value = ev(e.value) if e.value is not None else value + 1
                ev.names[e.name] = value
                members.append((e.name, value))
            if node.name:
                enums[node.name] = members
            else:
                anonymous.append(members)

    Visitor().visit(tree)
    return Parsed(tree, enums, anonymous, ev)


def enum_class(cls: str, c_name: str, members, prefix: str, flag: bool) -> str:
    """An IntEnum/IntFlag; a later name for an existing value becomes an alias of the first."""
    body, first = [], {}
    for name, value in members:
        if name.startswith("__") or not name.startswith(prefix):
            continue
        short = name[len(prefix):]
        if short[0].isdigit():
            short = "_" + short
        if value in first:
            body.append(f"    {short} = {first[value]}  # alias")
        else:
            first[value] = short
            body.append(f"    {short} = {value}")
    unique = not flag and not any(line.endswith("# alias") for line in body)
    if flag:
        head = ["", "", f"class {cls}(enum.IntFlag):"]
    else:
        head = ["", ""] + (["@enum.unique"] if unique else []) + ["@_int_enum", f"class {cls}:"]
    head += [f'    """{c_name} (linux/bpf.h)."""', ""]
    return "\n".join(head + body)


# Enums built when first asked for (through the module's __getattr__) rather than at
# import: HelperId has some 200 members (0.7 ms to build), and neither the DSL, which
# finds helpers in HELPER_PROTOS, nor a program load needs it.
DEFERRED_ENUMS = ("HelperId",)


def deferred_enum(cls: str, text: str) -> str:
    """The class ``text`` made by a function, and a module ``__getattr__`` calling it."""
    body = "\n".join(("    " + line) if line else line for line in text.strip("\n").splitlines())
    return "\n".join([
        "", "", f"def _make_{cls}() -> type[enum.IntEnum]:", body, "",
        f'    {cls}.__qualname__ = "{cls}"', f"    return {cls}", "", "",
        "def __getattr__(name: str):",
        f'    if name == "{cls}":  # built on first use, see tools/gen_bpf_uapi.py',
        f"        global {cls}",
        f"        {cls} = _make_{cls}()",
        f"        return {cls}",
        '    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")',
    ])


def find_types(tree: c_ast.FileAST) -> dict[str, c_ast.Node]:
    """Complete struct/union definitions at file scope, keyed ``"struct name"``."""
    found: dict[str, c_ast.Node] = {}
    for ext in tree.ext:
        t = getattr(ext, "type", None)
        if isinstance(t, (c_ast.Struct, c_ast.Union)) and t.name and t.decls is not None:
            kind = "struct" if isinstance(t, c_ast.Struct) else "union"
            found[f"{kind} {t.name}"] = ext
    return found


class CdefFixer(c_ast.NodeVisitor):
    """Turn enum-typed fields into __u32 (uapi enums are int-sized) and note referenced types."""

    def __init__(self) -> None:
        self.needs: list[str] = []

    def visit_TypeDecl(self, node: c_ast.TypeDecl) -> None:
        if isinstance(node.type, c_ast.Enum):
            node.type = c_ast.IdentifierType(["__u32"])
        elif isinstance(node.type, (c_ast.Struct, c_ast.Union)) and node.type.name:
            kind = "struct" if isinstance(node.type, c_ast.Struct) else "union"
            if node.type.decls is None:
                self.needs.append(f"{kind} {node.type.name}")
        self.generic_visit(node)


def cdef_text(tree: c_ast.FileAST) -> tuple[str, list[str]]:
    defs = find_types(tree)
    order: list[str] = []

    def want(name: str) -> None:
        if name in order:
            return
        fixer = CdefFixer()
        fixer.visit(defs[name])
        for dep in fixer.needs:
            if dep in defs:
                want(dep)
        order.append(name)

    for name in CDEF_TYPES:
        want(name)
    gen = c_generator.CGenerator()
    text = "\n".join(gen.visit(defs[name]) + ";" for name in order)
    return text, order


def measure(header: str, types: list[str]) -> dict[str, int]:
    """sizeof() of each type as gcc lays it out, for the import-time layout check."""
    body = "\n".join(f'printf("%zu\\n", sizeof({t}));' for t in types)
    src = f"#include <stdio.h>\n#include \"{os.path.abspath(header)}\"\nint main(void){{{body}return 0;}}\n"
    with tempfile.TemporaryDirectory() as tmp:
        c, exe = os.path.join(tmp, "m.c"), os.path.join(tmp, "m")
        with open(c, "w") as f:
            f.write(src)
        subprocess.run(["gcc", "-o", exe, c], check=True)
        out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
    return dict(zip(types, map(int, out.split()), strict=True))


def helper_protos(raw: str) -> dict[str, tuple[str, tuple[tuple[str, str], ...]]]:
    """Helper prototypes from the ``Description`` comments: name -> (return type, args)."""
    protos = {}
    for line in raw.splitlines():
        m = HELPER_LINE.match(line)
        if not m:
            continue
        ret = (m.group("ret").strip() + " " + m.group("stars")).strip()
        ret = re.sub(r"\s+\*", " *", ret)
        args = []
        text = m.group("args").strip()
        if text and text != "void":
            for part in text.split(","):
                if part.strip() == "...":
                    args.append(("...", "..."))
                    continue
                am = re.match(r"^(.*?)(\w+)(\[\d*\])?$", part.strip())
                ctype, aname = am.group(1).strip(), am.group(2)
                if am.group(3):
                    ctype += " *"
                args.append((re.sub(r"\s+\*", " *", ctype), aname))
        protos.setdefault(m.group("name"), (ret, tuple(args)))
    return protos


# The helper prototypes as text, one helper per line, each line parsed when the
# helper is first looked up: as a literal dict of nested tuples the table costs
# ~5 ms to compile whenever no .pyc can be used, and parsing all 200 lines at
# import costs 0.4 ms, while a program calls a handful of helpers.
HELPER_PROTOS_HEAD = '''
# Helper prototypes from the doc comments, one per line: name|id|return type|type:arg|...
_HELPER_PROTO_TABLE = """'''
HELPER_PROTOS_TAIL = '''"""


class _HelperProtos(Mapping):
    """name -> (return type, ((type, arg), ...)); varargs are ("...", "...")."""

    def __init__(self, table: str) -> None:
        self._table = table
        self._parsed: dict[str, tuple[int, str, tuple[tuple[str, ...], ...]]] = {}

    def _line(self, name: str) -> tuple[int, str, tuple[tuple[str, ...], ...]]:
        entry = self._parsed.get(name)
        if entry is None:
            named = isinstance(name, str) and name.isidentifier()
            start = self._table.find(f"\\n{name}|") + 1 if named else 0
            if not start:
                raise KeyError(name)
            _, number, ret, *args = self._table[start:self._table.index("\\n", start)].split("|")
            entry = self._parsed[name] = (
                int(number), ret, tuple(tuple(a.rsplit(":", 1)) for a in args))
        return entry

    def __getitem__(self, name: str) -> tuple[str, tuple[tuple[str, ...], ...]]:
        return self._line(name)[1:]

    def helper_id(self, name: str) -> int:
        """The helper's number in enum bpf_func_id (BPF_FUNC_<name>); KeyError if unknown."""
        return self._line(name)[0]

    def __iter__(self):
        return (line.partition("|")[0] for line in self._table.splitlines() if line)

    def __len__(self) -> int:
        return self._table.count("\\n") - 1


#: Helper prototypes: name -> (return type, ((type, arg), ...)).
HELPER_PROTOS = _HelperProtos(_HELPER_PROTO_TABLE)'''


def generate(header: str, label: str) -> str:
    raw = open(header).read()
    parsed = parse(preprocess(header))
    ev = parsed.evaluator
    out = [
        "# ruff: noqa: E501",
        f'"""uapi tables and cffi declarations from linux/bpf.h ({label}).',
        "",
        "Generated by tools/gen_bpf_uapi.py; do not edit.",
        f"Header sha256: {hashlib.sha256(raw.encode()).hexdigest()[:16]}",
        '"""',
        "",
        "import enum",
        "from collections.abc import Mapping",
        "",
        "# The IntEnums are built with enum._simple_enum, as the standard library builds its",
        "# own large enums (http.HTTPStatus, re.RegexFlag): the same classes in half the",
        "# import time (hundreds of members).  tests/syscall/test_uapi_enums.py compares",
        "# each with an ordinary enum.IntEnum of the same members.",
        "_int_enum = enum._simple_enum(enum.IntEnum)",
    ]
    for c_name, cls, prefix, flag in NAMED_ENUMS:
        text = enum_class(cls, f"enum {c_name}", parsed.enums[c_name], prefix, flag)
        out.append(deferred_enum(cls, text) if cls in DEFERRED_ENUMS else text)
    for member, cls, prefix, flag in ANONYMOUS_ENUMS:
        members = next(m for m in parsed.anonymous if any(n == member for n, _ in m))
        out.append(enum_class(cls, f"anonymous enum with {member}", members, prefix, flag))

    defines = {}
    for name, text in sorted(macros(header).items()):
        if name in ev.names or not re.search(rf"^#define {name}\b", raw, re.M):
            continue
        try:
            defines[name] = ev.text(text)
        except Exception:  # noqa: BLE001 - non-integer macros are skipped
            continue
    out.append("\n# Integer #defines of linux/bpf.h.")
    out.extend(f"{name} = {value}" for name, value in defines.items())

    cdef, order = cdef_text(parsed.tree)
    sizes = measure(header, order)
    out.append("\n# Layouts for cffi (enum fields as __u32; GNU attributes removed).")
    out.append('CDEF = """')
    out.append("typedef uint8_t __u8; typedef uint16_t __u16; typedef uint32_t __u32;")
    out.append("typedef uint64_t __u64; typedef int8_t __s8; typedef int16_t __s16;")
    out.append("typedef int32_t __s32; typedef int64_t __s64;")
    out.append("typedef uint64_t __aligned_u64; typedef uint16_t __be16; typedef uint32_t __be32;")
    out.append("\n".join(line.rstrip() for line in cdef.splitlines()))
    out.append('"""')
    out.append("\n# sizeof() of each declared type as measured with gcc on the generating machine.")
    out.append("SIZES = {")
    out.extend(f"    {t!r}: {n}," for t, n in sizes.items())
    out.append("}")

    protos = helper_protos(raw)
    ids = dict(parsed.enums["bpf_func_id"])
    out.append(HELPER_PROTOS_HEAD)
    for name, (ret, args) in protos.items():
        if f"BPF_FUNC_{name}" in ids:
            fields = [name, str(ids[f"BPF_FUNC_{name}"]), ret, *(f"{t}:{a}" for t, a in args)]
            if any("|" in f or "\n" in f for f in fields) or any(":" in a for _, a in args):
                raise ValueError(f"helper {name}: prototype {ret} {args} does not fit the table")
            out.append("|".join(fields))
    out.append(HELPER_PROTOS_TAIL)
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--header", default=DEFAULT_HEADER)
    ap.add_argument("--label", default=None, help="where the header came from (for the docstring)")
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    text = generate(args.header, args.label or args.header)
    with open(args.out, "w") as f:
        f.write(text)
    print(f"wrote {os.path.normpath(args.out)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
