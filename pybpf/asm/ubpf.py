"""Assembler for the ubpf-style syntax of the bpf_conformance corpus.

One instruction per line, operands separated by commas, registers ``%rN``,
memory operands ``[%rN+off]``, ``#`` comments and ``name:`` labels::

    mov32 %r0, 1            # BPF_ALU | BPF_MOV | BPF_K
    ldxw %r0, [%r1+4]       # BPF_LDX | BPF_MEM | BPF_W
    stxdw [%r10-8], %r0     # BPF_STX | BPF_MEM | BPF_DW
    jeq %r1, 5, +3          # offset in slots after the jump
    lock fetch add [%r10-8], %r1
    lddw %r0, 0x123456789   # BPF_LD | BPF_IMM | BPF_DW, two slots
    call local f            # BPF_CALL, src BPF_PSEUDO_CALL

An immediate names the 32-bit ``imm`` field, as in the ubpf and
bpf_conformance assemblers: a decimal must fit s32, a hex spelling may use
all 32 bits (``0xffffffff`` is the field value -1, which the kernel
sign-extends). Offsets are s16. ``lddw`` takes any 64-bit value. A label
stands for the slot of the next instruction; targets become offsets
relative to the slot after the jump (a ``lddw`` counts two slots). As in
bpf_conformance, the target ``exit`` means the first ``exit`` instruction
unless a label of that name exists. ``call`` takes a helper number
(``call 5``, ``call helper 5``), ``local LABEL``, ``runtime BTF_ID`` (a
kfunc) or a register (``call %r2``, which is ``callx``).
"""

from __future__ import annotations

import re

from pybpf._record import record
from pybpf.asm.alu import Alu, Arith, ByteOrder, Endian, Neg
from pybpf.asm.codec import encode
from pybpf.asm.instruction import Instruction
from pybpf.asm.jump import Call, CallKfunc, CallLocal, CallX, Exit, Goto, GotoLong, Jump, MayGoto
from pybpf.asm.memory import (
    Atomic,
    AtomicKind,
    Load,
    LoadAbs,
    LoadImm64,
    LoadInd,
    LoadSX,
    Store,
    StoreImm,
)
from pybpf.asm.opcode import JumpOp, Size
from pybpf.asm.register import Reg
from pybpf.errors import AsmError, PyBPFError

_ALU = {
    "add": Arith.ADD, "sub": Arith.SUB, "mul": Arith.MUL, "div": Arith.DIV,
    "sdiv": Arith.SDIV, "mod": Arith.MOD, "smod": Arith.SMOD, "or": Arith.OR,
    "and": Arith.AND, "xor": Arith.XOR, "lsh": Arith.LSH, "rsh": Arith.RSH,
    "arsh": Arith.ARSH, "mov": Arith.MOV,
}
_MOVSX = {  # movsx<from bits><width>
    "movsx832": (Arith.MOVSX8, 32), "movsx1632": (Arith.MOVSX16, 32),
    "movsx864": (Arith.MOVSX8, 64), "movsx1664": (Arith.MOVSX16, 64),
    "movsx3264": (Arith.MOVSX32, 64),
}
_JUMPS = {
    "jeq": JumpOp.JEQ, "jne": JumpOp.JNE, "jgt": JumpOp.JGT, "jge": JumpOp.JGE,
    "jlt": JumpOp.JLT, "jle": JumpOp.JLE, "jsgt": JumpOp.JSGT, "jsge": JumpOp.JSGE,
    "jslt": JumpOp.JSLT, "jsle": JumpOp.JSLE, "jset": JumpOp.JSET,
}
_SIZES = {"b": Size.B, "h": Size.H, "w": Size.W, "dw": Size.DW}
_ENDIAN = {"le": ByteOrder.LE, "be": ByteOrder.BE, "swap": ByteOrder.BSWAP,
           "bswap": ByteOrder.BSWAP}
_LOCK_OPS = ("add", "or", "and", "xor")

_LABEL = re.compile(r"\s*([A-Za-z_.][\w.]*)\s*:")
_WORD = re.compile(r"\s*(\S+)")
_REG = re.compile(r"%?r(\d+)$")
_INT = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+|\d+)$")
_NAME = re.compile(r"[A-Za-z_.][\w.]*$")
_MEM = re.compile(r"\[\s*(\S+?)\s*(?:([+-])\s*(\S+?))?\s*\]$")

_S16 = (-(1 << 15), (1 << 15) - 1)
_S32 = (-(1 << 31), (1 << 31) - 1)


@record
class _Tok:
    """An operand's text and its 1-based column."""

    text: str
    col: int


class _Line:
    """One source line being assembled; knows how to point at its tokens."""

    def __init__(self, filename: str, lineno: int, mnemonic: _Tok, operands: list[_Tok]):
        self.filename, self.lineno = filename, lineno
        self.mnemonic, self.operands = mnemonic, operands
        self.target_tok: _Tok | None = None

    def error(self, message: str, tok: _Tok | None = None) -> AsmError:
        col = (tok or self.mnemonic).col
        return AsmError(message, where=f"{self.filename}:{self.lineno}:{col}")

    def expect(self, count: int, form: str) -> list[_Tok]:
        if len(self.operands) != count:
            raise self.error(f"{self.mnemonic.text} expects {count} operand"
                             f"{'s' if count != 1 else ''} ({form}), got {len(self.operands)}")
        return self.operands

    def reg(self, tok: _Tok) -> Reg:
        m = _REG.match(tok.text)
        if not m:
            raise self.error(f"expected a register %r0..%r10, got {tok.text!r}", tok)
        n = int(m.group(1))
        if n > 10:
            raise self.error(f"register {tok.text!r} does not exist (%r0..%r10)", tok)
        return Reg(n)

    def number(self, tok: _Tok, what: str) -> int:
        if not _INT.match(tok.text):
            raise self.error(f"expected {what} (decimal or 0x hex), got {tok.text!r}", tok)
        return int(tok.text, 0) if not _leading_zero(tok.text) else int(tok.text, 10)

    def imm32(self, tok: _Tok) -> int:
        """The imm field: s32 in decimal, any 32-bit pattern in hex (folded to s32)."""
        value = self.number(tok, "an immediate")
        hexa = "x" in tok.text.lower()
        low, high = (_S32[0], 0xFFFFFFFF) if hexa else _S32
        if not low <= value <= high:
            limit = "-0x80000000..0xffffffff" if hexa else f"{_S32[0]}..{_S32[1]}"
            raise self.error(f"immediate {tok.text} does not fit the 32-bit imm field "
                             f"({limit}); use lddw for 64-bit values", tok)
        return value - (1 << 32) if value > _S32[1] else value

    def offset(self, tok: _Tok, text: str | None = None) -> int:
        value = self.number(tok if text is None else _Tok(text, tok.col), "an offset")
        if not _S16[0] <= value <= _S16[1]:
            raise self.error(f"offset {text or tok.text} does not fit s16 "
                             f"({_S16[0]}..{_S16[1]})", tok)
        return value

    def mem(self, tok: _Tok) -> tuple[Reg, int]:
        m = _MEM.match(tok.text)
        if not m:
            raise self.error(f"expected a memory operand [%rN+offset], got {tok.text!r}", tok)
        reg = self.reg(_Tok(m.group(1), tok.col + 1))
        if m.group(2) is None:
            return reg, 0
        off = m.group(3)
        if off.startswith(("+", "-")):
            raise self.error(f"expected a number after {m.group(2)!r} in {tok.text!r}", tok)
        return reg, self.offset(tok, m.group(2) + off)

    def target(self, tok: _Tok, what: str = "jump target") -> int | str:
        self.target_tok = tok
        if _INT.match(tok.text):
            return self.number(tok, what)
        if _NAME.match(tok.text):
            return tok.text
        raise self.error(f"expected a {what} (+N, -N or a label), got {tok.text!r}", tok)


def _leading_zero(text: str) -> bool:
    # int("010", 0) is an error in Python; in this syntax it is plain decimal.
    digits = text.lstrip("+-")
    return len(digits) > 1 and digits[0] == "0" and digits[1] not in "xX"


def _split(text: str, col: int) -> list[_Tok]:
    """Comma-separated operands of ``text`` (which starts at column ``col``)."""
    if not text.strip():
        return []
    out, start = [], 0
    for part in text.split(","):
        stripped = part.strip()
        lead = len(part) - len(part.lstrip())
        out.append(_Tok(stripped, col + start + lead))
        start += len(part) + 1
    return out


def _instruction(line: _Line) -> Instruction:
    """Build the instruction for one parsed line (targets may still be label names)."""
    name = line.mnemonic.text.lower()
    ops = line.operands
    if name in ("exit", "ret"):
        line.expect(0, "exit")
        return Exit()
    base, width = name, 64
    if name.endswith(("32", "64")) and name[:-2] in _ALU | _JUMPS | {"neg": 0}:
        base, width = name[:-2], int(name[-2:])
    if base in _ALU:
        dst, src = line.expect(2, f"{name} %dst, %src|imm")
        value = line.reg(src) if _REG.match(src.text) else line.imm32(src)
        return Alu(_ALU[base], line.reg(dst), value, width)
    if base == "neg":
        (dst,) = line.expect(1, f"{name} %dst")
        return Neg(line.reg(dst), width)
    if name in _MOVSX:
        op, w = _MOVSX[name]
        dst, src = line.expect(2, f"{name} %dst, %src")
        return Alu(op, line.reg(dst), line.reg(src), w)
    if base in _JUMPS:
        dst, src, tgt = line.expect(3, f"{name} %dst, %src|imm, target")
        value = line.reg(src) if _REG.match(src.text) else line.imm32(src)
        return Jump(_JUMPS[base], line.reg(dst), value, line.target(tgt), width)
    if name in ("ja", "ja32", "may_goto"):
        (tgt,) = line.expect(1, f"{name} target")
        kind = {"ja": Goto, "ja32": GotoLong, "may_goto": MayGoto}[name]
        return kind(line.target(tgt))
    if name in ("call", "callx"):
        return _call(line, name, ops)
    m = re.fullmatch(r"(le|be|swap|bswap)(16|32|64)", name)
    if m:
        (dst,) = line.expect(1, f"{name} %dst")
        return Endian(_ENDIAN[m.group(1)], line.reg(dst), int(m.group(2)))
    if name == "lddw":
        dst, imm = line.expect(2, "lddw %dst, imm64")
        value = line.number(imm, "a 64-bit immediate")
        if not -(1 << 63) <= value < 1 << 64:
            raise line.error(f"immediate {imm.text} does not fit 64 bits", imm)
        return LoadImm64(line.reg(dst), value)
    m = re.fullmatch(r"(ldxs|ldx|stx|st|ldabs|ldind)(b|h|w|dw)", name)
    if m:
        return _memory(line, m.group(1), _SIZES[m.group(2)])
    if name == "lock":
        raise line.error("lock needs an operation: lock [fetch] add|or|and|xor[32], "
                         "lock xchg[32] or lock cmpxchg[32]")
    raise line.error(f"unknown mnemonic {line.mnemonic.text!r}")


def _call(line: _Line, name: str, ops: list[_Tok]) -> Instruction:
    (arg,) = line.expect(1, f"{name} helper|local label|%reg")
    if _REG.match(arg.text):
        return CallX(line.reg(arg))
    if name == "callx":
        raise line.error(f"callx expects a register, got {arg.text!r}", arg)
    words = arg.text.split()
    if len(words) == 2 and words[0] in ("local", "helper", "runtime"):
        word = _Tok(words[1], arg.col + arg.text.index(words[1], len(words[0])))
        if words[0] == "local":
            return CallLocal(line.target(word, "call target"))
        if words[0] == "runtime":
            return CallKfunc(line.number(word, "a kfunc BTF id"))
        arg = word
    elif words[0] in ("local", "helper", "runtime"):
        raise line.error(f"call {words[0]} needs one target after it, got {arg.text!r}", arg)
    elif len(words) != 1:
        raise line.error(f"expected call N, call helper N, call local LABEL, call runtime N "
                         f"or call %rN, got {arg.text!r}", arg)
    helper = line.number(arg, "a helper number")
    if not 0 <= helper <= _S32[1]:
        raise line.error(f"helper number {arg.text} is not 0..{_S32[1]}", arg)
    return Call(helper)


def _memory(line: _Line, kind: str, size: Size) -> Instruction:
    name = line.mnemonic.text
    if kind in ("ldx", "ldxs"):
        dst, src = line.expect(2, f"{name} %dst, [%src+off]")
        base, off = line.mem(src)
        return (Load if kind == "ldx" else LoadSX)(line.reg(dst), base, off, size)
    if kind == "stx":
        dst, src = line.expect(2, f"{name} [%dst+off], %src")
        base, off = line.mem(dst)
        return Store(base, line.reg(src), off, size)
    if kind == "st":
        dst, imm = line.expect(2, f"{name} [%dst+off], imm")
        base, off = line.mem(dst)
        return StoreImm(base, line.imm32(imm), off, size)
    if kind == "ldabs":
        (imm,) = line.expect(1, f"{name} imm")
        return LoadAbs(size, line.imm32(imm))
    src, imm = line.expect(2, f"{name} %src, imm")
    return LoadInd(size, line.reg(src), line.imm32(imm))


def _lock(filename: str, lineno: int, text: str, col: int) -> tuple[_Line, Instruction]:
    """``lock [fetch] op[32] [%dst+off], %src``: the operation words come before operands."""
    words = re.match(r"lock((?:\s+[A-Za-z]\w*)*)", text, re.I)
    opwords = words.group(1).split()
    rest_at = words.end()
    line = _Line(filename, lineno, _Tok("lock " + " ".join(opwords), col),
                 _split(text[rest_at:], col + rest_at))
    fetch = bool(opwords) and opwords[0].lower() == "fetch"
    ops = [w.lower() for w in opwords[1:]] if fetch else [w.lower() for w in opwords]
    if len(ops) != 1:
        raise line.error("lock needs one operation: lock [fetch] add|or|and|xor[32], "
                         f"lock xchg[32] or lock cmpxchg[32]; got {' '.join(opwords) or 'none'}")
    op = ops[0]
    size = Size.W if op.endswith("32") else Size.DW
    op = op[:-2] if op.endswith(("32", "64")) else op
    if op in _LOCK_OPS:
        kind = AtomicKind[("FETCH_" if fetch else "") + op.upper()]
    elif op in ("xchg", "cmpxchg") and not fetch:
        kind = AtomicKind[op.upper()]
    else:
        raise line.error(f"unknown lock operation {' '.join(opwords)!r} (expected "
                         "[fetch] add|or|and|xor[32], xchg[32] or cmpxchg[32])")
    dst, src = line.expect(2, f"{line.mnemonic.text} [%dst+off], %src")
    base, off = line.mem(dst)
    return line, Atomic(kind, base, line.reg(src), off, size)


def assemble(text: str, filename: str = "<input>", first_line: int = 1) -> list[Instruction]:
    """Assemble ubpf-style text into instructions with every label resolved to an offset.

    Raises AsmError with ``where="file:line:column"`` for the first bad
    line; undefined and duplicate labels are reported together. ``first_line``
    numbers the first line of ``text`` (for text cut out of a larger file).
    """
    pending: list[tuple[_Line, Instruction, int]] = []  # (line, insn, slot)
    labels: dict[str, tuple[int, str]] = {}
    problems: list[AsmError] = []
    slot = 0
    first_exit: int | None = None
    for lineno, raw in enumerate(text.splitlines(), first_line):
        code = raw.split("#", 1)[0].rstrip()
        pos = 0
        while m := _LABEL.match(code, pos):
            where = f"{filename}:{lineno}:{m.start(1) + 1}"
            if m.group(1) in labels:
                problems.append(AsmError(f"label {m.group(1)!r} already defined at "
                                         f"{labels[m.group(1)][1]}", where))
            labels[m.group(1)] = (slot, where)
            if m.group(1) == "exit":
                first_exit = None  # an explicit label wins over the implicit one
            pos = m.end()
        word = _WORD.match(code, pos)
        if not word:
            continue
        col = word.start(1) + 1
        try:
            if word.group(1).lower() == "lock":
                line, insn = _lock(filename, lineno, code[word.start(1):], col)
            else:
                line = _Line(filename, lineno, _Tok(word.group(1), col),
                             _split(code[word.end():], word.end() + 1))
                insn = _instruction(line)
        except AsmError as e:
            if e.where:
                raise
            raise AsmError(e.message, f"{filename}:{lineno}:{col}") from e
        if isinstance(insn, Exit) and first_exit is None and "exit" not in labels:
            first_exit = slot
        pending.append((line, insn, slot))
        slot += insn.slots
    if first_exit is not None:
        labels["exit"] = (first_exit, "the first exit")
    out = []
    for line, insn, at in pending:
        for target in insn.targets():
            if not isinstance(target, str):
                continue
            if target not in labels:
                problems.append(line.error(f"undefined label {target!r}", line.target_tok))
                continue
            try:
                insn = insn.with_target(labels[target][0] - (at + insn.slots))
            except PyBPFError as e:
                problems.append(line.error(getattr(e, "message", str(e)), line.target_tok))
        out.append(insn)
    if problems:
        if len(problems) == 1:
            raise problems[0]
        rest = [str(p) for p in problems[1:]]
        raise AsmError("; ".join([problems[0].message, *rest]), problems[0].where)
    return out


def encode_text(text: str, filename: str = "<input>") -> bytes:
    """Assemble ubpf-style text straight to little-endian instruction bytes."""
    return encode(assemble(text, filename))
