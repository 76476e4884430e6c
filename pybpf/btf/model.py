"""The BTF type model: one frozen dataclass per BTF_KIND.

Types refer to each other by type id (``type: int``), exactly as on the
wire; id 0 is ``void``.  Because the records are immutable values that
only hold ids, two records are the same type exactly when they compare
equal, which is what the builder's deduplication relies on.

Names are Python strings; an anonymous type has the name ``""``.  Offsets
into the string section exist only in ``wire.py`` and ``codec.py``.
"""

from __future__ import annotations

from pybpf._record import record
from pybpf.btf.uapi import FuncLinkage, IntEncoding, Kind, VarLinkage

TYPE_CHECKING = False  # as typing's: importing typing costs ~5 ms (with re) at start-up
if TYPE_CHECKING:
    from typing import ClassVar


@record
class Int:
    """BTF_KIND_INT: an integer of ``size`` bytes using ``bits`` bits from bit ``offset``."""

    kind: ClassVar[Kind] = Kind.INT
    name: str
    size: int
    bits: int
    encoding: IntEncoding = IntEncoding.NONE
    offset: int = 0


@record
class Ptr:
    """BTF_KIND_PTR: a pointer to ``type``."""

    kind: ClassVar[Kind] = Kind.PTR
    type: int


@record
class Array:
    """BTF_KIND_ARRAY: ``nelems`` elements of ``type``, indexed by ``index_type``."""

    kind: ClassVar[Kind] = Kind.ARRAY
    type: int
    index_type: int
    nelems: int


@record
class Member:
    """struct btf_member: a field at ``bit_offset``; ``bitfield_size`` 0 means not a bitfield."""

    name: str
    type: int
    bit_offset: int
    bitfield_size: int = 0


@record
class Struct:
    """BTF_KIND_STRUCT: ``size`` bytes of ``members``; ``kflag`` packs bitfield sizes in offsets."""

    kind: ClassVar[Kind] = Kind.STRUCT
    name: str
    size: int
    members: tuple[Member, ...] = ()
    kflag: bool = False


@record
class Union:
    """BTF_KIND_UNION: like Struct, every member usually at bit offset 0."""

    kind: ClassVar[Kind] = Kind.UNION
    name: str
    size: int
    members: tuple[Member, ...] = ()
    kflag: bool = False


@record
class EnumValue:
    """struct btf_enum / btf_enum64: one enumerator."""

    name: str
    value: int


@record
class Enum:
    """BTF_KIND_ENUM: enumerators with 32-bit values; ``signed`` is the kind_flag."""

    kind: ClassVar[Kind] = Kind.ENUM
    name: str
    size: int
    values: tuple[EnumValue, ...] = ()
    signed: bool = False


@record
class Enum64:
    """BTF_KIND_ENUM64: enumerators with 64-bit values; ``signed`` is the kind_flag."""

    kind: ClassVar[Kind] = Kind.ENUM64
    name: str
    size: int
    values: tuple[EnumValue, ...] = ()
    signed: bool = False


@record
class Fwd:
    """BTF_KIND_FWD: a forward declaration of a struct, or a union when ``union``."""

    kind: ClassVar[Kind] = Kind.FWD
    name: str
    union: bool = False


@record
class Typedef:
    """BTF_KIND_TYPEDEF: ``name`` is another name for ``type``."""

    kind: ClassVar[Kind] = Kind.TYPEDEF
    name: str
    type: int


@record
class Volatile:
    """BTF_KIND_VOLATILE: ``volatile type``."""

    kind: ClassVar[Kind] = Kind.VOLATILE
    type: int


@record
class Const:
    """BTF_KIND_CONST: ``const type``."""

    kind: ClassVar[Kind] = Kind.CONST
    type: int


@record
class Restrict:
    """BTF_KIND_RESTRICT: ``restrict type``."""

    kind: ClassVar[Kind] = Kind.RESTRICT
    type: int


@record
class Func:
    """BTF_KIND_FUNC: function ``name`` whose FUNC_PROTO is ``type``; linkage sits in vlen."""

    kind: ClassVar[Kind] = Kind.FUNC
    name: str
    type: int
    linkage: FuncLinkage = FuncLinkage.STATIC


@record
class Param:
    """struct btf_param: a named argument; a final ``Param("", 0)`` marks varargs."""

    name: str
    type: int


@record
class FuncProto:
    """BTF_KIND_FUNC_PROTO: a signature returning ``return_type`` (0 = void)."""

    kind: ClassVar[Kind] = Kind.FUNC_PROTO
    return_type: int
    params: tuple[Param, ...] = ()


@record
class Var:
    """BTF_KIND_VAR: a global or static variable of ``type``."""

    kind: ClassVar[Kind] = Kind.VAR
    name: str
    type: int
    linkage: VarLinkage = VarLinkage.STATIC


@record
class VarSecinfo:
    """struct btf_var_secinfo: a VAR (or FUNC) placed at ``offset`` in a DATASEC."""

    type: int
    offset: int
    size: int


@record
class Datasec:
    """BTF_KIND_DATASEC: an ELF-style section (``.data``, ``.bss``) holding variables."""

    kind: ClassVar[Kind] = Kind.DATASEC
    name: str
    size: int
    vars: tuple[VarSecinfo, ...] = ()


@record
class Float:
    """BTF_KIND_FLOAT: a floating point type of ``size`` bytes."""

    kind: ClassVar[Kind] = Kind.FLOAT
    name: str
    size: int


@record
class DeclTag:
    """BTF_KIND_DECL_TAG: tag ``name`` on ``type`` or, when ``component_idx`` >= 0, a member.

    ``kflag`` marks an ``__attribute__`` tag rather than a ``btf_decl_tag``.
    """

    kind: ClassVar[Kind] = Kind.DECL_TAG
    name: str
    type: int
    component_idx: int = -1
    kflag: bool = False


@record
class TypeTag:
    """BTF_KIND_TYPE_TAG: tag ``name`` (``__user``, ``__rcu``) on the pointee ``type``."""

    kind: ClassVar[Kind] = Kind.TYPE_TAG
    name: str
    type: int
    kflag: bool = False


Type = (Int | Ptr | Array | Struct | Union | Enum | Enum64 | Fwd | Typedef | Volatile | Const
        | Restrict | Func | FuncProto | Var | Datasec | Float | DeclTag | TypeTag)

# Kinds that are only a reference to ``type`` (and maybe a name): modifiers and aliases.
REFERENCE_KINDS = (Ptr, Typedef, Volatile, Const, Restrict, TypeTag)


def referenced_ids(t: Type) -> list[int]:
    """Every type id that ``t`` refers to (void included), for dangling-id checks."""
    if isinstance(t, (Struct, Union)):
        return [m.type for m in t.members]
    if isinstance(t, FuncProto):
        return [t.return_type, *(p.type for p in t.params)]
    if isinstance(t, Datasec):
        return [v.type for v in t.vars]
    if isinstance(t, Array):
        return [t.type, t.index_type]
    if isinstance(t, (Int, Enum, Enum64, Fwd, Float)):
        return []
    return [t.type]


def type_name(t: Type) -> str:
    """The type's own name, ``""`` for kinds that have none."""
    return getattr(t, "name", "")
