"""The ``pybpf`` command line.

    pybpf asm [FILE|-] [-o OUT] [--syntax llvm|ubpf] [--hex]
    pybpf disasm [FILE|-] [--hex] [--verbose]
    pybpf doctor
    pybpf list                    the tools in programs/, one line each
    pybpf dump NAME               a tool's bytecode with its Python source lines
    pybpf demo [NAME]             run one demo (or all) in a throwaway sandbox
    pybpf run NAME [options]      run a tool on a real interface or cgroup you name

Exit status 0 on success, 1 on a user error (one line per problem on
stderr, never a traceback), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pybpf.errors import PyBPFError


def _read(path: str, binary: bool) -> bytes | str:
    if path == "-":
        return sys.stdin.buffer.read() if binary else sys.stdin.read()
    try:
        with open(path, "rb" if binary else "r") as f:
            return f.read()
    except OSError as e:
        raise _UserError(f"{path}: {e.strerror}") from None


class _UserError(Exception):
    pass


def _cmd_asm(args) -> None:
    from pybpf.asm.llvm import assemble

    text = _read(args.file, binary=False)
    name = "<stdin>" if args.file == "-" else args.file
    if args.syntax == "ubpf":
        ubpf = importlib.import_module("pybpf.asm.ubpf")
        code = ubpf.encode_text(text, name)
    else:
        code = assemble(text, name).encode()
    out = (code.hex() + "\n").encode() if args.hex else code
    if args.output and args.output != "-":
        with open(args.output, "wb") as f:
            f.write(out)
    else:
        sys.stdout.buffer.write(out)
        sys.stdout.flush()


def _cmd_disasm(args) -> None:
    from pybpf.asm.codec import decode, encode

    data = _read(args.file, binary=True)
    if args.hex:
        text = data.decode("ascii", "replace")
        digits = "".join(text.replace("0x", " ").replace(",", " ").split())
        try:
            data = bytes.fromhex(digits)
        except ValueError:
            raise _UserError("input is not hex text (use without --hex for raw bytes)") from None
    slot = 0
    lines = []
    for insn in decode(data):
        if args.verbose:
            raw = encode(insn).hex(" ")
            lines.append(f"{slot:6}: {raw:<47}  {insn}")
        else:
            lines.append(str(insn))
        slot += insn.slots
    sys.stdout.write("".join(line + "\n" for line in lines))


def _cmd_doctor(args) -> None:
    doctor = importlib.import_module("pybpf.syscall.doctor")
    sys.stdout.write(doctor.report() + "\n")


def _cmd_list(args) -> None:
    from programs import all_tools

    tools = all_tools()
    width = max((len(t.name) for t in tools), default=0)
    for t in tools:
        print(f"{t.name:<{width}}  {t.summary}")


def _cmd_dump(args) -> None:
    from programs import find

    for prog in find(args.name).programs():
        print(f"== {prog.name} ({prog.kind.prog_type}"
              f"{', ' + prog.kind.attach_type if prog.kind.attach_type else ''})")
        print(prog.listing())
        print()


def _cmd_demo(args) -> None:
    from programs import all_tools, find

    tools = [find(args.name)] if args.name else [t for t in all_tools() if t.demo]
    for tool in tools:
        if tool.demo is None:
            raise _UserError(f"{tool.name} has no demo")
        print(f"=== {tool.name}: {tool.summary}")
        tool.demo()
        print()


def _cmd_run(args) -> None:
    from programs import find

    tool = find(args.name)
    if tool.run is None:
        raise _UserError(f"{tool.name} cannot run outside its demo")
    parser = argparse.ArgumentParser(prog=f"pybpf run {tool.name}", description=tool.summary)
    if tool.add_arguments:
        tool.add_arguments(parser)
    tool.run(parser.parse_args(args.rest))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pybpf", description="A pure-Python eBPF toolkit.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("asm", help="assemble text into raw eBPF instructions")
    p.add_argument("file", nargs="?", default="-", help="input text (default: stdin)")
    p.add_argument("-o", "--output", help="output file (default: stdout)")
    p.add_argument("--syntax", choices=("llvm", "ubpf"), default="llvm")
    p.add_argument("--hex", action="store_true", help="print hex instead of raw bytes")
    p.set_defaults(func=_cmd_asm)

    p = sub.add_parser("disasm", help="disassemble raw eBPF instructions into LLVM syntax")
    p.add_argument("file", nargs="?", default="-", help="input bytes (default: stdin)")
    p.add_argument("--hex", action="store_true", help="input is hex text")
    p.add_argument("-v", "--verbose", action="store_true", help="add slot offsets and bytes")
    p.set_defaults(func=_cmd_disasm)

    p = sub.add_parser("doctor", help="what this machine's kernel supports for BPF")
    p.set_defaults(func=_cmd_doctor)

    p = sub.add_parser("list", help="the tools in programs/")
    p.set_defaults(func=_cmd_list)
    p = sub.add_parser("dump", help="a tool's bytecode interleaved with its Python source")
    p.add_argument("name")
    p.set_defaults(func=_cmd_dump)
    p = sub.add_parser("demo", help="run a demo (all with no name) inside a throwaway sandbox")
    p.add_argument("name", nargs="?")
    p.set_defaults(func=_cmd_demo)
    p = sub.add_parser("run", help="run a tool on a real interface or cgroup")
    p.add_argument("name")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (PyBPFError, _UserError) as e:
        for line in str(e).splitlines():
            if line.strip() and not line.startswith("    "):
                print(f"pybpf {args.command}: {line}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
