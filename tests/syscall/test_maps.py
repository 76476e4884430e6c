"""Map semantics on the real kernel, per map type."""

import errno
import ipaddress
import os

import pytest

from pybpf.errors import BPFError
from pybpf.syscall import Map, MapFlags, MapType, UpdateFlags, load_btf, possible_cpus
from pybpf.syscall.codec import CodecError
from pybpf.types import Bytes, Struct, be32, u32, u64

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("no_leaks")]


class LpmKey(Struct):
    prefixlen: u32
    addr: be32


def test_hash_dict_protocol():
    with Map.create("hash", u32, u64, 64, name="h") as m:
        m[1] = 10
        m[2] = 20
        assert m[1] == 10 and 1 in m and 3 not in m
        assert sorted(m) == [1, 2]
        assert dict(m.items()) == {1: 10, 2: 20}
        del m[1]
        assert 1 not in m
        with pytest.raises(KeyError):
            m[1]
        with pytest.raises(KeyError):
            del m[1]
        assert m.lookup(9, "none") == "none"
        assert m.lookup_and_delete(2) == 20 and list(m) == []


def test_update_flags():
    with Map.create("hash", u32, u32, 4) as m:
        m.update(1, 1, flags=UpdateFlags.NOEXIST)
        with pytest.raises(BPFError) as e:
            m.update(1, 2, flags=UpdateFlags.NOEXIST)
        assert e.value.errno == errno.EEXIST
        with pytest.raises(KeyError):
            m.update(2, 2, flags=UpdateFlags.EXIST)
        m.update(1, 3, flags=UpdateFlags.EXIST)
        assert m[1] == 3


def test_full_hash_names_capacity():
    with Map.create("hash", u32, u32, 2, name="tiny") as m:
        m[1], m[2] = 1, 2
        with pytest.raises(BPFError, match="full"):
            m[3] = 3


def test_array_and_mmap():
    with Map.create("array", u32, u64, 16, flags=MapFlags.MMAPABLE) as m:
        assert m[15] == 0  # arrays are preallocated and zeroed
        with pytest.raises(BPFError):
            del m[0]
        view = m.mmap()
        view[8:16] = (99).to_bytes(8, "little")
        assert m[1] == 99
        m[2] = 7
        assert int.from_bytes(view[16:24], "little") == 7
        view.close()


def test_struct_keys_and_lpm_longest_prefix():
    with Map.create("lpm_trie", LpmKey, u32, 16, flags=MapFlags.NO_PREALLOC) as m:
        def key(net):
            n = ipaddress.ip_network(net)
            return LpmKey(prefixlen=n.prefixlen, addr=int(n.network_address))

        m[key("10.0.0.0/8")] = 8
        m[key("10.1.0.0/16")] = 16
        m[key("10.1.2.0/24")] = 24
        assert m[key("10.1.2.3/32")] == 24
        assert m[key("10.1.9.9/32")] == 16
        assert m[key("10.9.9.9/32")] == 8
        assert m.lookup(key("11.0.0.1/32")) is None


def test_lru_eviction():
    with Map.create("lru_hash", u32, u32, 64, flags=MapFlags.NO_COMMON_LRU) as m:
        for i in range(1000):
            m[i] = i
        keys = list(m)
        assert 0 < len(keys) <= 64
        assert 999 in m  # the newest survives
        assert 0 not in m  # the oldest was evicted


def test_percpu_values():
    n = possible_cpus()
    with Map.create("percpu_hash", u32, u32, 8) as m:
        m[1] = list(range(1, n + 1))
        assert m[1] == list(range(1, n + 1))
        assert m.value.stride == 8  # u32 slots are rounded to 8 bytes per CPU
        with pytest.raises(CodecError, match=f"list of {n} values"):
            m[2] = 5
    with Map.create("percpu_array", u32, u64, 4) as a:
        a.update({0: [7] * n, 3: [9] * n})
        assert dict(a.items())[3] == [9] * n


def test_queue_and_stack():
    with Map.create("queue", 0, u32, 3) as q:
        for v in (1, 2, 3):
            q.push(v)
        assert q.peek() == 1
        assert [q.pop(), q.pop(), q.pop()] == [1, 2, 3]
        with pytest.raises(KeyError):
            q.pop()
    with Map.create("stack", 0, u32, 3) as s:
        s.push(1)
        s.push(2)
        assert s.pop() == 2


def test_raw_bytes_map():
    with Map.create("hash", 6, 2, 8) as m:
        m[b"abcdef"] = b"xy"
        assert m[b"abcdef"] == b"xy"
        with pytest.raises(CodecError, match="key is 3 bytes but the map's key size is 6"):
            m[b"abc"] = b"xy"


@pytest.mark.parametrize("mtype,key,value,entries,flags", [
    ("ringbuf", 0, 0, 4096, 0),
    ("perf_event_array", u32, u32, 4, 0),
    ("prog_array", u32, u32, 4, 0),
    ("devmap", u32, u32, 4, 0),
    ("devmap_hash", u32, u32, 4, 0),
    ("cpumap", u32, u32, 1, 0),
    ("xskmap", u32, u32, 4, 0),
    ("sockmap", u32, u32, 4, 0),
    ("sockhash", u32, u32, 4, 0),
    ("lru_percpu_hash", u32, u32, 4, 0),
    ("bloom_filter", 0, u32, 16, 0),
    ("hash", u32, u32, 16, MapFlags.NO_PREALLOC),
    ("array", u32, u32, 4, MapFlags.RDONLY_PROG),
])
def test_create_types(mtype, key, value, entries, flags):
    with Map.create(mtype, key, value, entries, flags=flags, name=mtype[:15]) as m:
        info = m.info()
        assert info.type == MapType[mtype.upper()]
        assert info.max_entries == entries and info.flags & int(flags) == int(flags)
        assert info.name == mtype[:15]


def test_map_of_maps():
    with Map.create("array", u32, u32, 1) as inner, \
            Map.create("array_of_maps", u32, 4, 2, inner_map=inner) as outer:
        outer[0] = inner
        assert outer[0] == inner.id  # user space writes fds, reads ids


def test_sk_storage_with_btf(int_btf):
    with load_btf(int_btf) as btf:
        with Map.create("sk_storage", u32, u32, 0, flags=MapFlags.NO_PREALLOC,
                        btf_fd=btf.fd, btf_key_type_id=1, btf_value_type_id=1) as m:
            assert m.info().btf_id == btf.id


def test_freeze():
    with Map.create("array", u32, u32, 2) as m:
        m[0] = 1
        m.freeze()
        with pytest.raises(BPFError) as e:
            m[0] = 2
        assert e.value.errno == errno.EPERM


def test_batch_against_per_key():
    pairs = {i: i * 3 for i in range(5000)}
    with Map.create("hash", u32, u64, 8192) as m:
        m.update(pairs)
        assert m._batch_ok is True
        batched = dict(m.items())
        per_key = {k: m[k] for k in m}
        assert batched == per_key == pairs
        m.clear()
        assert list(m) == []


def test_batch_fallback_to_per_key():
    with Map.create("devmap_hash", u32, u32, 8) as m:  # no batch ops: ENOTSUPP
        m.update({1: 1})  # key 1 -> ifindex 1 (lo)
        assert m._batch_ok is False
        assert list(m.items()) == [(1, 1)]


def test_pin_round_trip(bpffs):
    path = os.path.join(bpffs, "counts")
    with Map.create("hash", u32, u32, 4, name="counts") as m:
        m[1] = 42
        m.pin(path)
        with Map.from_pinned(path, key=u32, value=u32) as again:
            assert again[1] == 42 and again.info().id == m.info().id
        with Map.from_id(m.id) as by_id:
            assert by_id.key.size == 4 and by_id[u32.pack(1)] == u32.pack(42)
    os.unlink(path)


def test_pin_outside_bpffs_explains(tmp_path):
    with Map.create("array", u32, u32, 1) as m:
        with pytest.raises(BPFError, match="not on a bpffs mount"):
            m.pin(tmp_path / "x")


def test_info_fields():
    with Map.create("hash", Bytes(12), u32, 100, name="info_test") as m:
        info = m.info()
        assert (info.key_size, info.value_size, info.max_entries) == (12, 4, 100)
        assert info.name == "info_test" and info.id > 0
