"""Calling BPF helpers by name, with the uapi prototypes checked at build time.

``p.call("ktime_get_ns")`` or ``p.call("skb_store_bytes", p.ctx, 30, ptr, 4, 0)``:
the number of arguments must match the prototype from ``linux/bpf.h``
(generated into ``pybpf.syscall._uapi``), a ``struct bpf_map *`` argument
must be a map, a pointer argument a pointer (or 0 for NULL), the context
argument ``p.ctx``. Arguments are computed first and moved into r1-r5 just
before the call, so the register allocator can place them there directly.
"""

from __future__ import annotations

from pybpf.asm import Alu, Arith, Call, LoadFunc, LoadMap, Reg
from pybpf.dsl.ir import ARGS
from pybpf.dsl.values import Value
from pybpf.syscall._uapi import HELPER_PROTOS
from pybpf.types import s32, s64, u32, u64

_MOV = Arith.MOV  # read once: through the enum class each read costs ~80 ns
_RETURNS = {"u64": u64, "__u64": u64, "long": s64, "u32": u32, "__u32": u32, "int": s32,
            "s64": s64, "__s64": s64, "void": u64}
# Helpers after which the verifier forgets packet pointers (bpf_helper_changes_pkt_data).
CHANGES_PACKET = frozenset({
    "skb_store_bytes", "skb_change_proto", "skb_change_type", "skb_vlan_push", "skb_vlan_pop",
    "skb_change_tail", "skb_change_head", "skb_adjust_room", "skb_pull_data", "l3_csum_replace",
    "l4_csum_replace", "xdp_adjust_head", "xdp_adjust_meta", "xdp_adjust_tail", "clone_redirect",
    "msg_pull_data", "msg_push_data", "msg_pop_data", "lwt_push_encap", "lwt_seg6_store_bytes",
    "lwt_seg6_adjust_srh", "lwt_seg6_action", "skb_ecn_set_ce", "xdp_store_bytes",
})
_CTX_NAMES = {"ctx", "skb", "xdp_md", "xdp", "msg", "skops", "bpf_sock", "sk_reuseport",
              "reuse", "regs", "args"}


def prototype(b, name: str):
    """(return type, [(ctype, argname)]) of helper ``name``; a clear error if unknown."""
    name = name.removeprefix("bpf_")
    proto = HELPER_PROTOS.get(name)
    if proto is None:
        close = sorted(n for n in HELPER_PROTOS if name[:5] in n)[:5]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise b.error(f"unknown helper bpf_{name}{hint}")
    return proto


def is_function(arg) -> bool:
    """A ``@subprog`` (passed where a helper wants a callback, e.g. bpf_loop)."""
    return (type(arg).__name__ == "SubprogDef" and callable(getattr(arg, "fn", None))
            and isinstance(getattr(arg, "nargs", None), int))


def _kind(ctype: str, argname: str) -> str:
    if ctype == "struct bpf_map *" or (argname == "ringbuf" and "*" in ctype):
        return "map"  # linux/bpf.h types the ring buffer helpers' map `void *ringbuf`
    if "*" in ctype:
        if argname in _CTX_NAMES or ctype in ("struct sk_buff *", "struct xdp_buff *",
                                              "struct sk_msg_buff *", "struct bpf_sock_ops *"):
            return "ctx"
        return "pointer"
    return "scalar"


def call(b, name: str, *args) -> Value:
    """Emit a helper call; returns r0 as a Value of the prototype's return type."""
    from pybpf.dsl.maps import MapDef
    from pybpf.dsl.pointers import Ptr

    name = name.removeprefix("bpf_")
    ret, params = prototype(b, name)
    variadic = params and params[-1][0] == "..."
    fixed = [p for p in params if p[0] != "..."]
    if len(args) != len(fixed) and not (variadic and len(fixed) <= len(args) <= 5):
        sig = ", ".join(f"{t} {n}" for t, n in params)
        raise b.error(f"bpf_{name} takes {len(fixed)} argument(s) ({sig}), got {len(args)}")
    if len(args) > 5:
        raise b.error(f"bpf_{name}: a helper takes at most 5 arguments")
    staged = []
    for i, arg in enumerate(args):
        ctype, argname = params[i] if i < len(fixed) else ("u64", f"arg{i}")
        kind = _kind(ctype, argname)
        where = f"argument {i + 1} ({ctype} {argname}) of bpf_{name}"
        if kind == "map":
            if not isinstance(arg, MapDef):
                raise b.error(f"{where} must be a map, got {arg!r}")
            b.use_map(arg)
            staged.append(("map", arg.name))
        elif kind == "ctx":
            staged.append(("reg", b.ctx_reg(where, arg)))
        elif is_function(arg):
            if kind != "pointer":
                raise b.error(f"{where} is not a function argument")
            b.use_function(arg)
            staged.append(("func", arg.name))
        elif isinstance(arg, Ptr):
            staged.append(("reg", arg.address()))
        elif isinstance(arg, MapDef):
            raise b.error(f"{where} is not a map argument")
        elif kind == "pointer" and isinstance(arg, int) and arg != 0:
            raise b.error(f"{where} must be a pointer (or 0 for NULL), got {arg}")
        else:
            v = b.coerce(arg, u64)
            if v.is_const:
                staged.append(("const", v.loc, v.type))
            else:
                staged.append(("reg", b.widen(v, s64 if v.type.signed else u64).loc))
    outer = b.pin()  # the argument moves, the call and its result share one position
    try:
        for i, item in enumerate(staged):
            reg = ARGS[i]
            if item[0] == "map":
                b.emit(LoadMap, dst=reg, map=item[1])
            elif item[0] == "func":
                b.emit(LoadFunc, dst=reg, target=item[1])
            elif item[0] == "const":
                b.load_const(reg, item[1], u64)
            else:
                b.emit(Alu, op=_MOV, dst=reg, src=item[1], width=64)
        b.emit(Call, helper=HELPER_PROTOS.helper_id(name), nargs=len(args))
        if name in CHANGES_PACKET:
            b.packet_changed(name)
        result = b.new_vreg(name)
        b.emit(Alu, op=_MOV, dst=result, src=Reg.R0, width=64)
    finally:
        b.pinned = outer
    return Value(b, _RETURNS.get(ret, u64), result)


def kfunc(b, name: str, *args) -> Value:
    """Call kernel function ``name`` (a kfunc) by its BTF id in the running kernel's vmlinux.

    The number of arguments is checked against the function's BTF prototype;
    pointer parameters take a Ptr (or ``p.ctx``), scalars a value or an int.
    Which program types may call it is the verifier's to say.
    """
    from pybpf.asm import CallKfunc
    from pybpf.btf.kernel import vmlinux
    from pybpf.dsl.pointers import Ptr
    from pybpf.errors import BTFError

    try:
        info = vmlinux().func(name)
    except (BTFError, KeyError, LookupError) as e:
        raise b.error(f"no kernel function {name!r} in vmlinux BTF ({e})") from None
    params = [p for p in info.params if p[1] != "..."]
    if len(args) != len(params):
        sig = ", ".join(f"{t} {n}" for n, t in info.params)
        raise b.error(f"{name} takes {len(params)} argument(s) ({sig}), got {len(args)}")
    if len(args) > 5:
        raise b.error(f"{name}: a call passes at most 5 arguments")
    staged = []
    for i, (arg, (pname, ptype)) in enumerate(zip(args, params, strict=True)):
        where = f"argument {i + 1} ({ptype} {pname}) of {name}"
        pointer = ptype.endswith("*")
        if pointer and arg is getattr(b, "ctx", None) and arg is not None:
            staged.append(("reg", b.ctx_reg(where, arg)))
        elif isinstance(arg, Ptr):
            if not pointer:
                raise b.error(f"{where} is a scalar, got a pointer")
            staged.append(("reg", arg.address()))
        elif pointer and isinstance(arg, int) and arg != 0:
            raise b.error(f"{where} must be a pointer (or 0 for NULL), got {arg}")
        else:
            v = b.coerce(arg, u64)
            staged.append(("const", v.loc) if v.is_const else
                          ("reg", b.widen(v, s64 if v.type.signed else u64).loc))
    for i, item in enumerate(staged):
        if item[0] == "const":
            b.load_const(ARGS[i], item[1], u64)
        else:
            b.emit(Alu, op=_MOV, dst=ARGS[i], src=item[1], width=64)
    b.emit(CallKfunc, btf_id=info.type_id, module=0, nargs=len(args))
    result = b.new_vreg(name)
    b.emit(Alu, op=_MOV, dst=result, src=Reg.R0, width=64)
    return Value(b, _KF_RETURNS.get(info.return_type, u64), result)


_KF_RETURNS = {"int": s32, "s32": s32, "u32": u32, "unsigned int": u32, "long": s64,
               "long int": s64, "s64": s64, "u64": u64, "long long unsigned int": u64,
               "long unsigned int": u64, "void": u64}
