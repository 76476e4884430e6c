"""The generated uapi tables agree with the header and with cffi's layouts."""

import subprocess
import sys

from pybpf.syscall import _uapi
from pybpf.syscall._ffi import ffi
from pybpf.syscall._uapi import Cmd, HelperId, MapType, ProgType


def test_enum_values_match_uapi():
    assert Cmd.MAP_CREATE == 0 and Cmd.PROG_LOAD == 5 and Cmd.PROG_TEST_RUN == 10
    assert MapType.HASH == 1 and MapType.RINGBUF == 27
    assert ProgType.XDP == 6 and ProgType.SCHED_CLS == 3
    assert HelperId.map_lookup_elem == 1 and HelperId.trace_printk == 6


def test_layouts_checked_against_gcc():
    for name, size in _uapi.SIZES.items():
        assert ffi.sizeof(name) == size
    # fields added by 6.4 and later are present
    assert ffi.offsetof("union bpf_attr", "log_true_size") == 140


def test_helper_prototypes():
    ret, args = _uapi.HELPER_PROTOS["map_update_elem"]
    assert ret == "long"
    assert [a for _, a in args] == ["map", "key", "value", "flags"]
    assert _uapi.HELPER_PROTOS["map_lookup_elem"][0] == "void *"
    assert len(_uapi.HELPER_PROTOS) > 200


def test_helper_prototypes_parsed_on_lookup_agree_with_the_whole_table():
    table = {}
    for line in _uapi._HELPER_PROTO_TABLE.splitlines():
        if line:
            name, _, ret, *args = line.split("|")
            table[name] = (ret, tuple(tuple(a.rsplit(":", 1)) for a in args))
    protos = _uapi.HELPER_PROTOS
    assert list(protos) == list(table) and len(protos) == len(table)
    assert all(protos[name] == proto for name, proto in table.items())
    assert protos["trace_printk"][1][-1] == ("...", "...")
    assert "probe_read" in protos and "probe_rea" not in protos and protos.get("") is None
    assert protos.get("map_lookup_elem|void *") is None and 1 not in protos


def test_helper_ids_in_the_table_are_the_enum_values():
    assert all(_uapi.HELPER_PROTOS.helper_id(name) == HelperId[name]
               for name in _uapi.HELPER_PROTOS)
    assert set(HelperId.__members__) == {"unspec", *_uapi.HELPER_PROTOS}


def test_helper_id_enum_built_on_first_use_only():
    code = ("import pybpf.dsl, pybpf.syscall\n"
            "from pybpf.syscall import _uapi\n"
            "assert _uapi.HELPER_PROTOS.helper_id('map_lookup_elem') == 1\n"
            "assert 'HelperId' not in vars(_uapi)\n"
            "from pybpf.syscall import HelperId\n"
            "assert HelperId is _uapi.HelperId and HelperId.__qualname__ == 'HelperId'\n"
            "assert pickle.loads(pickle.dumps(HelperId.redirect)) is HelperId.redirect\n")
    subprocess.run([sys.executable, "-c", "import pickle\n" + code], check=True)
