"""BTF: wire formats, type model, builder, program BTF and the kernel's types.

``parse`` (the checked construct parser) and the kernel BTF readers are
loaded on first use, so building and loading programs never imports
construct; ``encode`` is the fast encoder (byte-identical to
``codec.encode``, the construct build).
"""

from pybpf.btf.builder import Builder
from pybpf.btf.emit import encode
from pybpf.btf.layout import MapBTF, add_type, map_btf
from pybpf.btf.model import (
    Array,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    EnumValue,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    Member,
    Param,
    Ptr,
    Restrict,
    Struct,
    Type,
    Typedef,
    TypeTag,
    Union,
    Var,
    VarSecinfo,
    Volatile,
)
from pybpf.btf.program import ProgramBTF, SourcePos, program_btf, program_btf_for
from pybpf.btf.spec import Spec
from pybpf.btf.uapi import FuncLinkage, IntEncoding, Kind, VarLinkage

__all__ = [
    "Builder", "FieldLayout", "FuncInfo", "KernelBTF", "MapBTF", "ProgramBTF", "SourcePos",
    "StructLayout", "TypeIndex", "add_type", "map_btf", "module", "program_btf", "program_btf_for",
    "read",
    "vmlinux",
    "Array", "Const", "Datasec", "DeclTag", "Enum", "Enum64", "EnumValue", "Float", "Func",
    "FuncLinkage", "FuncProto", "Fwd", "Int", "IntEncoding", "Kind", "Member", "Param", "Ptr",
    "Restrict", "Spec", "Struct", "Type", "TypeTag", "Typedef", "Union", "Var", "VarLinkage",
    "VarSecinfo", "Volatile", "encode", "parse",
]

# Names from modules the load path does not need (construct, the vmlinux
# reader): resolved on first access.
_LAZY = {
    "parse": "pybpf.btf.codec",
    "FieldLayout": "pybpf.btf.kernel", "FuncInfo": "pybpf.btf.kernel",
    "KernelBTF": "pybpf.btf.kernel", "StructLayout": "pybpf.btf.kernel",
    "module": "pybpf.btf.kernel", "vmlinux": "pybpf.btf.kernel",
    "TypeIndex": "pybpf.btf.reader", "read": "pybpf.btf.reader",
}


def __getattr__(name: str):
    if name in _LAZY:
        # __import__ with a fromlist returns the submodule itself (importlib would be
        # one more package, and warnings, on every start-up)
        value = getattr(__import__(_LAZY[name], fromlist=(name,)), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
