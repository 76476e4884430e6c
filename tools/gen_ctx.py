#!/usr/bin/env python3
"""Generate pybpf/dsl/_ctx.py: the uapi context structs of BPF programs.

    .venv/bin/python tools/gen_ctx.py            # rewrite pybpf/dsl/_ctx.py
    .venv/bin/python tools/gen_ctx.py --check    # exit 1 if the file is stale

Three sources, each doing what it is good at:

* the running kernel's BTF (/sys/kernel/btf/vmlinux) gives every member of
  ``struct __sk_buff``, ``xdp_md``, ... with its offset, size and C type,
  looking through the anonymous unions (``__bpf_md_ptr``) the uapi uses;
* ``/usr/include/linux/bpf.h`` gives byte order: a member whose comment says
  "network byte order" becomes ``be32`` (``Array(be32, 4)`` for an address);
* gcc compiles ``offsetof``/``sizeof`` of every member against that header,
  and generation fails if it disagrees with BTF.

Byte order that neither comment nor type states exactly is in VALUE_TYPES
below, each entry with the kernel code it comes from.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pybpf.btf import model as m  # noqa: E402
from pybpf.btf.kernel import KernelBTF, vmlinux  # noqa: E402

OUTPUT = ROOT / "pybpf" / "dsl" / "_ctx.py"
HEADER = Path("/usr/include/linux/bpf.h")

# C name -> Python class name, in the order they are written out.
STRUCTS = {
    "xdp_md": "XdpMd",
    "__sk_buff": "SkBuff",
    "bpf_sock_addr": "BpfSockAddr",
    "bpf_sock_ops": "BpfSockOps",
    "sk_msg_md": "SkMsgMd",
    "sk_reuseport_md": "SkReuseportMd",
    "bpf_sock": "BpfSock",
    "bpf_sk_lookup": "BpfSkLookup",
    "bpf_sysctl": "BpfSysctl",
    "bpf_sockopt": "BpfSockopt",
    "bpf_cgroup_dev_ctx": "BpfCgroupDevCtx",
    "bpf_flow_keys": "BpfFlowKeys",
}

# Value types the header's comments cannot express: a __be16 port kept in the
# low-addressed two bytes of a __u32 slot (the other two bytes read as zero).
# A u32 load of such a slot gives the raw be16 value, so ntohs() of its low
# 16 bits is the port; writes must still store all 4 bytes.
#   bpf_sock_addr.user_port: sock_addr_convert_ctx_access() loads/stores
#     sockaddr_in.sin_port (__be16) with SOCK_ADDR_LOAD_OR_STORE_NESTED_FIELD.
#   sk_reuseport_md.eth_protocol: sk_reuseport_convert_ctx_access() loads
#     skb->protocol (__be16) zero-extended.
# Contrast remote_port in __sk_buff / bpf_sock_ops / sk_msg_md: the kernel
# shifts skc_dport left by 16 on little endian, so that u32 is a be32 whose
# value is the port (bpf_ntohl(remote_port)); the header comment covers it.
#   __sk_buff.protocol / vlan_proto: bpf_convert_ctx_access() loads skb->protocol
#     and skb->vlan_proto (__be16) zero-extended (compare with bpf_htons(ETH_P_IP)).
# Addresses the header leaves uncommented but the kernel copies from __be32 fields:
#   bpf_sock src_ip4/src_ip6/dst_ip4/dst_ip6: bpf_sock_convert_ctx_access() reads
#     skc_rcv_saddr / skc_daddr / skc_v6_*; bpf_flow_keys ipv6_src/ipv6_dst are the
#     flow dissector's struct in6_addr copies.
VALUE_TYPES = {
    ("bpf_sock_addr", "user_port"): "be16",
    ("sk_reuseport_md", "eth_protocol"): "be16",
    ("__sk_buff", "protocol"): "be16",
    ("__sk_buff", "vlan_proto"): "be16",
    ("bpf_sock", "src_ip4"): "be32",
    ("bpf_sock", "dst_ip4"): "be32",
    ("bpf_sock", "src_ip6"): "Array(be32, 4)",
    ("bpf_sock", "dst_ip6"): "Array(be32, 4)",
    ("bpf_flow_keys", "ipv6_src"): "Array(be32, 4)",
    ("bpf_flow_keys", "ipv6_dst"): "Array(be32, 4)",
}

# Struct reserves these attribute names (StructMeta skips them); such members get a
# trailing underscore in the Struct and keep their C name in FIELDS (CtxField.attr).
RESERVED = {"size", "align", "fields"}

_INTS = {(1, False): "u8", (2, False): "u16", (4, False): "u32", (8, False): "u64",
         (1, True): "s8", (2, True): "s16", (4, True): "s32", (8, True): "s64"}


@dataclass
class CField:
    """One named member, flattened out of anonymous unions and structs."""

    name: str
    offset: int
    slot: int          # bytes the member occupies in the struct
    ctype: str         # C spelling from BTF
    type: str          # pybpf.types expression for its value
    pointer: str       # "struct bpf_sock *" for __bpf_md_ptr members, else ""
    in_struct: bool    # False for a union alternative kept only in the table


def attr_name(name: str) -> str:
    """The Struct attribute for C member ``name``."""
    return name + "_" if name in RESERVED else name


def scalar_name(btf: KernelBTF, tid: int, ctype: str) -> str:
    """pybpf scalar for an integer (typedef'd __be16/__be32 keep their byte order)."""
    if ctype in ("__be16", "__be32", "__be64"):
        return ctype[2:]
    t = btf.type(btf.resolve(tid))
    if isinstance(t, (m.Enum, m.Enum64)):
        return _INTS[(t.size, False)]
    if not isinstance(t, m.Int):
        raise SystemExit(f"gen_ctx: cannot express C type {ctype!r} as a pybpf scalar")
    signed = bool(t.encoding & m.IntEncoding.SIGNED)
    return _INTS[(t.size, signed)]


def member_fields(btf: KernelBTF, member: m.Member, base: int, in_struct: bool) -> list[CField]:
    """The named leaf fields of one member (recursing into anonymous aggregates)."""
    offset = base + member.bit_offset // 8
    if member.bitfield_size:
        return []  # uapi uses unnamed bitfields only as padding (__u16 :16)
    tid = btf.resolve(member.type)
    t = btf.type(tid)
    if not member.name:
        if isinstance(t, m.Union):
            return union_fields(btf, t, offset, in_struct)
        if isinstance(t, m.Struct):
            out = []
            for x in t.members:
                out += member_fields(btf, x, offset, in_struct)
            return out
        return []
    ctype = btf.type_name(member.type)
    size = btf.size_of(member.type)
    if isinstance(t, m.Ptr):
        return [CField(member.name, offset, size, ctype, "u64", ctype, in_struct)]
    if isinstance(t, m.Array):
        elem = btf.type_name(t.type)
        return [CField(member.name, offset, size, ctype,
                       f"Array({scalar_name(btf, t.type, elem)}, {t.nelems})", "", in_struct)]
    return [CField(member.name, offset, size, ctype, scalar_name(btf, member.type, ctype),
                   "", in_struct)]


def union_fields(btf: KernelBTF, u: m.Union, offset: int, in_struct: bool) -> list[CField]:
    """All alternatives of an anonymous union; the first one that spans the whole union
    goes into the Struct, the others stay in the offset table as aliases."""
    alternatives = [member_fields(btf, x, offset, False) for x in u.members]
    chosen = None
    for i, alt in enumerate(alternatives):
        if alt and max(f.offset + f.slot for f in alt) - offset == u.size:
            chosen = i
            break
    out = []
    for i, alt in enumerate(alternatives):
        for f in alt:
            f.in_struct = in_struct and i == chosen
            out.append(f)
    if chosen is None:
        raise SystemExit(f"gen_ctx: no alternative of union at {offset} spans {u.size} bytes")
    return out


def struct_fields(btf: KernelBTF, cname: str) -> tuple[int, list[CField]]:
    layout = btf.struct(cname)
    t = btf.type(layout.type_id)
    fields = []
    for x in t.members:
        fields += member_fields(btf, x, 0, True)
    return layout.size, fields


# --- byte order from the header's comments --------------------------------

_MEMBER = re.compile(r"^\s*(?:__u8|__u16|__u32|__u64|__s32|__be16|__be32)\s+(\w+)(\[\d+\])?\s*;")


def network_order_members(text: str, cname: str) -> set[str]:
    """Members of ``struct cname`` whose own comment says "network byte order"."""
    match = re.search(r"^struct " + re.escape(cname) + r" \{\n(.*?)^\}", text, re.S | re.M)
    if not match:
        raise SystemExit(f"gen_ctx: struct {cname} not found in {HEADER}")
    found, current, comment = set(), None, ""
    for line in match.group(1).splitlines():
        decl = _MEMBER.match(line)
        if decl:
            current, comment = decl.group(1), line.split(";", 1)[1]
        elif current is not None:
            comment += " " + line  # continuation of a multi-line trailing comment
        if current is None or ("/*" in comment and "*/" not in comment):
            continue
        if "network byte order" in comment.lower():
            found.add(current)
        current, comment = None, ""
    return found


def apply_byte_order(cname: str, fields: list[CField], network: set[str]) -> None:
    for f in fields:
        forced = VALUE_TYPES.get((cname, f.name))
        if forced:
            f.type = forced
        elif f.name in network:
            if f.type == "u32":
                f.type = "be32"
            elif f.type == "Array(u32, 4)":
                f.type = "Array(be32, 4)"
            elif not f.type.startswith(("be", "Array(be")):
                raise SystemExit(f"gen_ctx: {cname}.{f.name} is {f.type} but documented "
                                 "as network byte order")


# --- gcc cross-check ----------------------------------------------------------

def gcc_offsets(structs: dict[str, list[CField]]):
    """offsetof/sizeof of every field as gcc computes them from linux/bpf.h.

    Returns (table, missing): members the installed header does not have yet
    (it can be older than the running kernel) are left out and listed in missing.
    """
    missing: set[tuple[str, str]] = set()
    for _ in range(50):
        try:
            out = _compile_and_run(structs, missing)
        except FileNotFoundError:
            print("gen_ctx: gcc not found; skipping the offsetof cross-check", file=sys.stderr)
            return None, missing
        except subprocess.CalledProcessError as e:
            absent = set(re.findall(r"'struct (\w+)' has no member named '(\w+)'",
                                    e.stderr.replace("\u2018", "'").replace("\u2019", "'")))
            if not absent - missing:
                raise SystemExit(f"gen_ctx: gcc failed:\n{e.stderr}") from e
            missing |= absent
            continue
        table = {}
        for line in out.splitlines():
            cname, name, off, size = line.split()
            table[(cname, name)] = (int(off), int(size))
        return table, missing
    raise SystemExit("gen_ctx: gcc keeps failing")


def _compile_and_run(structs, missing) -> str:
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/bpf.h>",
             "int main(void) {"]
    for cname, fields in structs.items():
        lines.append(f'printf("{cname} - 0 %zu\\n", sizeof(struct {cname}));')
        for f in fields:
            if (cname, f.name) in missing:
                continue
            lines.append(f'printf("{cname} {f.name} %zu %zu\\n", offsetof(struct {cname}, '
                         f'{f.name}), sizeof(((struct {cname} *)0)->{f.name}));')
    lines += ["return 0;", "}"]
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = os.path.join(tmp, "ctx.c"), os.path.join(tmp, "ctx")
        Path(src).write_text("\n".join(lines) + "\n")
        subprocess.run(["gcc", "-o", exe, src], check=True, capture_output=True, text=True,
                       env={**os.environ, "LC_ALL": "C"})
        return subprocess.run([exe], check=True, capture_output=True, text=True).stdout


# --- output -------------------------------------------------------------------

def render(sizes: dict[str, int], structs: dict[str, list[CField]], release: str) -> str:
    # Each struct is written as a function that makes its Struct class and CtxField
    # table, called on first use: a program has one context, and making all twelve
    # Structs and tables at import cost ~0.5 ms of every cold start.  No
    # ``from __future__ import annotations``: the field types are objects, which
    # StructMeta takes as they are (text it would have to eval).
    out = [
        '"""Context structs of BPF programs (uapi linux/bpf.h) as pybpf.types Structs.',
        "",
        "generated by tools/gen_ctx.py; do not edit.",
        "",
        f"Members, offsets and sizes: kernel BTF (Linux {release}), checked against",
        "/usr/include/linux/bpf.h with gcc offsetof.  Byte order: be16/be32 where the",
        "header says network byte order.  Union members (``__bpf_md_ptr`` pointers, the",
        "``args``/``reply`` union of bpf_sock_ops) are 8-byte u64 slots in the Struct; the",
        "alternatives the Struct cannot hold are in FIELDS with ``in_struct=False``.",
        "",
        "A ``be16`` in a 4-byte slot (``bpf_sock_addr.user_port``,",
        "``sk_reuseport_md.eth_protocol``) is the port / protocol in network byte order",
        "in the slot's first two bytes, the other two zero: the Struct declares be16 and",
        "the next member's alignment skips the rest; FIELDS gives ``slot=4`` because the",
        "kernel only accepts 4-byte stores there.",
        "",
        "A struct's class and table are made on first use, through ``STRUCTS``, ``FIELDS``",
        "or the class name (``_ctx.XdpMd``): a program needs one context struct, and",
        "making all of them took half a millisecond of every start-up.",
        '"""',
        "",
        "from collections import namedtuple",
        "from collections.abc import Mapping",
        "",
        "from pybpf.types import Array, Struct, be16, be32, s32, u8, u16, u32, u64",
        "",
        "",
        'class CtxField(namedtuple("CtxField", "name attr offset slot type ctype pointer in_struct")):',
        '    """One member of a context struct: offset, bytes it occupies, value type.',
        "",
        "    ``name`` as in C, ``attr`` its Struct attribute, ``offset``, ``slot`` (the bytes it",
        "    occupies), ``type`` (a pybpf scalar), ``ctype`` (the C type), ``pointer`` (what a",
        "    ``__bpf_md_ptr`` points to, or empty), ``in_struct`` (False for union alternatives).",
        "    A namedtuple: typing.NamedTuple would import typing (and re) on every start-up.",
        '    """',
        "",
        "    __slots__ = ()",
    ]
    for cname, pyname in STRUCTS.items():
        maker = "_" + cname.strip("_")
        out += ["", "",
                f"def {maker}():",
                f'    """struct {cname}: sizeof, Struct class, member name -> CtxField."""',
                "",
                f"    class {pyname}(Struct):",
                f'        """struct {cname}."""',
                "",
                f'        __qualname__ = "{pyname}"  # a module attribute (see __getattr__)',
                ""]
        for f in structs[cname]:
            if f.in_struct:
                note = f"  # {f.pointer}" if f.pointer else ""
                out.append(f"        {attr_name(f.name)}: {f.type}{note}")
        out += ["", f"    return {sizes[cname]}, {pyname}, {{"]
        for f in structs[cname]:
            args = (f'"{f.name}", "{attr_name(f.name)}", {f.offset}, {f.slot}, {f.type}, '
                    f'"{f.ctype}", "{f.pointer}", {f.in_struct}')
            line = f'        "{f.name}": CtxField({args}),'
            if len(line) > 100:
                line = f'        "{f.name}": CtxField(\n            {args}),'
            out.append(line)
        out.append("    }")
    out += ["", "", "# struct name -> the function making its Struct class and CtxField table",
            "_MAKERS = {"]
    for cname in STRUCTS:
        out.append(f'    "{cname}": _{cname.strip("_")},')
    out += ["}", "# Struct class name -> struct name",
            "_CLASSES = {"]
    for cname, pyname in STRUCTS.items():
        out.append(f'    "{pyname}": "{cname}",')
    out += ["}", "_made: dict = {}  # struct name -> ((sizeof, Struct class), CtxField table)",
            "",
            "",
            "def _make(cname: str) -> tuple:",
            '    """Struct ``cname``\'s ((sizeof, class), table), made once; KeyError if unknown."""',
            "    made = _made.get(cname)",
            "    if made is None:",
            "        size, cls, table = _MAKERS[cname]()",
            "        _check(cname, size, cls, table)",
            "        made = _made[cname] = (size, cls), table",
            "    return made",
            "",
            "",
            "def _check(cname: str, size: int, cls: type, table: dict) -> None:",
            '    """The Struct layout must reproduce the offset table exactly."""',
            "    if cls.size != size:",
            '        raise RuntimeError(f"{cls.__name__}.size {cls.size} != sizeof(struct {cname}) '
            '{size}")',
            "    names = [f.name for f in cls.fields]",
            "    expected = [f.attr for f in table.values() if f.in_struct]",
            "    if names != expected:",
            '        raise RuntimeError(f"{cls.__name__} fields {names} != {expected}")',
            "    by_attr = {f.attr: f for f in table.values() if f.in_struct}",
            "    for f in cls.fields:",
            "        row = by_attr[f.name]",
            "        if f.offset != row.offset or f.type != row.type or f.type.size > row.slot:",
            '            raise RuntimeError(f"{cls.__name__}.{f.name}: offset {f.offset}, '
            '{f.type!r} != {row}")',
            "",
            "",
            "class _Made(Mapping):",
            '    """struct name -> one part of what _make returns, made on first lookup."""',
            "",
            '    __slots__ = ("_part",)',
            "",
            "    def __init__(self, part: int):",
            "        self._part = part",
            "",
            "    def __getitem__(self, cname: str):",
            "        return (_made.get(cname) or _make(cname))[self._part]",
            "",
            "    def __iter__(self):",
            "        return iter(_MAKERS)",
            "",
            "    def __len__(self) -> int:",
            "        return len(_MAKERS)",
            "",
            "",
            "# struct name -> (sizeof, Struct class)",
            "STRUCTS: Mapping[str, tuple[int, type]] = _Made(0)",
            "# struct name -> member name -> CtxField (offset table, union aliases included)",
            "FIELDS: Mapping[str, dict[str, CtxField]] = _Made(1)",
            "",
            "",
            "def __getattr__(name: str) -> type:",
            '    """The Struct classes (``XdpMd``, ``SkBuff`` ...), made on first use (PEP 562)."""',
            "    if name not in _CLASSES:",
            '        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")',
            "    return _make(_CLASSES[name])[0][1]",
            "",
            "",
            "def __dir__() -> list[str]:",
            "    return [*globals(), *_CLASSES]",
            ""]
    return "\n".join(out)


def generate() -> str:
    btf = vmlinux()
    header = HEADER.read_text()
    sizes, structs = {}, {}
    for cname in STRUCTS:
        sizes[cname], fields = struct_fields(btf, cname)
        apply_byte_order(cname, fields, network_order_members(header, cname))
        structs[cname] = fields
    checked, missing = gcc_offsets(structs)
    if checked is not None:
        for cname, fields in structs.items():
            newer = [f for f in fields if (cname, f.name) in missing]
            header_size = checked[(cname, "-")][1]
            if header_size != sizes[cname] and not (
                    newer and all(f.offset >= header_size for f in newer)):
                raise SystemExit(f"gen_ctx: sizeof(struct {cname}): BTF {sizes[cname]}, "
                                 f"gcc {header_size}")
            for f in fields:
                if (cname, f.name) not in missing and checked[(cname, f.name)] != (f.offset,
                                                                                    f.slot):
                    raise SystemExit(f"gen_ctx: {cname}.{f.name}: BTF {(f.offset, f.slot)}, "
                                     f"gcc {checked[(cname, f.name)]}")
        for cname, name in sorted(missing):
            print(f"gen_ctx: {cname}.{name} is newer than {HEADER} (kept from BTF)",
                  file=sys.stderr)
    return render(sizes, structs, os.uname().release)


def _unversioned(text: str) -> str:
    """The output without the kernel release it was generated on."""
    return re.sub(r"kernel BTF \(Linux [^)]*\)", "", text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the output is stale")
    args = parser.parse_args()
    text = generate()
    if args.check:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if _unversioned(current) != _unversioned(text):
            print(f"{OUTPUT} is stale; run tools/gen_ctx.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
