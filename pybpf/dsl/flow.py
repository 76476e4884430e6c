"""Structured control flow for the builder: conditions become jumps.

``with p.if_(c):`` / ``p.elif_(c)`` / ``p.else_()``, ``for i in p.range(n)``
(optionally with ``may_goto``), ``with p.while_(...)`` (``may_goto``),
``p.loop()`` (``bpf_loop`` with a ``@subprog`` callback), ``break_`` and
``return_``. Conditions decided at build time emit no jump at all and their
dead branch is not emitted. Packet pointers follow the control flow: a
packet change inside a branch that returned does not invalidate pointers
used after it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from pybpf.asm import Alu, Arith, Exit, Goto, Jump, MayGoto, Reg
from pybpf.dsl.ir import Op
from pybpf.dsl.values import Cond, Value, _wrap, const_type, imm32, imm64, jump_op, promote
from pybpf.types import Scalar, s32, s64, u32, u64


class Flow:
    """Control-flow methods of ``Builder`` (a mixin: it relies on emit, mark, label, var)."""

    # -- packet validity along control flow -------------------------------------------

    def _packet_state(self):
        pkt = getattr(self, "packet", None)
        return (pkt.generation, pkt.changed_by) if pkt is not None else (0, "")

    def _set_packet_state(self, state) -> None:
        pkt = getattr(self, "packet", None)
        if pkt is not None:
            pkt.generation, pkt.changed_by = state

    # -- control flow ---------------------------------------------------------------

    def branch(self, cond: Cond, target: str, when: bool) -> None:
        """Jump to ``target`` if ``cond`` evaluates to ``when``."""
        if cond.negated:
            when = not when
        if cond.kind == "and" or cond.kind == "or":
            a, c = cond.parts
            all_must = (cond.kind == "and") == when
            outer = self.pin()  # the jumps of all parts have the position of the whole
            try:
                if all_must:  # jump only if both parts decide for it
                    skip = self.label("sc")
                    self.branch(a, skip, not when)
                    self.branch(c, target, when)
                    self.mark(skip)
                else:  # either part decides
                    self.branch(a, target, when)
                    self.branch(c, target, when)
            finally:
                self.pinned = outer
            return
        lhs, op, rhs, signed = cond.parts
        if lhs.is_const and rhs.is_const:
            result = _evaluate(op, lhs.loc, rhs.loc, signed, _cmp_type(lhs, rhs))
            if result == when:
                self.emit(Goto, target=target)
                self.dead = False  # what follows is pruned as unreachable, not an error
            return
        width = 32 if lhs.type.bits <= 32 and rhs.type.bits <= 32 else 64
        t = s64 if signed else u64
        if width == 64:
            lhs, rhs = self.widen(lhs, t), self.widen(rhs, t)
        src = rhs.loc
        if rhs.is_const:
            src = imm64(src) if width == 64 else imm32(src)
            if src is None:
                src = self.reg(rhs)
        if op == "&" and not when:
            skip = self.label("js")
            self.emit(Jump, op=jump_op(op, signed, False), dst=lhs.loc, src=src, target=skip,
                      width=width)
            self.emit(Goto, target=target)
            self.mark(skip)
            return
        self.emit(Jump, op=jump_op(op, signed, not when), dst=lhs.loc, src=src, target=target,
                  width=width)

    def if_(self, cond: Cond) -> _If:
        """Run the body only when ``cond`` holds; follow with ``else_()``/``elif_()``."""
        return _If(self, cond)

    def else_(self) -> _Else:
        """The branch taken when the preceding ``if_`` (or ``elif_``) did not run."""
        return _Else(self)

    @contextlib.contextmanager
    def elif_(self, cond: Cond) -> Iterator[None]:
        """``else_()`` holding an ``if_(cond)``, chainable: if_/elif_/.../else_."""
        inner = None
        self._last_joins = ()
        with self.else_():
            with self.if_(cond):
                yield
            inner = self._pending_else
        if inner is not None and inner[2] != "always":
            index, end, body_dead, carried = (*inner, ())[:4]
            self._pending_else = (index, end, body_dead, (*carried, *self._last_joins))
        elif inner is not None:
            self._pending_else = inner

    def range(self, start, stop=None, step: int = 1, *, may_goto: bool = False) -> Iterator[Value]:
        """``for i in p.range(n):`` a bounded loop the verifier accepts (kernel 5.3+).

        With ``may_goto=True`` each iteration starts with ``may_goto`` (kernel
        6.9+), so the verifier accepts bounds it cannot prove (large or unknown ``n``).
        """
        if stop is None:
            start, stop = 0, start
        if not isinstance(step, int) or step == 0:
            raise self.error("range step must be a non-zero int constant")
        t = stop.type if isinstance(stop, Value) else (start.type if isinstance(start, Value)
                                                       else promote(const_type(stop, u64)))
        from pybpf.types import u32
        t = u32 if t.bits <= 32 and not t.signed else t
        i = self.var(t, start)
        head, end = self.label("loop"), self.label("endloop")
        self.mark(head)
        if may_goto:
            self.emit(MayGoto, target=end)
        cond = (i < stop) if step > 0 else (i > stop)
        self.branch(cond, end, False)
        self._loops.append((head, end))
        try:
            yield i
        finally:
            self._loops.pop()
        if not self.dead:
            i += step
            self.emit(Goto, target=head)
        self.mark(end)

    @contextlib.contextmanager
    def while_(self, cond) -> Iterator[None]:
        """``with p.while_(lambda: i < n):`` a loop bounded by the kernel's ``may_goto`` budget.

        Each iteration starts with ``may_goto`` (kernel 6.9+), which leaves the
        loop once the verifier's iteration budget is spent, so the verifier
        need not prove the condition ever fails. ``cond`` is a function
        returning the Cond, evaluated at the top of every iteration (a Cond
        built beforehand is fine when its operands are Vars or constants), or
        None for a loop left only by ``break_``/``return_``.
        """
        head, end = self.label("while"), self.label("endwhile")
        self.mark(head)
        self.emit(MayGoto, target=end)
        c = cond() if callable(cond) else cond
        if c is not None:
            if not isinstance(c, Cond):
                raise self.error(f"while_ needs a condition (or a function returning one), got {c!r}")
            self.branch(c, end, False)
        self._loops.append((head, end))
        try:
            yield
        finally:
            self._loops.pop()
        if not self.dead:
            self.emit(Goto, target=head)
        self.mark(end)

    def use_function(self, fn) -> None:
        """Record a subprogram referenced by address (a callback); built with the program."""
        subprogs = getattr(self, "subprogs", None)
        if subprogs is None:
            raise self.error(f"{fn.name} cannot be referenced here")
        subprogs[fn.name] = fn

    def loop(self, count, callback, ctx=None, flags: int = 0) -> Value:
        """``bpf_loop``: call ``@subprog callback(p, index, ctx)`` ``count`` times (kernel 5.17+).

        The callback returns 0 to go on, 1 to stop; ``ctx`` (a pointer, e.g.
        ``p.stack(T)``) reaches it as its second argument: ``p.deref(ctx, T)``.
        Returns the number of iterations run.
        """
        from pybpf.dsl.calls import call
        return call(self, "loop", count, callback, 0 if ctx is None else ctx, flags)

    def kfunc(self, name: str, *args) -> Value:
        """Call kernel function ``name`` by its BTF id (``p.kfunc("bpf_rcu_read_lock")``)."""
        from pybpf.dsl.calls import kfunc
        return kfunc(self, name, *args)

    def deref(self, pointer: Value, t):
        """``pointer`` (an argument holding a stack address, e.g. a callback's ctx) as a T *."""
        from pybpf.dsl.pointers import Ptr, StackRegion
        from pybpf.types import as_type
        if not isinstance(pointer, Value) or pointer.is_const:
            raise self.error(f"deref needs a pointer argument, got {pointer!r}")
        return Ptr(self, as_type(t), pointer.loc, 0, StackRegion())

    @property
    def _loops(self) -> list:
        loops = self.__dict__.get("_loop_stack")
        if loops is None:
            loops = self.__dict__["_loop_stack"] = []
        return loops

    def break_(self) -> None:
        if not self._loops:
            raise self.error("break_ outside a loop")
        self.emit(Goto, target=self._loops[-1][1])

    def return_(self, value=0) -> None:
        """Return ``value`` from this function (r0 = value; exit)."""
        v = self.coerce(value, s64 if isinstance(value, int) and value < 0 else u64)
        outer = self.pin()
        try:
            if v.is_const:
                self.load_const(Reg.R0, v.loc, v.type if v.type.bits == 64 else u64)
            else:
                signx = v.type.signed and v.type.bits < 64
                self.emit(Alu, op=Arith.MOVSX32 if signx else Arith.MOV, dst=Reg.R0, src=v.loc,
                          width=64)
            self.emit(Exit)
        finally:
            self.pinned = outer


# ``if_`` and ``else_`` are classes rather than ``contextlib.contextmanager``
# generators: a build enters dozens of them, a ``with`` costs ~1 µs through a
# generator against ~0.25 µs here, and each op they emit is one frame nearer
# the user's. Their work happens in __enter__ and __exit__, as it did around
# the generator's yield; a body that raises skips the closing work.

class _If:
    """``with p.if_(cond):`` the jump over the body on entry, its end label on exit."""

    __slots__ = ("b", "cond", "folded", "end", "before")

    def __init__(self, b, cond: Cond):
        self.b = b
        self.cond = cond

    def __enter__(self) -> None:
        b, cond = self.b, self.cond
        if not isinstance(cond, Cond):
            raise b.error(f"if_ needs a condition (a comparison), got {cond!r}")
        self.folded = folded = _folded(cond)
        self.end = b.label("endif")
        if folded is False:  # the body is not emitted
            b.discard += 1
            return
        if folded is None:
            b.branch(cond, self.end, False)
        self.before = b._packet_state()

    def __exit__(self, exc_type, exc, tb) -> None:
        b, end, folded = self.b, self.end, self.folded
        if folded is False:
            b.discard -= 1
            if exc_type is None:
                b._pending_else = (None, end, True, ())
            return
        if exc_type is not None:
            return
        body_dead = b.dead
        g0, g_body = self.before, b._packet_state()
        if body_dead:  # a packet change in a branch that returned does not reach what follows
            b._set_packet_state(g0)
        b._branch_states[end] = (g0, g_body, body_dead)
        index = len(b.ops)
        b.mark(end)
        b._pending_else = (index, end, body_dead if folded is None else "always", ())


class _Else:
    """``with p.else_():`` the jump from the if_ body past this one, and the join label."""

    __slots__ = ("b", "end", "discarded", "join", "states", "carried")

    def __init__(self, b):
        self.b = b

    def __enter__(self) -> None:
        b = self.b
        pending = b._pending_else
        if pending is None:
            raise b.error("else_ must follow an if_ block directly")
        index, self.end, body_dead, self.carried = (*pending, ())[:4]
        # the if_ was constant-true, or all of it sits in a branch folded away: else never
        # runs (and the jump past it must not be inserted into the ops kept)
        self.discarded = body_dead == "always" or b.discard > 0
        if self.discarded:
            b.discard += 1
            return
        # Joins of enclosing elif_ branches sit at the end of the chain: move them past us.
        ops = b.ops
        for m in self.carried:
            if m in ops:
                ops.remove(m)
        self.join = b.label("join")
        if index is not None and not body_dead:
            ops.insert(index, Op(Goto, {"target": self.join}, ops[index - 1].source
                                 if index else None))
        self.states = states = b._branch_states.get(self.end)
        if states is not None:  # the else path starts from the packet as it was before the if
            b._set_packet_state(states[0])

    def __exit__(self, exc_type, exc, tb) -> None:
        b = self.b
        if self.discarded:
            b.discard -= 1
            if exc_type is None:
                b._pending_else = (None, self.end, "always", ())
            return
        if exc_type is not None:
            return
        states = self.states
        if states is not None:
            g0, g_body, if_dead = states
            g_else = b._packet_state()
            if if_dead or b.dead:
                b._set_packet_state(g_else if if_dead else g_body)
            else:
                b._set_packet_state(max(g_body, g_else, key=lambda g: g[0]))
        before = len(b.ops)
        b.mark(self.join)
        for m in self.carried:
            b.ops.append(m)
            b.dead = False
        b._last_joins = tuple(b.ops[before:])


def _evaluate(op: str, a: int, b: int, signed: bool, t: Scalar) -> bool:
    """A comparison of two constants as the JMP/JMP32 instruction of width ``t.bits`` would."""
    if op == "&":
        return (a & b) & ((1 << t.bits) - 1) != 0
    a, b = _wrap(a, (s64 if signed else u64) if t.bits == 64 else (s32 if signed else u32)), \
        _wrap(b, (s64 if signed else u64) if t.bits == 64 else (s32 if signed else u32))
    return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]

def _cmp_type(lhs: Value, rhs: Value) -> Scalar:
    return u64 if lhs.type.bits > 32 or rhs.type.bits > 32 else u32

def _folded(cond: Cond) -> bool | None:
    """True/False if ``cond`` is decided at build time, else None."""
    if cond.kind != "cmp":
        parts = [_folded(c) for c in cond.parts]
        if cond.kind == "and":
            result = False if False in parts else (True if parts == [True, True] else None)
        else:
            result = True if True in parts else (False if parts == [False, False] else None)
    else:
        lhs, op, rhs, signed = cond.parts
        if not (lhs.is_const and rhs.is_const):
            return None
        result = _evaluate(op, lhs.loc, rhs.loc, signed, _cmp_type(lhs, rhs))
    if result is None:
        return None
    return (not result) if cond.negated else result
