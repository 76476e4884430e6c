"""The program context (``p.ctx``) and direct packet access (``p.packet``).

``p.ctx.<field>`` reads a field of the hook's context struct (``xdp_md``,
``__sk_buff``, ``bpf_sock_addr`` ...) after checking, at build time, the
kernel's rule for that hook: unknown, unreadable or read-only fields are
errors naming the kernel function that decides. ``p.packet.header(T)``
returns a pointer into the packet after emitting the bounds check the
verifier needs; a short packet returns the hook's default verdict.
"""

from __future__ import annotations

from pybpf.asm import Alu, Arith, Jump, JumpOp, Load, Size, Store
from pybpf.dsl.access import ContextError
from pybpf.dsl.ir import Op
from pybpf.dsl.pointers import Ptr, Region
from pybpf.dsl.values import DSLError, Value
from pybpf.types import Scalar, u32, u64

MAX_PACKET_OFFSET = 0xFFFF  # the verifier's limit on a variable packet offset (MAX_PACKET_OFF)
# Enum members read once (through the enum class each read costs ~80 ns): every
# header's bounds check uses them.
_MOV, _ADD, _JGT = Arith.MOV, Arith.ADD, JumpOp.JGT


class Ctx:
    """Field access to the context struct, checked against the hook's verifier rules."""

    __slots__ = ("_b", "_rules", "_reg")

    def __init__(self, b, rules, reg):
        object.__setattr__(self, "_b", b)
        object.__setattr__(self, "_rules", rules)
        object.__setattr__(self, "_reg", reg)

    def _rule(self, name: str, write: bool):
        try:
            rule = self._rules.check_store(name) if write else self._rules.check_load(name)
        except ContextError as e:
            raise self._b.error(str(e)) from None
        if rule.pointer_kind and rule.pointer_kind.startswith("packet"):
            raise self._b.error(f"ctx.{name} is a packet pointer: use p.packet.header(...) "
                                "which checks bounds for you")
        return rule

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        rule = self._rule(name, write=False)
        t = rule.type
        if not isinstance(t, Scalar):
            return CtxArray(self, name, t)
        return self._load(rule.offset, t)

    def _load(self, off: int, t: Scalar) -> Value:
        dst = self._b.new_vreg(f"ctx{off}")
        self._b.emit(Load, dst=dst, src=self._reg, off=off, size=Size.of(t.size))
        return Value(self._b, t, dst)

    def __setattr__(self, name: str, value) -> None:
        try:
            rule, size = self._rule(name, write=True), None
        except DSLError as e:
            # A narrow field in a wider slot (bpf_sock_addr.user_port: a be16 in a __u32
            # that takes only 4-byte stores): store the whole slot, zero-extended.
            try:
                rule = self._rules.field(name)
            except ContextError:
                raise e from None
            if not (isinstance(rule.type, Scalar) and rule.type.size < rule.slot
                    and rule.slot in rule.write_sizes):
                raise
            size = rule.slot
        self._store(rule.offset, rule.type, value, size)

    def _store(self, off: int, t: Scalar, value, size: int | None = None) -> None:
        b = self._b
        v = b.coerce(value, t)
        if t.big_endian and not v.type.big_endian:
            v = v.net(t.bits)
        # The verifier refuses BPF_ST into the context: always store from a register.
        src = b.reg(Value(b, t, v.loc & ((1 << t.bits) - 1)) if v.is_const else v)
        b.emit(Store, dst=self._reg, src=src, off=off, size=Size.of(size or t.size))


class CtxArray:
    """An array field of the context (``ctx.remote_ip6[0]``, ``ctx.cb[2]``)."""

    def __init__(self, ctx: Ctx, name: str, t):
        self.ctx, self.name, self.t = ctx, name, t

    def _check(self, index: int, write: bool):
        rules = self.ctx._rules
        try:
            rule = (rules.check_store if write else rules.check_load)(self.name, None, index)
        except ContextError as e:
            raise self.ctx._b.error(str(e)) from None
        return rule.offset + index * self.t.elem.size

    def __getitem__(self, index: int) -> Value:
        return self.ctx._load(self._check(index, False), self.t.elem)

    def __setitem__(self, index: int, value) -> None:
        self.ctx._store(self._check(index, True), self.t.elem, value)


class PacketRegion(Region):
    """Packet bytes [0, end) from a base pointer, valid until the packet changes."""

    name = "packet"

    def __init__(self, packet, end: int):
        self.packet = packet
        self.end = end
        self.generation = packet.generation

    def check(self, b, off: int, size: int) -> None:
        if self.generation != self.packet.generation:
            raise b.error(f"packet pointer used after bpf_{self.packet.changed_by} changed the "
                          "packet: read the header again with p.packet.header(...)")
        if off < 0 or off + size > self.end:
            raise b.error(f"packet access of {size} bytes at offset {off} is outside the "
                          f"checked range (0..{self.end}); extend the header() check")


class Packet:
    """Direct packet access for XDP, TC and cgroup skb programs."""

    def __init__(self, b, rules, ctx_reg):
        self.b = b
        self.rules = rules
        self.ctx_reg = ctx_reg
        self.generation = 0
        self.changed_by = ""
        self._vars = None

    def _pointers(self):
        """data and data_end, loaded once at function entry (and again after changes)."""
        if self._vars is None:
            b = self.b
            data, end = b.new_vreg("data"), b.new_vreg("data_end")
            offs = self.rules.field("data").offset, self.rules.field("data_end").offset
            ops = [Op(Load, {"dst": data, "src": self.ctx_reg, "off": offs[0], "size": Size.W},
                      b.def_pos),
                   Op(Load, {"dst": end, "src": self.ctx_reg, "off": offs[1], "size": Size.W},
                      b.def_pos)]
            b.ops[b.prologue_end:b.prologue_end] = ops
            b.prologue_end += 2
            self._vars = (data, end)
        return self._vars

    def reload(self, helper: str) -> None:
        """A helper changed the packet: old pointers are stale, reload data/data_end."""
        self.generation += 1
        self.changed_by = helper
        if self._vars is not None:
            data, end = self._vars
            self.b.emit(Load, dst=data, src=self.ctx_reg, off=self.rules.field("data").offset,
                        size=Size.W)
            self.b.emit(Load, dst=end, src=self.ctx_reg,
                        off=self.rules.field("data_end").offset, size=Size.W)

    def _check(self, base, end_off: int, on_short) -> None:
        b = self.b
        _, data_end = self._pointers()
        tmp = b.new_vreg("bound")
        outer = b.pin()
        try:
            b.emit(Alu, op=_MOV, dst=tmp, src=base, width=64)
            b.emit(Alu, op=_ADD, dst=tmp, src=end_off, width=64)
            b.emit(Jump, op=_JGT, dst=tmp, src=data_end, target=b.exit_with(on_short),
                   width=64)
        finally:
            b.pinned = outer

    def headers(self, *types, at: int = 0, on_short=None) -> tuple[Ptr, ...]:
        """Consecutive fixed-size headers from byte ``at``, covered by one bounds check."""
        if not types:
            raise self.b.error("headers() needs at least one header type")
        data, _ = self._pointers()
        end = at + sum(t.size for t in types)
        self._check(data, end, on_short)
        region = PacketRegion(self, end)
        out, off = [], at
        for t in types:
            out.append(Ptr(self.b, t, data, off, region))
            off += t.size
        return tuple(out)

    def header(self, t, *, after: Ptr | None = None, at=None, on_short=None) -> Ptr:
        """The header of type ``t`` at byte ``at`` or right after header ``after``.

        If ``after`` has a variable length (IPv4 or TCP options, IPv6
        extension headers), the new header starts at a pointer computed from
        that length; otherwise the offset is a constant. Either way one
        bounds check covers ``t``; a short packet returns the default verdict
        (or ``on_short``).
        """
        b = self.b
        data, _ = self._pointers()
        if after is not None:
            if at is not None:
                raise b.error("give either after= or at=, not both")
            length = getattr(after, "header_length", None) if _has_length(after) else None
            if length is None or (isinstance(length, Value) and length.is_const):
                size = after._type.size if length is None else length.loc
                return self._fixed(t, after._base, after._off + size, after._region, on_short)
            return self._variable(t, after._base, after._off, length, on_short)
        if at is None:
            at = 0
        if isinstance(at, int):
            return self._fixed(t, data, at, None, on_short)
        return self._variable(t, data, 0, b.coerce(at, u32), on_short)

    def require(self, length, *, on_short=None) -> None:
        """The packet holds at least ``length`` bytes (int or u32 value); else ``on_short``.

        For the end of a variable-length header (IPv4 or TCP options, an IPv6 extension
        header) whose bytes are not read: ``data + length > data_end`` is the whole check,
        where ``header(u8, at=length - 1)`` would compute ``length - 1`` and add the 1 back.
        """
        data, _ = self._pointers()
        if isinstance(length, int):
            self._check(data, length, on_short)
            return
        b = self.b
        length = b.coerce(length, u32)
        outer = b.pin()
        try:
            if not length.is_const:
                self._bound(length, on_short)
            self._check(data, length.loc, on_short)
        finally:
            b.pinned = outer

    def _bound(self, length: Value, on_short) -> None:
        """Bound a variable offset so the verifier can add it to a packet pointer
        (unless the value is provably small already, like ``(x & 0xf) << 2``)."""
        if length.max is None or length.max > MAX_PACKET_OFFSET:
            self.b.emit(Jump, op=_JGT, dst=length.loc, src=MAX_PACKET_OFFSET,
                        target=self.b.exit_with(on_short), width=64)

    def _fixed(self, t, base, off: int, region, on_short) -> Ptr:
        end = off + t.size
        self._check(base, end, on_short)
        return Ptr(self.b, t, base, off, PacketRegion(self, end))

    def _variable(self, t, base, off: int, length: Value, on_short) -> Ptr:
        b = self.b
        if length.is_const:
            return self._fixed(t, base, off + length.loc, None, on_short)
        outer = b.pin()
        try:
            self._bound(length, on_short)
            start = b.new_vreg("hdr")
            b.emit(Alu, op=_MOV, dst=start, src=base, width=64)
            if off:
                b.emit(Alu, op=_ADD, dst=start, src=off, width=64)
            b.emit(Alu, op=_ADD, dst=start, src=length.loc, width=64)
            self._check(start, t.size, on_short)
        finally:
            b.pinned = outer
        return Ptr(b, t, start, 0, PacketRegion(self, t.size))

    def load_bytes(self, offset, dst: Ptr, length: int | None = None) -> Value:
        """``bpf_skb_load_bytes``: copy packet bytes into ``dst`` (for socket filters and TC)."""
        from pybpf.dsl.calls import call
        return call(self.b, "skb_load_bytes", self.b.ctx, offset, dst,
                    dst.size if length is None else length)

    def pointer_value(self) -> Value:
        return Value(self.b, u64, self._pointers()[0])


def _has_length(ptr: Ptr) -> bool:
    from pybpf.dsl.pointers import computed
    return isinstance(getattr(ptr._type, "header_length", None), computed)


__all__ = ["Ctx", "CtxArray", "DSLError", "Packet", "PacketRegion"]
