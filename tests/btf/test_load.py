"""The kernel as oracle: BPF_BTF_LOAD, maps and programs carrying pybpf's BTF."""

import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from pybpf import types as lt
from pybpf.asm import R0, CallLocal, Exit, LoadImm64
from pybpf.asm.program import Program
from pybpf.btf import codec
from pybpf.btf.layout import map_btf
from pybpf.btf.program import SourcePos, program_btf, program_btf_for
from pybpf.btf.reader import TypeIndex
from pybpf.errors import VerifierError
from pybpf.syscall.btf_object import load_btf
from pybpf.syscall.maps import Map
from pybpf.syscall.programs import load_program

pytestmark = pytest.mark.kernel


def bpftool(*args: str) -> str:
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool not installed (apt-get install bpftool)")
    return subprocess.run(["bpftool", *args], check=True, capture_output=True,
                          text=True).stdout


def insn(op: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One raw struct bpf_insn (kept local: these tests must not depend on the assembler)."""
    return struct.pack("<BBhi", op, dst | src << 4, off, imm)


MOV64_IMM, MOV64_REG, CALL, EXIT = 0xB7, 0xBF, 0x85, 0x95
PSEUDO_CALL = 1


class FlowKey(lt.Struct):
    saddr: lt.be32
    daddr: lt.be32
    sport: lt.be16
    dport: lt.be16
    proto: lt.u8


class FlowStats(lt.Struct):
    packets: lt.u64
    bytes: lt.u64
    tag: lt.Bytes(8)
    hist: lt.Array(lt.u32, 4)


def test_rebuilt_vmlinux_loads_and_kernel_keeps_it():
    data = Path("/sys/kernel/btf/vmlinux").read_bytes()
    spec = TypeIndex(data).spec()
    rebuilt = codec.encode(spec.types, strings=spec.strings)
    with load_btf(rebuilt, log_size=1 << 20) as btf:
        back = btf.data()
    assert back == rebuilt
    assert TypeIndex(back).spec().types == spec.types


def test_map_with_btf_dumps_field_names():
    mb = map_btf(FlowKey, FlowStats)
    with load_btf(mb.btf) as btf, Map.create(
            "hash", FlowKey, FlowStats, 4, name="btf_flows", btf_fd=btf.fd,
            btf_key_type_id=mb.key_type_id, btf_value_type_id=mb.value_type_id) as flows:
        flows.update(FlowKey(saddr=0x0A000001, daddr=0x0A000002, sport=80, dport=443, proto=6),
                     FlowStats(packets=3, bytes=180, tag=b"web", hist=[1, 2, 3, 4]))
        info = json.loads(bpftool("map", "show", "id", str(flows.id), "-j"))
        assert info["btf_id"] == btf.id
        dump = json.loads(bpftool("map", "dump", "id", str(flows.id), "-j"))
    formatted = dump[0]["formatted"]
    # BTF has no byte order: bpftool shows a __be16 in host order, as for C programs.
    assert formatted["key"]["dport"] == int.from_bytes((443).to_bytes(2, "big"), "little")
    assert formatted["key"]["proto"] == 6
    assert formatted["value"]["packets"] == 3 and formatted["value"]["hist"] == [1, 2, 3, 4]


HERE = str(Path(__file__).resolve())


def pos(line: int, text: str) -> SourcePos:
    return SourcePos(HERE, line, 5, text)


def test_program_with_func_and_line_info_loads():
    code = (insn(MOV64_IMM, 0, imm=0) + insn(CALL, src=PSEUDO_CALL, imm=1) + insn(EXIT)
            + insn(MOV64_IMM, 0, imm=1) + insn(EXIT))
    pb = program_btf([("main_fn", 0), ("helper_fn", 3)],
                     [(0, pos(10, "r0 = 0")), (1, pos(11, "call helper_fn")),
                      (2, pos(11, "call helper_fn")), (3, pos(20, "r0 = 1")),
                      (4, pos(21, "exit"))])
    assert pb.func_info_cnt == 2 and pb.line_info_cnt == 4
    with load_btf(pb.btf) as btf, load_program(
            "socket_filter", code, name="btf_lines", prog_btf_fd=btf.fd,
            func_info=pb.func_info, line_info=pb.line_info) as prog:
        xlated = bpftool("prog", "dump", "xlated", "id", str(prog.id), "linum")
        funcs = bpftool("btf", "dump", "id", str(btf.id))
    assert "int main_fn(void * ctx)" in xlated and "int helper_fn()" in xlated
    assert f"; call helper_fn [file:{HERE} line_num:11 line_col:5]" in xlated
    assert "FUNC 'main_fn'" in funcs and "linkage=global" in funcs


def test_verifier_error_names_the_python_line():
    code = insn(MOV64_REG, 0, 2) + insn(EXIT)  # reads r2, which is uninitialised
    pb = program_btf([("bad_fn", 0)], [(0, pos(30, "r0 = r2  # uninitialised")),
                                       (1, pos(31, "exit"))])
    with load_btf(pb.btf) as btf, pytest.raises(VerifierError) as err:
        load_program("socket_filter", code, name="btf_bad", prog_btf_fd=btf.fd,
                     func_info=pb.func_info, line_info=pb.line_info)
    assert "; r0 = r2  # uninitialised @ test_load.py:30" in err.value.log


def test_bpftool_reads_program_btf_file(tmp_path):
    pb = program_btf([("main_fn", 0), ("sub_fn", 2)], [(0, pos(1, "a")), (2, pos(2, "b"))],
                     args={"sub_fn": 2})
    path = tmp_path / "prog.btf"
    path.write_bytes(pb.btf)
    text = bpftool("btf", "dump", "file", str(path))
    assert "FUNC 'sub_fn'" in text and "linkage=static" in text
    assert "'arg2' type_id=" in text


def test_assembled_program_carries_its_source_lines():
    prog = Program(name="asm_main")
    prog.append(LoadImm64(R0, 5), pos(40, "r0 = 5 ll"))   # two slots
    prog.append(CallLocal("asm_sub"), pos(41, "call asm_sub"))
    prog.append(Exit(), pos(42, "exit"))
    prog.function("asm_sub")
    prog.append(LoadImm64(R0, 1), pos(50, "r0 = 1 ll"))
    prog.append(Exit(), pos(51, "exit"))
    pb = program_btf_for(prog)
    with load_btf(pb.btf) as btf, load_program(
            "socket_filter", prog, name="btf_asm", prog_btf_fd=btf.fd,
            func_info=pb.func_info, line_info=pb.line_info) as loaded:
        xlated = bpftool("prog", "dump", "xlated", "id", str(loaded.id), "linum")
    assert "int asm_sub()" in xlated
    assert f"; r0 = 1 ll [file:{HERE} line_num:50 line_col:5]" in xlated
