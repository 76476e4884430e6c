"""The running kernel's BTF: fast reader vs construct, rebuild, layouts vs bpftool."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pybpf.btf import codec
from pybpf.btf import model as m
from pybpf.btf.kernel import KernelBTF, vmlinux
from pybpf.btf.reader import TypeIndex
from pybpf.errors import BTFError

VMLINUX = Path("/sys/kernel/btf/vmlinux")
pytestmark = pytest.mark.skipif(not VMLINUX.exists(), reason="kernel has no BTF")


@pytest.fixture(scope="module")
def data():
    return VMLINUX.read_bytes()


@pytest.fixture(scope="module")
def fast_spec(data):
    return TypeIndex(data).spec()


def test_fast_reader_agrees_with_construct(data, fast_spec):
    assert codec.parse(data).types == fast_spec.types


def test_rebuild_is_byte_identical(data, fast_spec):
    assert codec.encode(fast_spec.types, strings=fast_spec.strings) == data


@pytest.fixture(scope="module")
def bpftool_dump():
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool not installed")
    return subprocess.run(["bpftool", "btf", "dump", "file", str(VMLINUX)], check=True,
                          capture_output=True, text=True).stdout


HEAD = re.compile(r"\[(\d+)\] (STRUCT|UNION) '([^']*)' size=(\d+) vlen=(\d+)")
MEMBER = re.compile(r"\t'([^']*)' type_id=(\d+) bits_offset=(\d+)(?: bitfield_size=(\d+))?")


def test_every_struct_and_union_matches_bpftool(bpftool_dump, fast_spec):
    lines, checked = bpftool_dump.splitlines(), 0
    for i, line in enumerate(lines):
        head = HEAD.match(line)
        if not head:
            continue
        tid, kind, name, size, vlen = head.groups()
        t = fast_spec.type(int(tid))
        assert isinstance(t, m.Struct if kind == "STRUCT" else m.Union)
        assert (t.name or "(anon)", t.size, len(t.members)) == (name, int(size), int(vlen))
        for member, text in zip(t.members, lines[i + 1:i + 1 + int(vlen)], strict=True):
            mname, mtype, bits, bitfield = MEMBER.match(text).groups()
            assert (member.name or "(anon)", member.type, member.bit_offset,
                    member.bitfield_size) == (mname, int(mtype), int(bits), int(bitfield or 0))
        checked += 1
    assert checked > 1000


def test_sk_buff_layout(bpftool_dump):
    skb = vmlinux().struct("sk_buff")
    assert skb.type_id == int(re.search(r"\[(\d+)\] STRUCT 'sk_buff'", bpftool_dump).group(1))
    by_name = {f.name: f for f in skb.fields}
    assert skb.offsetof("len") == by_name["len"].bit_offset // 8
    assert skb.field("len").size == 4 and skb.field("len").type_name == "unsigned int"
    assert skb.offsetof("cb") == by_name["cb"].offset and skb.field("cb").size == 48
    # Members of anonymous unions and struct_group()s are found the way C finds them.
    assert skb.offsetof("protocol") < skb.size and skb.field("protocol").size == 2
    assert skb.field("pkt_type").is_bitfield
    with pytest.raises(BTFError, match="bitfield"):
        skb.offsetof("pkt_type")
    with pytest.raises(BTFError, match="no member"):
        skb.field("no_such_field")


def test_func_enum_and_typedef_lookups(bpftool_dump):
    k = vmlinux()
    f = k.func("bpf_map_lookup_elem")
    assert f.type_id == int(re.search(r"\[(\d+)\] FUNC 'bpf_map_lookup_elem'",
                                      bpftool_dump).group(1))
    assert k.enum("bpf_map_type")["BPF_MAP_TYPE_HASH"] == 1
    assert k.type_name(k.typedef("__be32")) == "unsigned int"
    assert k.size_of(k.type_id("task_struct", m.Struct)) > 1000
    with pytest.raises(BTFError, match="no Struct named"):
        k.struct("no_such_struct_anywhere")


def test_module_btf_is_split_on_its_base(tmp_path):
    base = [m.Int("int", 4, 32, m.IntEncoding.SIGNED)]
    base_data = codec.encode(base)
    split = [m.Struct("mod_thing", 8, (m.Member("a", 1, 0), m.Member("b", 1, 32))),
             m.Ptr(2)]
    split_data = codec.encode(split, base=codec.parse(base_data))
    (tmp_path / "vmlinux").write_bytes(base_data)
    (tmp_path / "mod").write_bytes(split_data)
    k = KernelBTF.load(tmp_path / "mod", base=KernelBTF.load(tmp_path / "vmlinux"))
    thing = k.struct("mod_thing")
    assert thing.type_id == 2 and thing.offsetof("b") == 4
    assert thing.field("a").type_name == "int"
    assert k.type_name(3) == "struct mod_thing *"
