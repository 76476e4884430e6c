"""Program loading, verifier diagnostics, test runs and info on the real kernel."""

import os

import pytest

from pybpf import asm
from pybpf.asm import R0, R1, Arith
from pybpf.errors import BPFError, VerifierError
from pybpf.syscall import Map, Program, enable_stats, load_program
from pybpf.types import u32, u64

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("no_leaks")]

XDP_PASS, XDP_DROP = 2, 1


def ret(value):
    return [asm.Alu(Arith.MOV, R0, value), asm.Exit()]


def test_load_asm_and_test_run_xdp():
    packet = bytes(range(64))
    with load_program("xdp", ret(XDP_PASS), name="pass") as p:
        run = p.test_run(packet, repeat=100)
        assert run.retval == XDP_PASS and run.data_out == packet and run.duration_ns >= 0


def test_socket_filter_reads_packet_length():
    # r0 = skb->len (struct __sk_buff offset 0); test_run pulls the 14-byte Ethernet header
    prog = [asm.Load(R0, R1, 0, asm.Size.W), asm.Exit()]
    with load_program("socket_filter", prog) as p:
        assert p.test_run(bytes(60)).retval == 60 - 14


def test_map_reference_fixup_and_counter():
    # *(u64 *)map[0] += 1 via bpf_map_lookup_elem, from a symbolic map name
    code = [
        asm.StoreImm(asm.R10, 0, -4, asm.Size.W),
        asm.LoadMap(R1, "counts"),
        asm.Alu(Arith.MOV, asm.R2, asm.R10),
        asm.Alu(Arith.ADD, asm.R2, -4),
        asm.Call(1),
        asm.Jump(asm.JumpOp.JEQ, R0, 0, 2),
        asm.Alu(Arith.MOV, R1, 1),
        asm.Atomic(asm.AtomicKind.ADD, R0, R1, 0, asm.Size.DW),
        asm.Alu(Arith.MOV, R0, XDP_DROP),
        asm.Exit(),
    ]
    with Map.create("array", u32, u64, 1, name="counts") as counts:
        with load_program("xdp", code, maps={"counts": counts.fd}) as p:
            assert p.test_run(bytes(64), repeat=5).retval == XDP_DROP
            assert counts[0] == 5
            assert p.info().map_ids == (counts.id,)


def test_program_info_and_xlated():
    with load_program("sched_cls", ret(0), name="info_prog") as p:
        info = p.info()
        assert info.name == "info_prog" and info.id > 0 and len(info.tag) == 16
        assert info.xlated_len == 16 and info.jited_len > 0 and info.verified_insns == 2
        assert p.disassemble() == ["r0 = 0", "exit"]


def test_run_stats():
    with load_program("xdp", ret(XDP_PASS)) as p, enable_stats():
        p.test_run(bytes(64), repeat=50)
        info = p.info()
        assert info.run_cnt == 50 and info.run_time_ns > 0


def test_verifier_stats_on_success():
    with load_program("xdp", ret(XDP_PASS), stats=True) as p:
        assert p.stats.processed_insns == 2 and p.stats.insn_limit == 1_000_000


def test_verifier_error_names_failing_insn():
    prog = ret(0)[:1] + [asm.Load(R0, R1, 4000, asm.Size.W), asm.Exit()]
    with pytest.raises(VerifierError) as e:
        load_program("xdp", prog, name="bad_ctx",
                     source_lines={1: "prog.py:7: r0 = ctx[4000]"})
    err = e.value
    assert err.insn_index == 1
    assert err.insn == "r0 = *(u32 *)(r1 + 4000)"
    assert err.source == "prog.py:7: r0 = ctx[4000]"
    assert "invalid bpf_context access" in str(err) and "insn 1" in str(err)
    assert "processed" in err.log and err.errno in (13, 22)


def test_uninitialised_register():
    with pytest.raises(VerifierError, match="R0 !read_ok") as e:
        load_program("xdp", [asm.Exit()])
    assert e.value.insn_index == 0 and e.value.insn == "exit"


def test_log_larger_than_buffer_arrives_whole():
    # 3000 instructions of level-2 logging is far more than the 256-byte first buffer.
    body = [asm.Alu(Arith.MOV, R0, 0)] + [asm.Alu(Arith.ADD, R0, 1)] * 2999
    with pytest.raises(VerifierError) as e:
        load_program("xdp", body + [asm.Load(R0, R1, 4000, asm.Size.W), asm.Exit()],
                     log_level=2, log_size=256)
    log = e.value.log
    assert len(log) > 100_000
    assert log.splitlines()[0].startswith("func#0") or log.startswith("0:")
    assert e.value.insn_index == 3000


def test_success_log_grows_too():
    with load_program("xdp", [asm.Alu(Arith.MOV, R0, 0)] * 500 + [asm.Exit()],
                      log_level=2, log_size=256) as p:
        assert "500: (95) exit" in p.log


def test_pin_and_open(bpffs):
    path = os.path.join(bpffs, "prog")
    with load_program("xdp", ret(XDP_PASS), name="pinned") as p:
        p.pin(path)
        with Program.from_pinned(path) as again:
            assert again.info().id == p.info().id and again.name == "pinned"
        with Program.from_id(p.id) as by_id:
            assert by_id.test_run(bytes(64)).retval == XDP_PASS
    os.unlink(path)


def test_bad_inputs_checked_before_the_kernel():
    with pytest.raises(ValueError, match="not a non-empty whole number"):
        load_program("xdp", b"\x95\0\0")
    with pytest.raises(ValueError, match="unknown program type 'xdpp'"):
        load_program("xdpp", ret(0))
    with pytest.raises(ValueError, match="at most 15 characters"):
        load_program("xdp", ret(0), name="a-name-that-is-far-too-long")


def test_closed_program():
    p = load_program("xdp", ret(XDP_PASS))
    p.close()
    p.close()
    with pytest.raises(BPFError, match="closed"):
        p.test_run(bytes(64))
