"""The bpf_conformance and ubpf corpora against the ubpf assembler and the codec.

Every ``-- asm`` section assembles (one test per file); where a file also
has ``-- raw`` (written by other assemblers) the bytes must be equal. Files
that exist to be rejected are classified below: some are assembler errors
(our assembler must reject them, naming the bad token), some are failures
of a VM or verifier at run time (they must assemble), some raw programs are
invalid encodings (the decoder must reject them) and some are valid
instructions that a particular runtime refuses (they must round-trip).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from pybpf.asm import CallKfunc, CallLocal, GotoLong, LoadInd, corpus, decode, encode
from pybpf.asm.llvm import assemble as llvm_assemble
from pybpf.asm.memory import LoadAcquire, LoadBtfId, LoadMap, StoreRelease
from pybpf.asm.ubpf import assemble
from pybpf.errors import AsmError

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("PYBPF_CONFORMANCE", Path(__file__).parent / "data" / "conformance"))
if not CORPUS.is_dir():
    pytest.skip(f"conformance corpus not found at {CORPUS} (set PYBPF_CONFORMANCE)",
                allow_module_level=True)

FILES = sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*.data"))
DATA = {name: corpus.read(CORPUS / name) for name in FILES}

# Assembler errors: file -> (line:column, words the message must contain).
ASM_ERRORS = {
    "negative/invalid_imm32_dec_range.data": ("5:12", ["2147483648", "imm"]),
    "negative/invalid_imm32_hex_range.data": ("5:12", ["0x100000000", "imm"]),
    "negative/invalid_label.data": ("4:4", ["undefined label", "NOT_A_LABEL"]),
    "negative/invalid_lock.data": ("4:1", ["lock or", "2 operands", "got 1"]),
    "negative/invalid_lock2.data": ("4:1", ["lock", "add|or|and|xor", "none"]),
    "negative/invalid_mnemonic.data": ("5:1", ["unknown mnemonic", "ldxq"]),
    "negative/invalid_offset.data": ("4:11", ["memory operand", "%r1"]),
    "negative/invalid_offset_range.data": ("5:11", ["0x10000", "s16"]),
    "negative/invalid_operand_count.data": ("4:1", ["lddw", "2 operands", "got 1"]),
    "negative/invalid_register.data": ("4:9", ["%r50", "%r0..%r10"]),
    # ubpf's assembler encodes r11 and leaves it to the loader; ours cannot represent it.
    "ubpf/errors/err-invalid-reg-dst.data": ("2:5", ["%r11", "%r0..%r10"]),
    "ubpf/errors/err-invalid-reg-src.data": ("2:10", ["%r11", "%r0..%r10"]),
}
# Rejected by the .data reader: an unknown section ("-- Unknown directive").
FORMAT_ERRORS = {"negative/invalid_unknown_directive.data": "Unknown directive"}
# Nothing to assemble: no program at all, or an ELF built by a ``-- pyelf`` script.
NO_PROGRAM = {"negative/empty.data", "negative/empty_instructions.data"} | {
    f for f in FILES if f.startswith("ubpf/elf/")}
# Raw programs that are valid instructions; the runtime named refuses them, not the ISA.
RAW_VALID = {
    # src 1 is BPF_PSEUDO_MAP_FD, which ubpf does not support.
    "ubpf/errors/err-lddw-invalid-src.data": "ld_pseudo r1, 1, 1432778632",
    # ubpf limits program length; the encoding is fine.
    "ubpf/errors/err-too-many-instructions.data": "r1 = 0",
    # 0x06 is gotol (BPF_JMP32 | BPF_JA), which ubpf does not know.
    "ubpf/errors/err-unknown-opcode.data": "gotol +0",
}
# Raw programs the decoder must reject: file -> words the message must contain.
RAW_INVALID = {
    "ubpf/errors/err-endian-size.data": ["48", "byte swap width"],
    "ubpf/errors/err-incomplete-lddw.data": ["second slot"],
    "ubpf/errors/err-incomplete-lddw2.data": ["second slot"],
} | {f: ["second slot"] for f in FILES if "err-lddw-second-half" in f} | {
    f: [{"offset": "off", "src": "src", "imm": "imm", "dst": "dst"}[f.rsplit("-", 1)[1][:-5]]]
    for f in FILES if f.startswith("negative/unused-") and f not in RAW_VALID} | {
    # off 1 on MOV64 | BPF_X is addr_space_cast, whose imm must be 1 or 0x10000.
    "negative/unused-mov64_reg-offset.data": ["addr_space_cast from address space 0 to 0"]}

ASSEMBLES = [f for f in FILES if DATA[f].asm is not None and f not in ASM_ERRORS
             and f not in FORMAT_ERRORS]
RAW_ONLY = [f for f in FILES if DATA[f].asm is None and DATA[f].raw is not None]


def _assemble(name: str):
    data = DATA[name]
    return assemble(data.asm, *data.asm_where)


def test_corpus_is_complete():
    """The classification covers the corpus: 313 bpf_conformance files, ubpf, negative/."""
    assert len([f for f in FILES if "/" not in f]) == 313
    assert len([f for f in FILES if f.startswith("negative/")]) == 60
    classified = set(ASSEMBLES) | set(ASM_ERRORS) | set(FORMAT_ERRORS) | NO_PROGRAM
    assert classified | set(RAW_ONLY) == set(FILES)
    assert set(RAW_ONLY) == set(RAW_VALID) | set(RAW_INVALID)
    for name in NO_PROGRAM:
        assert DATA[name].asm is None and DATA[name].raw is None


@pytest.mark.parametrize("name", FILES)
def test_reads(name):
    """Every file parses; its raw, mem and result sections decode."""
    data = DATA[name]
    assert data.raw is None or len(data.raw) % 8 == 0
    assert data.mem is None or isinstance(data.mem, bytes)
    assert data.result is None or 0 <= data.result < 1 << 64
    if name not in FORMAT_ERRORS:
        assert not data.unknown_sections()


@pytest.mark.parametrize("name", ASSEMBLES)
def test_assembles(name):
    program = _assemble(name)
    assert program
    data = encode(program)
    raw = DATA[name].raw
    if raw is not None:  # bytes from the corpus's own assembler: an outside oracle
        assert data.hex(" ") == raw.hex(" ")
    assert decode(data) == program


def test_raw_sections_were_checked():
    assert len([f for f in ASSEMBLES if DATA[f].raw is not None]) == 7


@pytest.mark.parametrize("name", sorted(ASM_ERRORS))
def test_assembler_rejects(name):
    position, words = ASM_ERRORS[name]
    with pytest.raises(AsmError) as info:
        _assemble(name)
    assert info.value.where == f"{CORPUS / name}:{position}"
    for word in words:
        assert word in info.value.message


@pytest.mark.parametrize("name", sorted(FORMAT_ERRORS))
def test_reader_flags_unknown_section(name):
    assert [s.name for s in DATA[name].unknown_sections()] == [FORMAT_ERRORS[name]]


@pytest.mark.parametrize("name", sorted(RAW_VALID))
def test_raw_valid_round_trips(name):
    raw = DATA[name].raw
    program = decode(raw)
    assert str(program[0]) == RAW_VALID[name]
    assert encode(program) == raw


@pytest.mark.parametrize("name", sorted(RAW_INVALID))
def test_raw_invalid_rejected(name):
    with pytest.raises(AsmError) as info:
        decode(DATA[name].raw)
    assert "insn " in str(info.value)
    for word in RAW_INVALID[name]:
        assert word in str(info.value)


# --- llvm-mc 19 as a second oracle for what the corpus assembles to ---

def _llvm_expressible(insn) -> bool:
    """Instructions whose LLVM text llvm-mc 19 encodes without labels or relocations."""
    if isinstance(insn, CallLocal | CallKfunc | LoadAcquire | StoreRelease):
        return False
    if isinstance(insn, GotoLong):
        return -(1 << 15) <= insn.target < 1 << 15
    if isinstance(insn, LoadMap):
        return not insn.value_offset
    if isinstance(insn, LoadBtfId):
        return not insn.module
    return not (isinstance(insn, LoadInd) and insn.imm)


@pytest.fixture(scope="module")
def llvm_bytes():
    if shutil.which("llvm-mc-19") is None:
        pytest.skip("llvm-mc-19 not installed")
    spec = importlib.util.spec_from_file_location("gen_llvm_oracle", ROOT / "tools/gen_llvm_oracle.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    texts = sorted({str(i) for name in ASSEMBLES for i in _assemble(name) if _llvm_expressible(i)})
    return dict(zip(texts, gen.run_llvm_mc(texts), strict=True))


@pytest.mark.parametrize("name", ASSEMBLES)
def test_llvm_mc_agrees(name, llvm_bytes):
    """str() of each instruction re-assembles with llvm-mc 19 to pybpf's bytes."""
    for insn in _assemble(name):
        if _llvm_expressible(insn):
            result = llvm_bytes[str(insn)]
            assert not isinstance(result, str), f"llvm-mc rejects {insn}: {result}"
            assert result[1] == encode(insn), str(insn)


@pytest.mark.parametrize("name", ASSEMBLES)
def test_llvm_text_round_trip(name):
    """pybpf's LLVM-syntax listing of each program reads back (pybpf.asm.llvm) unchanged."""
    program = _assemble(name)
    text = "\n".join(str(insn) for insn in program)
    assert llvm_assemble(text, name).resolve() == program
