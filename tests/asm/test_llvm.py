"""The LLVM-syntax assembler: forms, labels, errors with positions."""

import pytest

from pybpf.asm import (
    R0,
    R1,
    R2,
    R3,
    R10,
    Alu,
    Arith,
    Atomic,
    AtomicKind,
    Call,
    CallKfunc,
    CallLocal,
    Exit,
    Goto,
    GotoLong,
    Jump,
    JumpOp,
    Load,
    LoadImm64,
    LoadInd,
    LoadMap,
    Size,
    decode,
)
from pybpf.asm.llvm import assemble
from pybpf.errors import AsmError


def one(text):
    (insn,) = assemble(text).resolve()
    return insn


@pytest.mark.parametrize("text, expected", [
    ("r0 = 1", Alu(Arith.MOV, R0, 1)),
    ("w0 = -1", Alu(Arith.MOV, R0, -1, 32)),
    ("w0 = 0xffffffff", Alu(Arith.MOV, R0, -1, 32)),
    ("r1 += r2", Alu(Arith.ADD, R1, R2)),
    ("w1 s/= w2", Alu(Arith.SDIV, R1, R2, 32)),
    ("r1 s%= 7", Alu(Arith.SMOD, R1, 7)),
    ("r1 s>>= 3", Alu(Arith.ARSH, R1, 3)),
    ("r1 = (s32)r2", Alu(Arith.MOVSX32, R1, R2)),
    ("r0 = *(u32 *)(r1 - 0x10)", Load(R0, R1, -16, Size.W)),
    ("if r1 s<= -5 goto +2", Jump(JumpOp.JSLE, R1, -5, 2)),
    ("if w1 & w2 goto -3", Jump(JumpOp.JSET, R1, R2, -3, 32)),
    ("lock *(u64 *)(r10 - 8) ^= r1", Atomic(AtomicKind.XOR, R10, R1, -8, Size.DW)),
    ("r1 = atomic_fetch_or((u64 *)(r2 + 8), r1)", Atomic(AtomicKind.FETCH_OR, R2, R1, 8, 8)),
    ("r1 = -0x8000000000000000 ll", LoadImm64(R1, -(1 << 63))),
    ("r1 = 0xffffffffffffffff ll", LoadImm64(R1, -1)),
    ("r1 = my_map ll", LoadMap(R1, "my_map")),
    ("ld_pseudo r1, 2, 5, 16", LoadMap(R1, 5, value_offset=16)),
    ("ld_pseudo r1, 6, 0, 4", LoadMap(R1, 0, value_offset=4, by_index=True)),
    ("r0 = *(u16 *)skb[r3 + 4]", LoadInd(Size.H, R3, 4)),
    ("call 12", Call(12)),
    ("call pc-4", CallLocal(-4)),
    ("call kfunc(5000, 2)", CallKfunc(5000, 2)),
    ("gotol +70000", GotoLong(70000)),
    ("exit", Exit()),
    # llvm-objdump's columns and annotations
    ("      12:\t05 00 02 00 00 00 00 00\tgoto +0x2 <LBB0_3>", Goto(2)),
    ("r0 = 1  # comment", Alu(Arith.MOV, R0, 1)),
    ("r0 = 1  // comment", Alu(Arith.MOV, R0, 1)),
])
def test_forms(text, expected):
    assert one(text) == expected


def test_str_reassembles_to_the_same_instruction():
    text = """
        r0 = atomic_fetch_add((u64 *)(r1 + 0), r0)
        w0 = cmpxchg32_32(r1 + 0, w0, w2)
        r2 = xchg_64(r1 + 0, r2)
        r1 = addr_space_cast(r2, 0, 1)
        w0 = load_acquire((u32 *)(r1 + 4))
        store_release((u16 *)(r1 - 2), w3)
        r0 = bswap64 r0
        r0 = be16 r0
        may_goto +1
        callx r5
        ld_pseudo r2, 3, 77
        ld_pseudo r2, 4, +3
        *(u8 *)(r10 - 1) = 255
    """
    insns = assemble(text).resolve()
    assert len(insns) == 13
    for insn in insns:
        assert one(str(insn)) == insn


def test_labels_resolve_to_slot_offsets_counting_wide_loads():
    prog = assemble("""
    start:
        r1 = 0x100000000 ll
        if r1 == 0 goto done
        goto start
    done:
        exit
    """)
    jeq, back = prog.resolve()[1:3]
    assert jeq == Jump(JumpOp.JEQ, R1, 0, 1)
    assert back == Goto(-4)
    assert decode(prog.encode())[1] == jeq


def test_local_call_by_label():
    prog = assemble("call f\nexit\nf:\nr0 = 1\nexit")
    assert prog.resolve()[0] == CallLocal(1)


def test_every_bad_line_is_reported_with_file_line_column():
    with pytest.raises(AsmError) as e:
        assemble("r0 = 1\nr11 = 2\nr1 = *(u32 *)(r2 + 40000)\nfrobnicate r1\n", "prog.s")
    msg = str(e.value)
    assert "prog.s:2:1: register r11 does not exist (r0..r10)" in msg
    assert "prog.s:3:20: off 40000 does not fit s16" in msg
    assert "prog.s:4:1: unknown instruction 'frobnicate'" in msg


def test_imm_that_would_be_sign_extended_is_refused_with_a_fix():
    with pytest.raises(AsmError, match=r"4294967295 does not fit s32.*r1 = 4294967295 ll"):
        assemble("r1 = 0xffffffff")


def test_undefined_and_duplicate_labels_are_reported_together():
    prog = assemble("a:\nr0 = 0\na:\ngoto b\ngoto c\nexit", "x.s")
    with pytest.raises(AsmError) as e:
        prog.resolve()
    msg = str(e.value)
    assert "x.s:3:1: duplicate label 'a' (first defined at x.s:1:1)" in msg
    assert "x.s:4:1: undefined label 'b'" in msg
    assert "x.s:5:1: undefined label 'c'" in msg


def test_jump_out_of_range_suggests_gotol():
    text = "goto far\n" + "r0 = 0\n" * 40000 + "far:\nexit\n"
    with pytest.raises(AsmError, match=r"40000 slots away, beyond the s16 range of Goto \(use gotol\)"):
        assemble(text).resolve()
    assert assemble(text.replace("goto far", "gotol far")).resolve()[0] == GotoLong(40000)


@pytest.mark.parametrize("text, message", [
    ("r1 = -r2", "NEG takes one register"),
    ("r10 = 1", "r10 is the read-only frame pointer"),
    ("w1 += r2", "expected a 32-bit w register here, got r2"),
    ("r1 = be24 r1", "cannot parse the right-hand side"),
    ("r1 = (s32)w1", "expected a 64-bit r register"),
    ("w1 = (s32)w1", "MOVSX32 exists only in 64-bit form"),
    ("lock *(u8 *)(r1 + 0) += w2", "size B is not allowed for Atomic"),
    ("r1 = *(s64 *)(r2 + 0)", "size DW is not allowed for LoadSX"),
    ("r2 = xchg_64(r1 + 0, r3)", "xchg returns into its source register"),
    ("r1 = 0x10000000000000000 ll", "does not fit 64 bits"),
    ("ld_pseudo r1, 9, 1", "unknown ld_pseudo kind 9"),
    ("if r1 === r2 goto +1", "expected `if rA <op>"),
    (".weird", "unknown directive '.weird'"),
])
def test_errors_name_the_problem(text, message):
    with pytest.raises(AsmError, match=message.replace("(", r"\(").replace(")", r"\)")):
        assemble(text)


def test_map_names_are_listed_and_resolved_at_encode():
    prog = assemble("r1 = counters ll\nr2 = events ll\nexit")
    assert prog.map_names() == {"counters", "events"}
    code = prog.encode(maps={"counters": 3, "events": 4})
    assert decode(code)[:2] == [LoadMap(R1, 3), LoadMap(R2, 4)]
    with pytest.raises(AsmError, match="map 'events' is not resolved"):
        prog.encode(maps={"counters": 3})


def test_same_text_same_bytes():
    text = open("examples/xdp_drop_udp.s").read()
    assert assemble(text).encode() == assemble(text).encode()


def test_listing_shows_labels_and_offsets():
    listing = assemble("r1 = 1 ll\nl:\nexit").listing()
    assert "    0: r1 = 1 ll" in listing and "l:" in listing and "    2: exit" in listing
