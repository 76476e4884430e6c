"""BTF: wire formats, type model, builder, program BTF and the kernel's types."""

from pybpf.btf.builder import Builder
from pybpf.btf.codec import encode, parse
from pybpf.btf.kernel import FieldLayout, FuncInfo, KernelBTF, StructLayout, module, vmlinux
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
from pybpf.btf.reader import TypeIndex, read
from pybpf.btf.spec import Spec
from pybpf.btf.wire import FuncLinkage, IntEncoding, Kind, VarLinkage

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
