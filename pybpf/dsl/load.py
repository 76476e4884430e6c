"""Loading a built DSL program: maps created with BTF, program loaded with line info.

The result is a context manager owning everything it created (program,
maps it made, BTF objects); closing it releases them, and maps passed in by
the caller are left alone.
"""

from __future__ import annotations

from pybpf.btf.layout import map_btf
from pybpf.btf.program import program_btf_for
from pybpf.dsl.maps import MapDef
from pybpf.errors import BTFError
from pybpf.syscall import Map, load_btf, load_program
from pybpf.types import Bytes


def create_map(m: MapDef) -> Map:
    """BPF_MAP_CREATE for a declaration, with key/value BTF when the types allow it."""
    kw = {}
    btf = None
    if not isinstance(m.key, int) and not isinstance(m.value, int) and m.kind in (
            "hash", "array", "percpu_hash", "percpu_array", "lru_hash", "lru_percpu_hash",
            "lpm_trie"):
        try:
            described = map_btf(m.key, m.value)
            btf = load_btf(described.btf)
            kw = {"btf_fd": btf.fd, "btf_key_type_id": described.key_type_id,
                  "btf_value_type_id": described.value_type_id}
        except BTFError:
            btf = None  # a layout BTF cannot express; the map works without it
    key = Bytes(m.key) if isinstance(m.key, int) and m.key else m.key
    value = Bytes(m.value) if isinstance(m.value, int) and m.value else m.value
    try:
        return Map.create(m.kind, key or 0, value or 0, m.max_entries, flags=m.flags,
                          name=m.name[:15], **kw)
    finally:
        if btf is not None:
            btf.close()  # the map holds its own reference


class Loaded:
    """A loaded program with its maps; a context manager that releases what it created."""

    def __init__(self, built, program, maps: dict, owned: list):
        self.built = built
        self.program = program
        self.maps = maps
        self._owned = owned

    @property
    def fd(self) -> int:
        return self.program.fd

    def test_run(self, data: bytes = b"", **kwargs):
        """BPF_PROG_TEST_RUN (see pybpf.syscall.test_run)."""
        return self.program.test_run(data, **kwargs)

    def close(self) -> None:
        self.program.close()
        for obj in self._owned:
            obj.close()
        self._owned = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getitem__(self, name: str) -> Map:
        return self.maps[name]


def load(built, license: str, given: dict, **kwargs) -> Loaded:
    """Create missing maps, load the program with BTF func and line info."""
    maps, owned = {}, []
    try:
        for name, m in built.maps.items():
            if name in given:
                maps[name] = given[name]
            else:
                maps[name] = create_map(m)
                owned.append(maps[name])
        prog = built.program
        info = program_btf_for(prog)
        btf = load_btf(info.btf)
        owned.append(btf)
        slots = prog.slot_offsets()
        source = {slots[i]: f"{pos.file}:{pos.line}: {pos.text.strip()}"
                  for i, pos in enumerate(prog.sources) if pos is not None}
        loaded = load_program(
            built.kind.prog_type, prog, license=license, name=built.name[:15],
            maps={n: m.fd for n, m in maps.items()},
            expected_attach_type=built.kind.attach_type, prog_btf_fd=btf.fd,
            func_info=info.func_info, func_info_rec_size=info.func_info_rec_size,
            line_info=info.line_info, line_info_rec_size=info.line_info_rec_size,
            source_lines=source, **kwargs)
    except BaseException:
        for obj in owned:
            obj.close()
        raise
    return Loaded(built, loaded, maps, owned)
