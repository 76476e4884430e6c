"""uapi linux/btf.h and linux/bpf.h constants for BTF, without construct.

The enums and record sizes the type model, the fast reader and the fast
encoder need.  ``wire.py`` and ``ext.py`` declare the formats with construct
and check at import that these sizes match their declarations.
"""

from __future__ import annotations

import enum

from pybpf._enum import simple_enum

BTF_MAGIC = 0xEB9F
BTF_VERSION = 1
MAX_VLEN = 0xFFFF

#: sizeof(struct btf_header) and sizeof(struct btf_type).
HEADER_SIZE = 24
TYPE_SIZE = 12

#: bpf_line_info.line_col: line in the high 22 bits, column in the low 10.
MAX_LINE = (1 << 22) - 1
MAX_COLUMN = (1 << 10) - 1
#: sizeof(struct bpf_func_info) and sizeof(struct bpf_line_info).
FUNC_INFO_SIZE = 8
LINE_INFO_SIZE = 16


@enum.unique
@simple_enum(enum.IntEnum)
class Kind:
    """BTF_KIND_*: the kind field of btf_type.info (uapi linux/btf.h)."""

    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


@enum.unique
@simple_enum(enum.IntFlag)
class IntEncoding:
    """BTF_INT_SIGNED / BTF_INT_CHAR / BTF_INT_BOOL: the encoding bits of a BTF_KIND_INT."""

    NONE = 0
    SIGNED = 1 << 0
    CHAR = 1 << 1
    BOOL = 1 << 2


@enum.unique
@simple_enum(enum.IntEnum)
class FuncLinkage:
    """BTF_FUNC_STATIC / GLOBAL / EXTERN: a BTF_KIND_FUNC's linkage, kept in its vlen."""

    STATIC = 0
    GLOBAL = 1
    EXTERN = 2


@enum.unique
@simple_enum(enum.IntEnum)
class VarLinkage:
    """BTF_VAR_STATIC / GLOBAL_ALLOCATED / GLOBAL_EXTERN: btf_var.linkage."""

    STATIC = 0
    GLOBAL_ALLOCATED = 1
    GLOBAL_EXTERN = 2


# Bytes after btf_type: a fixed part per kind (btf_int's u32, btf_array, btf_var,
# btf_decl_tag) plus vlen records of a fixed size (btf_member, btf_enum, btf_param,
# btf_var_secinfo, btf_enum64).  Fast readers and the encoder step by these.
FIXED_EXTRA = {Kind.INT: 4, Kind.ARRAY: 12, Kind.VAR: 4, Kind.DECL_TAG: 4}
PER_VLEN = {Kind.STRUCT: 12, Kind.UNION: 12, Kind.ENUM: 8, Kind.FUNC_PROTO: 8,
            Kind.DATASEC: 12, Kind.ENUM64: 12}
