"""Builder: collects BTF types, deduplicates them and assigns type ids.

Records are immutable and refer to other types by id, so hash-consing is
exact: adding a record equal to one already present returns the old id.
Self-referencing types (``struct node { struct node *next; }``) reserve an
id first and fill it in once the members exist::

    b = Builder()
    node = b.reserve()
    ptr = b.add(Ptr(node))
    b.fill(node, Struct("node", 8, (Member("next", ptr, 0),)))
    data = b.encode()
"""

from __future__ import annotations

from pybpf.btf import model as m
from pybpf.btf.emit import encode
from pybpf.btf.spec import Spec, check_references
from pybpf.errors import BTFError

_RESERVED = object()


class Builder:
    """An ordered, deduplicated list of BTF types; ids start at 1 (or after ``base``)."""

    def __init__(self, base: Spec | None = None):
        self.base = base
        self._types: list = []
        self._ids: dict[m.Type, int] = {}
        self._first = base.first_id + len(base.types) if base else 1

    def add(self, t: m.Type) -> int:
        """The id of ``t``, adding it if no equal type exists yet."""
        tid = self._ids.get(t)
        if tid is None:
            self._check(t)
            tid = self._first + len(self._types)
            self._types.append(t)
            self._ids[t] = tid
        return tid

    def reserve(self) -> int:
        """A fresh id to be given a type later with ``fill`` (for recursive types)."""
        self._types.append(_RESERVED)
        return self._first + len(self._types) - 1

    def fill(self, type_id: int, t: m.Type) -> int:
        """Give the reserved ``type_id`` its type; returns ``type_id``."""
        index = type_id - self._first
        if not 0 <= index < len(self._types) or self._types[index] is not _RESERVED:
            raise BTFError(f"type id {type_id} was not reserved")
        self._check(t)
        self._types[index] = t
        self._ids.setdefault(t, type_id)
        return type_id

    def _check(self, t: m.Type) -> None:
        if not hasattr(t, "kind"):
            raise BTFError(f"{t!r} is not a BTF type record")
        last = self._first + len(self._types)
        for ref in m.referenced_ids(t):
            if not 0 <= ref <= last:
                raise BTFError(f"{type(t).__name__} {m.type_name(t)!r} refers to type id "
                               f"{ref}, which does not exist yet (last id {last - 1})")

    def __len__(self) -> int:
        return len(self._types)

    @property
    def types(self) -> tuple[m.Type, ...]:
        """The types in id order (every reserved id must be filled)."""
        for i, t in enumerate(self._types):
            if t is _RESERVED:
                raise BTFError(f"type id {self._first + i} was reserved but never filled")
        return tuple(self._types)

    def type(self, type_id: int) -> m.Type | None:
        """The type added under ``type_id`` (base types included)."""
        if type_id == 0:
            return None
        if type_id < self._first and self.base is not None:
            return self.base.type(type_id)
        return self._types[type_id - self._first]

    def spec(self) -> Spec:
        """The collected types as a checked Spec."""
        spec = Spec(self.types, b"\0", self.base)
        check_references(spec)
        return spec

    def encode(self) -> bytes:
        """The BTF blob (header, type section, string section)."""
        return encode(self.spec().types, base=self.base)
