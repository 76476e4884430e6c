"""Error paths: messages that say what went wrong and what to do."""

import errno
import shutil
import subprocess
import sys

import pytest

from pybpf.errors import BPFError
from pybpf.syscall import Cmd, Map, MapType, load_btf
from pybpf.syscall.bpf import effective_capabilities, explain
from pybpf.syscall.codec import CodecError
from pybpf.types import Struct, u16, u32, u64

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("no_leaks")]


def test_bad_map_sizes_are_explained():
    with pytest.raises(BPFError) as e:
        Map.create("array", u64, u32, 4)
    assert e.value.errno == errno.EINVAL
    assert "key_size=8" in str(e.value) and "needs a 4-byte key" in str(e.value)


def test_unknown_map_type():
    with pytest.raises(ValueError, match="unknown map type 'hashh'"):
        Map.create("hashh", u32, u32, 1)
    with pytest.raises(ValueError, match="unknown map type 999"):
        Map.create(999, u32, u32, 1)


def test_wrong_key_from_python():
    class Pair(Struct):
        a: u16
        b: u16

    with Map.create("hash", Pair, u32, 4) as m:
        with pytest.raises(CodecError, match="cannot pack key 5"):
            m[5] = 1
        with pytest.raises(CodecError, match="does not fit u32"):
            m[Pair(a=1, b=2)] = -1
    with Map.create("hash", 8, 8, 4) as raw:
        with pytest.raises(CodecError, match="key is 4 bytes but the map's key size is 8"):
            raw[b"abcd"]


def test_closed_map():
    m = Map.create("hash", u32, u32, 4, name="gone")
    m.close()
    m.close()
    with pytest.raises(BPFError, match="map 'gone' is closed") as e:
        m[1] = 1
    assert e.value.errno == errno.EBADF


def test_btf_load_error_carries_log(int_btf):
    bad = bytearray(int_btf)
    bad[24 + 4:24 + 8] = (31 << 24).to_bytes(4, "little")  # type [1] of unknown kind 31
    with pytest.raises(BPFError) as e:
        load_btf(bytes(bad))
    assert e.value.command == "BPF_BTF_LOAD" and e.value.errno == errno.EINVAL
    assert "kind" in e.value.log.lower() and "kernel rejected BTF" in str(e.value)


def test_btf_load_round_trip(int_btf):
    with load_btf(int_btf) as btf:
        assert btf.id > 0 and btf.data() == int_btf


SCRIPT = """
import sys
from pybpf.errors import BPFError
from pybpf.syscall import Map
try:
    Map.create("hash", 4, 4, 1)
except BPFError as e:
    print(e.errno, e)
    sys.exit(0)
print("created")
"""


@pytest.mark.skipif(shutil.which("capsh") is None, reason="needs capsh")
def test_missing_privileges_explained():
    drop = "cap_bpf,cap_sys_admin,cap_perfmon,cap_net_admin"
    out = subprocess.run(
        ["capsh", f"--drop={drop}", "--", "-c", f"{sys.executable} -c '{SCRIPT}'"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert out.startswith(f"{errno.EPERM} ")
    assert "BPF_MAP_CREATE" in out and "needs CAP_BPF" in out


def test_map_type_enum_accepted():
    with Map.create(MapType.HASH, u32, u64, 1) as m:
        assert m.type is MapType.HASH


def test_eperm_with_every_capability_blames_policy():
    # As root with all capabilities, EPERM cannot be a missing capability.
    assert all(effective_capabilities().values())
    text = explain(Cmd.PROG_LOAD, errno.EPERM)
    assert "kernel policy refused it" in text and "needs CAP_BPF" not in text
