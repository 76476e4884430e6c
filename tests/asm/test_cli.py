"""`pybpf asm` and `pybpf disasm` as a user runs them: bytes, exit codes, messages."""

import subprocess
import sys

from pybpf.asm import decode
from pybpf.asm.llvm import assemble

EXAMPLE = "examples/xdp_drop_udp.s"


def run(*args, stdin=b""):
    return subprocess.run([sys.executable, "-m", "pybpf.cli", *args], input=stdin,
                          capture_output=True, timeout=60)


def test_asm_writes_raw_bytes_and_hex():
    raw = run("asm", EXAMPLE)
    assert raw.returncode == 0, raw.stderr
    assert raw.stdout == assemble(open(EXAMPLE).read()).encode()
    hexed = run("asm", EXAMPLE, "--hex")
    assert bytes.fromhex(hexed.stdout.decode().strip()) == raw.stdout


def test_asm_to_file(tmp_path):
    out = tmp_path / "prog.bin"
    assert run("asm", EXAMPLE, "-o", str(out)).returncode == 0
    assert out.read_bytes() == assemble(open(EXAMPLE).read()).encode()


def test_disasm_round_trip_through_the_cli():
    code = run("asm", EXAMPLE).stdout
    text = run("disasm", stdin=code)
    assert text.returncode == 0
    lines = text.stdout.decode().splitlines()
    assert lines[0] == "r2 = *(u32 *)(r1 + 0)" and lines[-1] == "exit"
    again = run("asm", "-", stdin=text.stdout)
    assert again.stdout == code


def test_disasm_verbose_and_hex_input():
    code = run("asm", EXAMPLE, "--hex").stdout
    out = run("disasm", "--hex", "--verbose", stdin=code).stdout.decode().splitlines()
    assert out[0].split() == ["0:", "61", "12", "00", "00", "00", "00", "00", "00", "r2", "=",
                              "*(u32", "*)(r1", "+", "0)"]


def test_user_errors_exit_1_with_one_line_each_and_no_traceback():
    bad = run("asm", "-", stdin=b"r0 = 1\nr11 = 0\nr1 = *(u8 *)(r2 + 99999)\n")
    assert bad.returncode == 1
    err = bad.stderr.decode().splitlines()
    assert err == [
        "pybpf asm: <stdin>:2:1: register r11 does not exist (r0..r10)",
        "pybpf asm: <stdin>:3:19: off 99999 does not fit s16 (-32768..32767) in "
        "r1 = *(u8 *)(r2 + 99999)",
    ]
    assert b"Traceback" not in bad.stderr


def test_disasm_rejects_garbage_cleanly():
    bad = run("disasm", stdin=b"\xff" * 8)
    assert bad.returncode == 1
    assert bad.stderr.decode().startswith("pybpf disasm: insn 0 (ff ff ff ff ff ff ff ff): ")
    odd = run("disasm", stdin=b"\x95\0\0")
    assert odd.returncode == 1 and b"not a whole number of 8-byte instructions" in odd.stderr
    missing = run("asm", "/nonexistent.s")
    assert missing.returncode == 1 and b"No such file" in missing.stderr


def test_decode_of_cli_output_matches_model():
    code = run("asm", EXAMPLE).stdout
    assert decode(code) == assemble(open(EXAMPLE).read()).resolve()
