"""Spec: a whole parsed BTF blob (types by id, raw strings, optional base)."""

from __future__ import annotations

from collections.abc import Iterator

from pybpf._record import field, record
from pybpf.btf.model import Type, referenced_ids, type_name
from pybpf.errors import BTFError


@record(slots=False, eq=False)
class Spec:
    """Types of one BTF blob; ``types[0]`` has id ``first_id``.

    For split BTF (a kernel module's) ``base`` is the vmlinux Spec: ids below
    ``first_id`` and string offsets below ``len(base.strings)`` are the base's.
    ``strings`` is the raw string section, kept so a rebuild reuses offsets.
    """

    types: tuple[Type, ...]
    strings: bytes = b"\0"
    base: Spec | None = None
    _by_name: dict = field(default_factory=dict, repr=False)

    @property
    def first_id(self) -> int:
        """The id of ``types[0]``: 1, or one past the base's last id."""
        return self.base.first_id + len(self.base.types) if self.base else 1

    @property
    def last_id(self) -> int:
        """The highest valid type id."""
        return self.first_id + len(self.types) - 1

    def type(self, type_id: int) -> Type | None:
        """The type with ``type_id`` (None for void, id 0)."""
        if type_id == 0:
            return None
        if self.base is not None and type_id < self.first_id:
            return self.base.type(type_id)
        index = type_id - self.first_id
        if not 0 <= index < len(self.types):
            raise BTFError(f"type id {type_id} does not exist (last id is {self.last_id})")
        return self.types[index]

    def __iter__(self) -> Iterator[tuple[int, Type]]:
        """(id, type) for this blob's own types."""
        return enumerate(self.types, self.first_id)

    def __len__(self) -> int:
        return len(self.types)

    def find(self, name: str, kind: type | None = None) -> list[int]:
        """Ids of types called ``name`` (of model class ``kind`` if given), base first."""
        if not self._by_name:
            index: dict[str, list[int]] = {}
            for tid, t in self:
                n = type_name(t)
                if n:
                    index.setdefault(n, []).append(tid)
            self._by_name.update(index)
        found = self.base.find(name, kind) if self.base else []
        found += [i for i in self._by_name.get(name, ()) if kind is None
                  or isinstance(self.type(i), kind)]
        return found


def check_references(spec: Spec) -> None:
    """Raise BTFError naming the first type that refers to a type id that does not exist."""
    last = spec.last_id
    for tid, t in spec:
        for ref in referenced_ids(t):
            if not 0 <= ref <= last:
                raise BTFError(f"type id {tid} ({type(t).__name__} {type_name(t)!r}) refers to "
                               f"type id {ref}, past the last id {last}")
