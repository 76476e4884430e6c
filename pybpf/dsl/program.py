"""Programs written as decorated Python functions.

::

    @xdp
    def drop_udp(p):
        eth, ip = p.packet.headers(Ethernet, IPv4)
        with p.if_((eth.proto == ETH_P_IP) & (ip.protocol == IPPROTO_UDP)):
            p.return_(XDP_DROP)
        p.return_(XDP_PASS)

    drop_udp.build()        # -> Built: instructions, maps, source lines
    print(drop_udp.listing())
    with drop_udp.load() as prog:      # maps created, fds patched in, BTF line info
        prog.test_run(packet)

``p`` is a ``ProgramBuilder``: the position where code is emitted, passed
explicitly (there is no global "current program"). Local functions declared
with ``@subprog`` become bpf-to-bpf calls.
"""

from __future__ import annotations

from pybpf._record import field, record
from pybpf.asm import Alu, Arith, CallLocal, Exit, LoadFunc, Reg
from pybpf.asm.instruction import no_gc
from pybpf.asm.program import Program as AsmProgram
from pybpf.dsl import _netconst as nc
from pybpf.dsl.access import ContextError
from pybpf.dsl.access import rules as context_rules
from pybpf.dsl.builder import Builder
from pybpf.dsl.calls import call
from pybpf.dsl.context import Ctx, Packet
from pybpf.dsl.ir import ARGS, Mark
from pybpf.dsl.maps import MapDef
from pybpf.dsl.pointers import Ptr, StackRegion
from pybpf.dsl.values import DSLError, Value
from pybpf.types import Scalar, StructMeta, as_type, u64

_VARARGS, _VARKEYWORDS = 0x04, 0x08   # CO_VARARGS, CO_VARKEYWORDS of a function's code flags


@record(slots=False)
class Kind:
    """A hook: program type, expected attach type, default verdict, packet access."""

    prog_type: str
    attach_type: str | None = None
    default: int = 0
    direct_packet: bool = False
    tracepoint: tuple[str, str] | None = None  # (category, name) of a tracepoint program

    def context_rules(self):
        if self.tracepoint is not None:
            # Only tracepoint programs read a record format (tracefs, a regex).
            from pybpf.dsl.tracepoint import tracepoint_rules
            return tracepoint_rules(*self.tracepoint)
        return context_rules(self.prog_type, self.attach_type)


class ProgramBuilder(Builder):
    """The ``p`` of a program or subprogram: emits code, owns ctx, packet and stack."""

    def __init__(self, name: str, kind: Kind | None, nargs: int = 0, origin=None):
        super().__init__(name, origin)
        self.kind = kind
        self.maps: dict[str, MapDef] = {}
        self.subprogs: dict[str, SubprogDef] = {}
        self._exits: dict[int, str] = {}
        self.args: list[Value] = []
        if kind is not None:
            self.ctx_vreg = self.new_vreg("ctx")
            self.emit(Alu, op=Arith.MOV, dst=self.ctx_vreg, src=Reg.R1, width=64)
            try:
                rules = kind.context_rules()
            except ContextError as e:
                raise DSLError(str(e), f"{self.def_pos.file}:{self.def_pos.line}"
                               if self.def_pos else None) from None
            self.ctx = Ctx(self, rules, self.ctx_vreg)
            self.packet = Packet(self, rules, self.ctx_vreg) if kind.direct_packet else None
        else:
            self.ctx_vreg, self.ctx, self.packet = None, None, None
            for i in range(nargs):
                v = self.new_vreg(f"arg{i + 1}")
                self.emit(Alu, op=Arith.MOV, dst=v, src=ARGS[i], width=64)
                self.args.append(Value(self, u64, v))
        self.prologue_end = len(self.ops)
        self.pinned = None

    # -- hooks used by calls, maps and packets ---------------------------------------

    def use_map(self, m: MapDef) -> None:
        if m.name is None:
            raise self.error("this map has no name: declare it at module level or pass name=")
        other = self.maps.get(m.name)
        if other is not None and other is not m:
            raise self.error(f"two different maps are named {m.name!r}")
        self.maps[m.name] = m

    def ctx_reg(self, where: str, arg):
        if self.ctx is None or arg is not self.ctx:
            raise self.error(f"{where} must be the program context p.ctx")
        return self.ctx_vreg

    def packet_changed(self, helper: str) -> None:
        if self.packet is not None:
            self.packet.reload(helper)

    def exit_with(self, verdict) -> str:
        """A label that returns ``verdict`` (default: the hook's), emitted once at the end."""
        value = self.kind.default if verdict is None else verdict
        if not isinstance(value, int):
            raise self.error(f"on_short must be an int verdict, got {value!r}")
        label = self._exits.get(value)
        if label is None:
            label = self._exits[value] = self.label(f"ret{value}_")
        return label

    def entry_regs(self) -> frozenset:
        from pybpf.asm import Reg as R
        if self.kind is not None:
            return frozenset({R.R1, R.R10})
        return frozenset({R.R10, *ARGS[:len(self.args)]})

    # -- user API -------------------------------------------------------------------

    def call(self, helper: str, *args) -> Value:
        """Call BPF helper ``helper`` (``"ktime_get_ns"`` or ``"bpf_ktime_get_ns"``)."""
        return call(self, helper, *args)

    def stack(self, t, value=None, **fields) -> Ptr:
        """A zero-initialised stack object of type ``t`` with some fields (or value) set."""
        t = as_type(t)
        off = self.alloc(t.size, min(max(t.align, 1), 8))
        ptr = Ptr(self, t, Reg.R10, off, StackRegion())
        if isinstance(t, Scalar):
            if fields:
                raise self.error(f"{t.name} is a scalar: give its value, not fields")
            self.store_value(Reg.R10, off, t, 0 if value is None else value)
            return ptr
        if value is not None:
            raise self.error("give struct fields as keywords: p.stack(T, a=1, b=x)")
        covered = set()
        for name in fields:
            f = t.field(name) if isinstance(t, StructMeta) else None
            if f is None:
                raise self.error(f"{t.name} has no fields")
            if isinstance(f.type, Scalar):
                covered.update(range(f.offset, f.offset + f.type.size))
        start = None
        for i in range(t.size + 1):  # zero only the bytes no field assignment covers
            gap = i < t.size and i not in covered
            if gap and start is None:
                start = i
            elif not gap and start is not None:
                self.zero(off + start, i - start)
                start = None
        for name, v in fields.items():
            setattr(ptr, name, v)
        return ptr

    def const(self, value: int, t=u64) -> Value:
        """A typed constant (for map keys and helper arguments that need a type)."""
        return Value(self, as_type(t), self.coerce(value, as_type(t)).loc)

    def pointer_to(self, t, value, what: str):
        """A pointer to ``value`` as type ``t``: pointers pass, scalars go to the stack."""
        if isinstance(value, Ptr):
            vt = value._type
            if vt is not t and vt.size != getattr(t, "size", vt.size):
                raise self.error(f"{what} is a {vt.name} ({vt.size} bytes); the map "
                                 f"wants {t.name} ({t.size} bytes)")
            return value
        if isinstance(t, Scalar):
            return self.stack(t, value)
        raise self.error(f"{what} must be a pointer to a {t.name} (e.g. p.stack({t.name}, ...))")

    def reserve(self, ring, t):
        """``with p.reserve(ring, Event) as e:`` fill a ring buffer record, submitted at the end."""
        ring._builder = self
        try:
            return ring.reserve(t)
        finally:
            ring._builder = None

    # -- finishing -----------------------------------------------------------------

    def finish(self) -> list:
        self.check_end()
        self.pinned = self.def_pos
        for value, label in self._exits.items():
            self.ops.append(Mark(label, self.def_pos))
            self.dead = False
            self.load_const(Reg.R0, value, u64)
            self.emit(Exit)
        ops = super().finish()
        # ctx, packet and the arguments point back at this builder. Without them
        # the builder and the ~1700 ops, dicts and tuples it holds are freed by
        # reference counting when the caller drops it, instead of waiting in a
        # cycle for the collector (which then walks them all: ~0.2 ms a build).
        self.ctx = self.packet = None
        self.args = []
        return ops


class SubprogDef:
    """A local function: ``@subprog def f(p, a, b): ...``, called as ``f(p, x, y)``."""

    def __init__(self, fn):
        self.fn = fn
        self.name = fn.__name__
        code = fn.__code__   # positional parameters after ``p`` (inspect costs 4 ms to import)
        if code.co_flags & (_VARARGS | _VARKEYWORDS) or code.co_kwonlyargcount:
            raise DSLError(f"subprogram {self.name}: only positional parameters can be passed")
        self.nargs = code.co_argcount - 1
        if not 0 <= self.nargs <= 5:
            raise DSLError(f"subprogram {self.name} takes {self.nargs} arguments; the limit is 5")

    def __call__(self, p: ProgramBuilder, *args) -> Value:
        if len(args) != self.nargs:
            raise p.error(f"{self.name} takes {self.nargs} argument(s), got {len(args)}")
        values = [p.coerce(a, u64) for a in args]
        for i, v in enumerate(values):
            if v.is_const:
                p.load_const(ARGS[i], v.loc, u64)
            else:
                p.emit(Alu, op=Arith.MOV, dst=ARGS[i], src=p.widen(v, u64).loc, width=64)
        p.emit(CallLocal, target=self.name, nargs=self.nargs)
        p.subprogs[self.name] = self
        result = p.new_vreg(self.name)
        p.emit(Alu, op=Arith.MOV, dst=result, src=Reg.R0, width=64)
        return Value(p, u64, result)


def subprog(fn) -> SubprogDef:
    """Declare a bpf-to-bpf function; its first parameter is its own builder ``p``."""
    return SubprogDef(fn)


@record(frozen=False, slots=False)
class Built:
    """A built program: instructions with labels and source lines, and the maps it uses."""

    name: str
    kind: Kind
    program: AsmProgram
    maps: dict[str, MapDef] = field(default_factory=dict)

    def listing(self) -> str:
        return self.program.listing()


class ProgramDef:
    """A decorated program function: build, list and load it."""

    def __init__(self, fn, kind: Kind, license: str = "GPL", name: str | None = None):
        self.fn = fn
        self.kind = kind
        self.license = license
        self.name = name or fn.__name__
        self.__doc__ = fn.__doc__

    def _name_maps(self) -> None:
        for var, obj in self.fn.__globals__.items():
            if isinstance(obj, MapDef) and obj.name is None:
                obj.name = var

    def build(self) -> Built:
        """Run the function to emit code; allocate registers; assemble subprograms."""
        with no_gc():   # thousands of short-lived ops, dicts and sets, hardly any cycles
            return self._build()

    def _build(self) -> Built:
        self._name_maps()
        p = ProgramBuilder(self.name, self.kind, origin=self.fn)
        self.fn(p)
        funcs = [(self.name, p.finish())]
        maps = dict(p.maps)
        pending, done = _called(funcs[0][1], p.subprogs), set()
        while pending:
            name, sub = pending.popitem()
            if name in done:
                continue
            done.add(name)
            sp = ProgramBuilder(name, None, sub.nargs, origin=sub.fn)
            sub.fn(sp, *sp.args)
            funcs.append((name, sp.finish()))
            maps.update(sp.maps)
            pending.update({k: v for k, v in _called(funcs[-1][1], sp.subprogs).items()
                            if k not in done})
        prog = AsmProgram(name=self.name)
        label, append = prog.label, prog.append
        for i, (name, ops) in enumerate(funcs):
            if i:
                prog.function(name)
            for op in ops:
                if type(op) is Mark:
                    label(op.name, op.source)
                else:
                    append(op.build(), op.source)
        return Built(self.name, self.kind, prog, maps)

    def listing(self) -> str:
        """Disassembly interleaved with the Python lines that produced it."""
        return self.build().listing()

    def load(self, maps: dict | None = None, **kwargs):
        """Create the maps (or use ``maps={name: Map}``) and load into the kernel."""
        from pybpf.dsl.load import load
        return load(self.build(), self.license, maps or {}, **kwargs)

    def __repr__(self) -> str:
        return f"<{self.kind.prog_type} program {self.name}>"


def _called(ops: list, subprogs: dict) -> dict:
    """The subprograms ``ops`` still call or take the address of: a call on a path the
    passes found dead is gone, and the kernel refuses a function nobody calls."""
    targets = {op.fields["target"] for op in ops
               if type(op) is not Mark and (op.cls is CallLocal or op.cls is LoadFunc)}
    return {name: sub for name, sub in subprogs.items() if name in targets}


def _kind_decorator(kind: Kind):
    def decorate(fn=None, *, name: str | None = None, license: str = "GPL"):
        if fn is None:
            return lambda f: ProgramDef(f, kind, license, name)
        return ProgramDef(fn, kind, license, name)
    return decorate


xdp = _kind_decorator(Kind("xdp", None, nc.XDP_PASS, True))
"""An XDP program (``struct xdp_md *`` context; short packets pass)."""

xdp_devmap = _kind_decorator(Kind("xdp", "xdp_devmap", nc.XDP_PASS, True))
"""An XDP program a DEVMAP entry runs on its device before transmit (libbpf's xdp/devmap)."""

xdp_cpumap = _kind_decorator(Kind("xdp", "xdp_cpumap", nc.XDP_PASS, True))
"""An XDP program a CPUMAP entry runs on its target CPU (libbpf's xdp/cpumap)."""

tc = _kind_decorator(Kind("sched_cls", None, nc.TC_ACT_OK, True))
"""A TC classifier in direct-action mode (``struct __sk_buff *``; short packets pass)."""

socket_filter = _kind_decorator(Kind("socket_filter", None, 0, False))
"""A socket filter: returns how many bytes of the packet the socket keeps (0 drops)."""

sk_msg = _kind_decorator(Kind("sk_msg", None, nc.SK_PASS, False))
"""An sk_msg verdict program for sockmap/sockhash."""

sock_ops = _kind_decorator(Kind("sock_ops", None, 1, False))
"""A sock_ops program (TCP events of sockets in a cgroup)."""


def cgroup_skb(direction: str = "ingress", **kw):
    """A cgroup skb program (``"ingress"`` or ``"egress"``); returns 1 to allow, 0 to drop."""
    if direction not in ("ingress", "egress"):
        raise DSLError(f"cgroup_skb direction must be 'ingress' or 'egress', got {direction!r}")
    return _kind_decorator(Kind("cgroup_skb", f"cgroup_inet_{direction}", 1, True))(**kw)


_SOCK_ADDR = {
    "connect4": "cgroup_inet4_connect", "connect6": "cgroup_inet6_connect",
    "bind4": "cgroup_inet4_bind", "bind6": "cgroup_inet6_bind",
    "sendmsg4": "cgroup_udp4_sendmsg", "sendmsg6": "cgroup_udp6_sendmsg",
    "recvmsg4": "cgroup_udp4_recvmsg", "recvmsg6": "cgroup_udp6_recvmsg",
    "getpeername4": "cgroup_inet4_getpeername", "getpeername6": "cgroup_inet6_getpeername",
    "getsockname4": "cgroup_inet4_getsockname", "getsockname6": "cgroup_inet6_getsockname",
}


def cgroup_sock_addr(hook: str, **kw):
    """A cgroup sock_addr program on ``hook`` (connect4, bind6, sendmsg4, getpeername4 ...)."""
    attach = _SOCK_ADDR.get(hook)
    if attach is None:
        raise DSLError(f"unknown sock_addr hook {hook!r}; one of {', '.join(_SOCK_ADDR)}")
    return _kind_decorator(Kind("cgroup_sock_addr", attach, 1, False))(**kw)


def tracepoint(category: str, name: str, **kw):
    """A tracepoint program on ``category:name``; its record fields are ``p.ctx`` fields."""
    return _kind_decorator(Kind("tracepoint", None, 0, False, (category, name)))(**kw)
