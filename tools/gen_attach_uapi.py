#!/usr/bin/env python3
"""Generate the uapi tables of the attach and event code beyond linux/bpf.h.

    .venv/bin/python tools/gen_attach_uapi.py [--check]

Writes two modules (then run tools/gen_ffi.py, which compiles PERF_CDEF):

* pybpf/syscall/_perf_uapi.py from linux/perf_event.h: PERF_TYPE_*,
  PERF_COUNT_SW_*, PERF_SAMPLE_*, PERF_RECORD_*, PERF_FLAG_*, the
  PERF_EVENT_IOC_* ioctl numbers, the bit masks of the perf_event_attr
  bit-field word (disabled, watermark, ...), the cffi declaration of
  ``struct perf_event_attr`` with that word as one ``__u64 flags``, and the
  offsets of ``struct perf_event_mmap_page`` fields the reader uses;
* pybpf/syscall/attach/_net_uapi.py from asm/socket.h (SO_ATTACH_BPF, ...)
  and linux/pkt_sched.h (TC_H_*: the clsact parents).

Every value is computed by gcc from the headers (a C program prints each
name), so macros such as ``_IOW('$', 8, __u32)`` come out as the machine's C
compiler sees them (from /usr/include: linux-libc-dev); nothing is evaluated
by hand.  ``--check`` fails if the committed modules differ from what the
headers give.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

from pycparser import c_ast, c_generator, c_parser

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_bpf_uapi import find_types  # noqa: E402

#: gcc's default include directory, whose headers the values come from
INCLUDE = "/usr/include"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
PERF_OUT = os.path.join(ROOT, "pybpf", "syscall", "_perf_uapi.py")
NET_OUT = os.path.join(ROOT, "pybpf", "syscall", "attach", "_net_uapi.py")

#: perf_event.h names: enum members and #defines with these prefixes.
PERF_PREFIXES = ("PERF_TYPE_", "PERF_COUNT_SW_", "PERF_SAMPLE_", "PERF_RECORD_", "PERF_FLAG_",
                 "PERF_EVENT_IOC_")
#: struct perf_event_mmap_page fields the perf buffer reader touches.
MMAP_PAGE_FIELDS = ("data_head", "data_tail", "data_offset", "data_size")
#: asm/socket.h (the architecture's, which includes asm-generic/socket.h on x86_64/arm64/riscv64)
SOCKET_NAMES = ("SO_ATTACH_BPF", "SO_DETACH_BPF", "SO_ATTACH_REUSEPORT_EBPF")
#: linux/pkt_sched.h
PKT_SCHED_NAMES = ("TC_H_MAJ_MASK", "TC_H_MIN_MASK", "TC_H_CLSACT", "TC_H_MIN_INGRESS",
                   "TC_H_MIN_EGRESS")


def _run_c(includes: list[str], body: str) -> str:
    """Compile and run ``main(){body}`` with ``includes``; its stdout."""
    src = "#include <stdio.h>\n#include <stddef.h>\n#include <string.h>\n#include <stdint.h>\n"
    src += "".join(f"#include <{h}>\n" for h in includes)
    src += f"int main(void) {{\n{body}\nreturn 0;\n}}\n"
    with tempfile.TemporaryDirectory() as tmp:
        c, exe = os.path.join(tmp, "v.c"), os.path.join(tmp, "v")
        with open(c, "w") as f:
            f.write(src)
        subprocess.run(["gcc", "-o", exe, c], check=True)
        return subprocess.run([exe], check=True, capture_output=True, text=True).stdout


def c_values(includes: list[str], names: list[str]) -> dict[str, int]:
    """The integer value of each name (enum member or macro) as gcc evaluates it."""
    body = "\n".join(f'printf("%lld\\n", (long long)({n}));' for n in names)
    return dict(zip(names, map(int, _run_c(includes, body).split()), strict=True))


def header_names(path: str, prefixes: tuple[str, ...]) -> list[str]:
    """Enum members and object-like #defines of ``path`` starting with one of ``prefixes``."""
    text = open(path).read()
    found: list[str] = []
    alt = "|".join(re.escape(p) for p in prefixes)
    for m in re.finditer(rf"^\s*(?:#define\s+)?((?:{alt})\w+)(?:\s*=|\s*,|\s+\S)", text, re.M):
        if m.group(1) not in found:
            found.append(m.group(1))
    return found


def _preprocess(path: str) -> str:
    cmd = ["gcc", "-E", "-P", "-D__attribute__(x)=", "-D__extension__=",
           "-D__signed__=signed", path]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def perf_attr_cdef(path: str) -> tuple[str, list[tuple[str, int]]]:
    """``struct perf_event_attr`` for cffi, its bit-fields folded into ``__u64 flags``.

    Returns the declaration and the bit-fields as (name, width), in order.
    """
    text = _preprocess(path)
    start = text.index("struct perf_event_attr {")
    depth, end = 0, start
    for end in range(start, len(text)):  # the definition alone: the header's inline asm
        depth += {"{": 1, "}": -1}.get(text[end], 0)  # is beyond pycparser
        if depth == 0 and text[end] == "}":
            break
    types = "".join(f"typedef int __{t};" for t in ("u8", "u16", "u32", "u64", "s32", "s64"))
    tree = c_parser.CParser().parse(types + text[start:end + 1] + ";")
    struct = find_types(tree)["struct perf_event_attr"]
    decls, bits, folded = [], [], False
    for d in struct.type.decls:
        if d.bitsize is not None:
            width = int(d.bitsize.value)
            if d.name:
                bits.append((d.name, width))
            if not folded:
                decls.append(c_ast.Decl("flags", [], [], [], [], c_ast.TypeDecl(
                    "flags", [], None, c_ast.IdentifierType(["__u64"])), None, None))
                folded = True
            continue
        decls.append(d)
    struct.type.decls = decls
    text = "\n".join(line.rstrip() for line in
                     (c_generator.CGenerator().visit(struct) + ";").splitlines())
    total = sum(w for _, w in bits)
    if total != 64:
        raise ValueError(f"perf_event_attr bit-fields cover {total} bits, not one u64")
    return text, bits


def generate_perf() -> str:
    path = os.path.join(INCLUDE, "linux", "perf_event.h")
    names = header_names(path, PERF_PREFIXES)
    values = c_values(["linux/perf_event.h"], names)
    cdef, bits = perf_attr_cdef(path)
    # each bit-field's position: set it to 1 in a zeroed struct, read the word after read_format
    body = ["struct perf_event_attr a; uint64_t w;"]
    for name, _ in bits:
        body.append(f"memset(&a, 0, sizeof a); a.{name} = 1; memcpy(&w, (char *)&a + "
                    "offsetof(struct perf_event_attr, read_format) + 8, 8); "
                    'printf("%llu\\n", (unsigned long long)w);')
    body.append('printf("%zu\\n", sizeof(struct perf_event_attr));')
    body.append('printf("%zu\\n", offsetof(struct perf_event_attr, read_format) + 8);')
    body += [f'printf("%zu\\n", offsetof(struct perf_event_mmap_page, {f}));'
             for f in MMAP_PAGE_FIELDS]
    out = list(map(int, _run_c(["linux/perf_event.h"], "\n".join(body)).split()))
    lows, (size, flags_off), offsets = out[:len(bits)], out[len(bits):len(bits) + 2], \
        out[len(bits) + 2:]
    lines = [
        "# ruff: noqa: E501",
        '"""linux/perf_event.h: constants, struct perf_event_attr for cffi, mmap page offsets.',
        "",
        "Generated by tools/gen_attach_uapi.py; do not edit.",
        '"""',
        "",
    ]
    lines += [f"{n} = {v:#x}" if "IOC" in n else f"{n} = {v}" for n, v in values.items()]
    lines += ["", "# struct perf_event_attr bit-fields, as masks of its `flags` word"]
    for (name, width), low in zip(bits, lows, strict=True):
        if name.startswith("__"):
            continue  # reserved
        if low & (low - 1):
            raise ValueError(f"perf_event_attr.{name}: setting 1 gave {low:#x}")
        lines.append(f"PERF_ATTR_{name.upper()} = {((1 << width) - 1) * low:#x}"
                     f"  # {name}:{width} at bit {low.bit_length() - 1}")
    lines += ["", "# struct perf_event_mmap_page: byte offsets of the ring's positions"]
    lines += [f"MMAP_PAGE_{f.upper()} = {o}" for f, o in zip(MMAP_PAGE_FIELDS, offsets,
                                                               strict=True)]
    lines += ["", "# cffi declaration (bit-fields folded into `flags`); sizes measured by gcc",
              'PERF_CDEF = """', cdef, '"""',
              f"PERF_SIZES = {{'struct perf_event_attr': {size}}}",
              f"PERF_OFFSETS = {{'struct perf_event_attr': {{'flags': {flags_off}}}}}", ""]
    return "\n".join(lines)


def generate_net() -> str:
    socket_values = c_values(["asm/socket.h"], list(SOCKET_NAMES))
    sched_values = c_values(["linux/pkt_sched.h"], list(PKT_SCHED_NAMES))
    lines = [
        '"""asm/socket.h (SO_*BPF socket options) and linux/pkt_sched.h (TC_H_* handles).',
        "",
        "Generated by tools/gen_attach_uapi.py; do not edit.",
        '"""',
        "",
    ]
    lines += [f"{n} = {v}" for n, v in socket_values.items()]
    lines += [f"{n} = {v:#x}" for n, v in sched_values.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if the modules are stale")
    args = ap.parse_args(argv)
    status = 0
    for path, text in ((PERF_OUT, generate_perf()), (NET_OUT, generate_net())):
        if args.check:
            with open(path) as f:
                if f.read() != text:
                    print(f"{os.path.normpath(path)} is stale: run tools/gen_attach_uapi.py",
                          file=sys.stderr)
                    status = 1
            continue
        with open(path, "w") as f:
            f.write(text)
        print(f"wrote {os.path.normpath(path)}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
