"""Assembler for LLVM's BPF syntax (as llvm-mc 19 accepts it and llvm-objdump 19 prints it).

::

    entry:                        # labels end with ':'
        r1 = 0x1234 ll            # 64-bit immediate
        w0 s/= w1                 # 32-bit signed division
        r0 = *(s8 *)(r1 + 0)      # sign-extending load
        if r1 > r2 goto entry     # labels or +N/-N slot offsets
        lock *(u64 *)(r1 + 0) += r2
        r2 = atomic_fetch_add((u64 *)(r1 + 0), r2)
        call 5                    # helper; `call name` calls a local function
        exit

Also accepted: ``#``, ``//`` and ``;`` comments, llvm-objdump's address and
byte columns and ``<sym+off>`` annotations, and pybpf's spellings for forms
LLVM only expresses with relocations (``ld_pseudo r1, 2, 5, 16``,
``call pc+3``, ``call kfunc(1234)``, ``r0 = *(u16 *)skb[r2 + 4]``,
``load_acquire``/``store_release`` as LLVM 21 spells them).
Dispatch is on the first token so that a million lines assemble quickly.
"""

from __future__ import annotations

import re
from array import array

from pybpf.asm.alu import AddrSpaceCast, Alu, Arith, ByteOrder, Endian, Neg
from pybpf.asm.instruction import no_gc
from pybpf.asm.jump import (
    CONDITIONS,
    Call,
    CallKfunc,
    CallLocal,
    CallX,
    Exit,
    Goto,
    GotoLong,
    Jump,
    MayGoto,
)
from pybpf.asm.memory import (
    Atomic,
    AtomicKind,
    Load,
    LoadAbs,
    LoadAcquire,
    LoadBtfId,
    LoadFunc,
    LoadImm64,
    LoadInd,
    LoadMap,
    LoadSX,
    Store,
    StoreImm,
    StoreRelease,
)
from pybpf.asm.opcode import Size
from pybpf.asm.program import Program, SourcePos
from pybpf.asm.register import REGS, Reg
from pybpf.errors import AsmError

_NUM = r"[+-]?\s*(?:0[xX][0-9a-fA-F]+|\d+)"
_IDENT = r"[A-Za-z_.$][\w.$]*"
_REG = r"([rw])(\d+)"
_TARGET = r"([+-]?\s*(?:0[xX][0-9a-fA-F]+|\d+)|[A-Za-z_.$][\w.$]*)"
_MEM = rf"\*\(([us])(8|16|32|64) \*\)\(r(\d+) ?([+-]) ?({_NUM})\)"
_ADDR = rf"r(\d+) ?([+-]) ?({_NUM})"

_SIZES = {"8": Size.B, "16": Size.H, "32": Size.W, "64": Size.DW}
_OPS = {a.operator: a for a in Arith if not a.sign_extends and a != Arith.MOV}
_CONDS = {v: k for k, v in CONDITIONS.items()}
_LOCK = {"+=": AtomicKind.ADD, "|=": AtomicKind.OR, "&=": AtomicKind.AND, "^=": AtomicKind.XOR}
_FETCH = {"add": AtomicKind.FETCH_ADD, "or": AtomicKind.FETCH_OR,
          "and": AtomicKind.FETCH_AND, "xor": AtomicKind.FETCH_XOR}

_RE_COMMENT = re.compile(r"\s*(?:#|//|;).*$")
_RE_OBJDUMP = re.compile(r"^\s*\d+:\s+(?:(?:[0-9a-f]{2}[ \t]){8}\s*)?")
_RE_ANNOT = re.compile(r"\s*<[^>]*>\s*$")
_RE_LABEL = re.compile(r"^\s*([A-Za-z_.$][\w.$]*)\s*:\s*")
_RE_SPACES = re.compile(r"\s+")
_RE_IF = re.compile(rf"if {_REG} (s?[<>]=?|==|!=|&) (?:{_REG}|({_NUM})) goto {_TARGET}$")
_RE_STORE = re.compile(rf"{_MEM} = (?:{_REG}|({_NUM}))$")
_RE_LOCK = re.compile(rf"lock {_MEM} ([+|&^]=) {_REG}$")
_RE_ASSIGN = re.compile(rf"{_REG} (s?[-+*/%|&^]=|s?<<=|s?>>=|=) (.+)$")
_RE_LOAD = re.compile(rf"{_MEM}$")
_RE_SKB = re.compile(rf"\*\(u(8|16|32) \*\)skb\[(?:r(\d+)(?: ?([+-]) ?({_NUM}))?|({_NUM}))\]$")
_RE_FETCH = re.compile(rf"atomic_fetch_(add|or|and|xor)\(\(u(32|64) \*\)\({_ADDR}\), {_REG}\)$")
_RE_XCHG = re.compile(rf"xchg(32_32|_64)\({_ADDR}, {_REG}\)$")
_RE_CMPXCHG = re.compile(rf"cmpxchg(32_32|_64)\({_ADDR}, ([rw])0, {_REG}\)$")
_RE_ACQ = re.compile(rf"load_acquire\(\(u(8|16|32|64) \*\)\({_ADDR}\)\)$")
_RE_REL = re.compile(rf"store_release\(\(u(8|16|32|64) \*\)\({_ADDR}\), {_REG}\)$")
_RE_CAST = re.compile(rf"addr_space_cast\(r(\d+), ({_NUM}), ({_NUM})\)$")
_RE_SEXT = re.compile(rf"\(s(8|16|32)\) ?{_REG}$")
_RE_SWAP = re.compile(rf"(le|be|bswap)(16|32|64) {_REG}$")
_RE_LL = re.compile(rf"(?:({_NUM})|([A-Za-z_.$][\w.$]*)) ll$")
_RE_PSEUDO = re.compile(rf"ld_pseudo r(\d+), ?(\d), ?({_TARGET})(?:, ?({_NUM}))?$")
_RE_CALL = re.compile(rf"call (?:pc({_NUM})|kfunc\(({_NUM})(?:, ?({_NUM}))?\)|({_NUM})|({_IDENT}))$")
_RE_TARGET_ONLY = re.compile(_TARGET)
_RE_CALLX = re.compile(rf"callx {_REG}")
_RE_REG_ONLY = re.compile(_REG)
_RE_NUM_ONLY = re.compile(_NUM)
_RE_NEG = re.compile(rf"-{_REG}")
_IGNORED_DIRECTIVES = (".text", ".globl", ".global", ".p2align", ".align", ".type", ".size",
                       ".file", ".section", ".addrsig", ".ident")


def _num(text: str) -> int:
    text = text.replace(" ", "")
    return int(text, 16) if "x" in text or "X" in text else int(text, 10)


def _target(text: str) -> int | str:
    text = text.replace(" ", "")
    return _num(text) if text[0] in "+-0123456789" else text


class _Line:
    """One source line being parsed; knows how to report an error at a token."""

    __slots__ = ("where", "raw")

    def __init__(self, file: str, lineno: int, raw: str):
        self.where = (file, lineno)
        self.raw = raw

    def error(self, message: str, token: str | None = None) -> AsmError:
        col = self.raw.find(token) + 1 if token and token in self.raw else 1
        file, lineno = self.where
        return AsmError(f"{message}\n    {self.raw.rstrip()}\n    {' ' * (col - 1)}^",
                        f"{file}:{lineno}:{max(col, 1)}")


def _reg(kind: str, num: str, line: _Line, want: str | None = None) -> Reg:
    n = int(num)
    if n > 10 or (want is not None and kind != want):
        return _bad_reg(kind, num, n, line, want)
    return REGS[n]


def _bad_reg(kind: str, num: str, n: int, line: _Line, want: str | None):
    if n > 10:
        raise line.error(f"register {kind}{n} does not exist (r0..r10)", f"{kind}{num}")
    if want is not None and kind != want:
        raise line.error(f"expected a {'64-bit r' if want == 'r' else '32-bit w'} register here, "
                         f"got {kind}{n}", f"{kind}{num}")


def _mem_off(sign: str, num: str) -> int:
    v = _num(num)
    return -v if sign == "-" else v


def parse_instruction(text: str, line: _Line):
    """Parse one instruction (comments and labels already removed)."""
    s = text.strip()
    if "  " in s or "\t" in s:
        s = _RE_SPACES.sub(" ", s)
    first = s.split(" ", 1)[0]
    if s == "exit":
        return Exit()
    if first == "if":
        return _parse_if(s, line)
    if first in ("goto", "gotol", "may_goto"):
        rest = s[len(first):].strip()
        if not _RE_TARGET_ONLY.fullmatch(rest):
            raise line.error(f"expected a label or +N/-N offset after {first}", rest or first)
        t = _target(rest)
        return {"goto": Goto, "gotol": GotoLong, "may_goto": MayGoto}[first](t)
    if first == "call":
        return _parse_call(s, line)
    if first == "callx":
        m = _RE_CALLX.fullmatch(s)
        if not m:
            raise line.error("expected `callx rN`", s)
        return CallX(_reg(m[1], m[2], line, "r"))
    if first == "lock":
        return _parse_lock(s, line)
    if s.startswith("*("):
        return _parse_store(s, line)
    if first.startswith("store_release"):
        m = _RE_REL.fullmatch(s)
        if not m:
            raise line.error("expected `store_release((uN *)(rB + off), reg)`", s)
        size = _SIZES[m[1]]
        src = _reg(m[5], m[6], line, "r" if size == Size.DW else "w")
        return StoreRelease(_reg("r", m[2], line), src, _mem_off(m[3], m[4]), size)
    if first == "ld_pseudo":
        return _parse_pseudo(s, line)
    if first[:1] in ("r", "w") and first[1:].isdigit():
        return _parse_assign(s, line)
    raise line.error(f"unknown instruction {first!r}", first)


def _parse_if(s: str, line: _Line):
    m = _RE_IF.fullmatch(s)
    if not m:
        raise line.error("expected `if rA <op> (rB|imm) goto <label|+N>` with op one of "
                         "== != > >= < <= s> s>= s< s<= &", s)
    kind = m[1]
    dst = _reg(kind, m[2], line)
    op = _CONDS.get(m[3])
    if op is None:
        raise line.error(f"unknown condition {m[3]!r}", m[3])
    src = _reg(m[4], m[5], line, kind) if m[4] else _num(m[6])
    return Jump(op, dst, src, _target(m[7]), 32 if kind == "w" else 64)


def _parse_call(s: str, line: _Line):
    m = _RE_CALL.fullmatch(s)
    if not m:
        raise line.error("expected `call N` (helper), `call name` (local function), "
                         "`call pc+N` or `call kfunc(id)`", s)
    if m[1] is not None:
        return CallLocal(_num(m[1]))
    if m[2] is not None:
        return CallKfunc(_num(m[2]), _num(m[3]) if m[3] else 0)
    if m[4] is not None:
        return Call(_num(m[4]))
    return CallLocal(m[5])


def _parse_lock(s: str, line: _Line):
    m = _RE_LOCK.fullmatch(s)
    if not m:
        raise line.error("expected `lock *(u32|u64 *)(rB + off) (+=|&=|^=||=) reg`", s)
    if m[1] == "s":
        raise line.error("atomic operations take u32 or u64", s)
    size = _SIZES[m[2]]
    want = "r" if size == Size.DW else "w"
    return Atomic(_LOCK[m[6]], _reg("r", m[3], line), _reg(m[7], m[8], line, want),
                  _mem_off(m[4], m[5]), size)


def _parse_store(s: str, line: _Line):
    m = _RE_STORE.fullmatch(s)
    if not m or m[1] == "s":
        raise line.error("expected `*(uN *)(rB + off) = reg|imm`", s)
    size = _SIZES[m[2]]
    base, off = _reg("r", m[3], line), _mem_off(m[4], m[5])
    if m[6]:
        want = "r" if size == Size.DW else "w"
        return Store(base, _reg(m[6], m[7], line, want), off, size)
    return StoreImm(base, _num(m[8]), off, size)


def _parse_pseudo(s: str, line: _Line):
    m = _RE_PSEUDO.fullmatch(s)
    if not m:
        raise line.error("expected `ld_pseudo rN, kind, value[, extra]`", s)
    dst, kind, value, extra = _reg("r", m[1], line), int(m[2]), _target(m[3]), m[5]
    extra_v = _num(extra) if extra else 0
    if kind in (1, 2, 5, 6):
        if isinstance(value, int) and value < 0:
            raise line.error(f"map reference {value} must not be negative", m[3])
        offset = extra_v if kind in (2, 6) else None
        if kind in (1, 5) and extra_v:
            raise line.error(f"ld_pseudo kind {kind} takes no value offset", extra)
        return LoadMap(dst, value, offset, by_index=kind in (5, 6))
    if kind == 3:
        return LoadBtfId(dst, value, extra_v)
    if kind == 4:
        return LoadFunc(dst, value)
    raise line.error(f"unknown ld_pseudo kind {kind} (1 map fd, 2 map value, 3 BTF id, "
                     "4 function, 5 map index, 6 map index value)", m[2])


def _parse_assign(s: str, line: _Line):
    m = _RE_ASSIGN.fullmatch(s)
    if not m:
        raise line.error("expected `reg op= operand`", s)
    kind, op, rhs = m[1], m[3], m[4]
    dst = _reg(kind, m[2], line)
    width = 32 if kind == "w" else 64
    if op != "=":
        arith = _OPS.get(op)
        if arith is None:
            raise line.error(f"unknown operator {op!r}", op)
        rm = _RE_REG_ONLY.fullmatch(rhs)
        if rm:
            return Alu(arith, dst, _reg(rm[1], rm[2], line, kind), width)
        if not _RE_NUM_ONLY.fullmatch(rhs):
            raise line.error(f"expected a register or an immediate after {op}", rhs)
        return Alu(arith, dst, _num(rhs), width)
    return _parse_rhs(dst, kind, width, rhs, line)


def _parse_rhs(dst: Reg, kind: str, width: int, rhs: str, line: _Line):
    rm = _RE_REG_ONLY.fullmatch(rhs)
    if rm:
        return Alu(Arith.MOV, dst, _reg(rm[1], rm[2], line, kind), width)
    if _RE_NUM_ONLY.fullmatch(rhs):
        return Alu(Arith.MOV, dst, _num(rhs), width)
    if rhs.startswith("*("):
        m = _RE_LOAD.fullmatch(rhs)
        if m:
            size = _SIZES[m[2]]
            cls = LoadSX if m[1] == "s" else Load
            return cls(dst, _reg("r", m[3], line), _mem_off(m[4], m[5]), size)
        m = _RE_SKB.fullmatch(rhs)
        if m:
            if dst != Reg.R0:
                raise line.error("legacy packet loads always write r0", rhs)
            size = _SIZES[m[1]]
            if m[2] is not None:
                imm = _mem_off(m[3], m[4]) if m[3] else 0
                return LoadInd(size, _reg("r", m[2], line), imm)
            return LoadAbs(size, _num(m[5]))
        raise line.error("expected `*(uN|sN *)(rB + off)` or `*(uN *)skb[...]`", rhs)
    if rhs.endswith(" ll"):
        m = _RE_LL.fullmatch(rhs)
        if not m:
            raise line.error("expected `imm ll` or `map_name ll`", rhs)
        if m[1] is not None:
            return LoadImm64(dst, _num(m[1]))
        return LoadMap(dst, m[2])
    if rhs.startswith("-"):
        rm = _RE_NEG.fullmatch(rhs)
        if rm:
            if int(rm[2]) != int(dst) or rm[1] != kind:
                raise line.error("NEG takes one register: write `rX = -rX`", rhs)
            return Neg(dst, width)
    if rhs.startswith("("):
        m = _RE_SEXT.fullmatch(rhs)
        if m:
            return Alu(Arith[f"MOVSX{m[1]}"], dst, _reg(m[2], m[3], line, kind), width)
    m = _RE_SWAP.fullmatch(rhs)
    if m:
        if int(m[4]) != int(dst):
            raise line.error("a byte swap converts its own register: write `rX = be16 rX`", rhs)
        return Endian(ByteOrder(m[1]), dst, int(m[2]))
    return _parse_call_like(dst, kind, rhs, line)


def _parse_call_like(dst: Reg, kind: str, rhs: str, line: _Line):
    m = _RE_FETCH.fullmatch(rhs)
    if m:
        size = _SIZES[m[2]]
        src = _reg(m[6], m[7], line, "r" if size == Size.DW else "w")
        if src != dst:
            raise line.error("atomic_fetch_* returns into its source register", rhs)
        return Atomic(_FETCH[m[1]], _reg("r", m[3], line), src, _mem_off(m[4], m[5]), size)
    m = _RE_XCHG.fullmatch(rhs)
    if m:
        size = Size.DW if m[1] == "_64" else Size.W
        src = _reg(m[5], m[6], line)
        if src != dst:
            raise line.error("xchg returns into its source register", rhs)
        return Atomic(AtomicKind.XCHG, _reg("r", m[2], line), src, _mem_off(m[3], m[4]), size)
    m = _RE_CMPXCHG.fullmatch(rhs)
    if m:
        size = Size.DW if m[1] == "_64" else Size.W
        if dst != Reg.R0:
            raise line.error("cmpxchg returns into r0", rhs)
        return Atomic(AtomicKind.CMPXCHG, _reg("r", m[2], line), _reg(m[6], m[7], line),
                      _mem_off(m[3], m[4]), size)
    m = _RE_ACQ.fullmatch(rhs)
    if m:
        if (kind == "r") != (m[1] == "64"):
            raise line.error(f"load_acquire of u{m[1]} writes a "
                             f"{'64-bit r' if m[1] == '64' else '32-bit w'} register", rhs)
        return LoadAcquire(dst, _reg("r", m[2], line), _mem_off(m[3], m[4]), _SIZES[m[1]])
    m = _RE_CAST.fullmatch(rhs)
    if m:
        return AddrSpaceCast(dst, _reg("r", m[1], line), _num(m[2]), _num(m[3]))
    raise line.error(f"cannot parse the right-hand side {rhs!r}", rhs)


def assemble(text: str, filename: str = "<input>", name: str = "prog") -> Program:
    """Assemble LLVM-syntax text into a Program (labels left for ``Program.resolve``).

    Every bad line is reported, not just the first: the AsmError lists them all.
    """
    with no_gc():
        return _assemble(text, filename, name)


def _assemble(text: str, filename: str, name: str) -> Program:
    prog = Program(name=name)
    errors: list[str] = []
    cache: dict[str, object] = {}  # instructions are immutable: equal lines share one
    # Appending to the program's lists directly: every line passed the model's checks.
    # Sources are kept as line numbers and made into SourcePos only when asked for.
    lines = text.splitlines()
    linenos = array("L")
    append_insn, append_src = prog.instructions.append, linenos.append
    for lineno, raw in enumerate(lines, 1):
        insn = cache.get(raw)
        if insn is not None:
            append_insn(insn)
            append_src(lineno)
            continue
        body = raw
        if "#" in body or "/" in body or ";" in body:
            body = _RE_COMMENT.sub("", body)
        if ":" in body:
            body = _RE_OBJDUMP.sub("", body)
            m = _RE_LABEL.match(body)
            while m:
                prog.label(m[1], SourcePos(filename, lineno, m.start(1) + 1, raw))
                body = body[m.end():]
                m = _RE_LABEL.match(body)
        if body.endswith(">"):
            body = _RE_ANNOT.sub("", body)
        stripped = body.strip()
        if not stripped:
            continue
        line = _Line(filename, lineno, raw)
        if stripped.startswith("."):
            if stripped.split()[0] in _IGNORED_DIRECTIVES:
                continue
            errors.append(str(line.error(f"unknown directive {stripped.split()[0]!r}",
                                         stripped.split()[0])))
            continue
        try:
            insn = parse_instruction(stripped, line)
        except AsmError as e:
            errors.append(str(e) if e.where else str(line.error(e.message, _culprit(e, raw))))
            continue
        if body is raw and raw[0] == stripped[0]:
            cache[raw] = insn
        append_insn(insn)
        append_src(lineno)
    if errors:
        raise AsmError("\n".join(errors))
    prog.set_line_sources(filename, lines, linenos)
    return prog


def _culprit(e: AsmError, raw: str) -> str | None:
    """The token of ``raw`` an operand error is about (the first number it names)."""
    for word in re.findall(r"-?\d+", e.message):
        for spelling in (word, hex(int(word))):
            if spelling in raw:
                return spelling
    return None
