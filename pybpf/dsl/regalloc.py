"""Register allocation: virtual registers onto r0-r9 by graph colouring.

1. Liveness over the control-flow graph of the op list (jumps, labels, exits).
2. Interference: a register written (or clobbered by a call) at a point
   interferes with everything live after that point; a move's source and
   destination do not interfere, so they may share a register.
3. Colouring in order of first appearance, preferring the register a move
   connects the value to (argument registers before calls, r0 after them),
   so most moves become ``rX = rX`` and are deleted.
4. A value that finds no register is spilled: stored to an 8-byte stack slot
   after each definition and reloaded before each use into short-lived
   temporaries, and allocation runs again.

Physical registers named by ops (r1 at entry, r1-r5 for call arguments, r0
for results) take part as pre-coloured nodes, so their constraints are just
more interference.
"""

from __future__ import annotations

from collections.abc import Callable

from pybpf.asm import Exit, Goto, GotoLong, Jump, Load, MayGoto, Reg, Size, Store
from pybpf.dsl.ir import Mark, Op, VReg
from pybpf.errors import AsmError

ORDER = (Reg.R0, Reg.R1, Reg.R2, Reg.R3, Reg.R4, Reg.R5, Reg.R6, Reg.R7, Reg.R8, Reg.R9)


def successors(ops: list) -> list[tuple[int, ...]]:
    """Indices of the ops that may run after each op."""
    labels = {op.name: i for i, op in enumerate(ops) if isinstance(op, Mark)}
    out = []
    n = len(ops)
    for i, op in enumerate(ops):
        nxt = (i + 1,) if i + 1 < n else ()
        if isinstance(op, Mark):
            out.append(nxt)
            continue
        cls = op.cls
        if cls is Exit:
            out.append(())
        elif cls in (Goto, GotoLong):
            out.append((labels[op.fields["target"]],))
        elif cls in (Jump, MayGoto):
            out.append((*nxt, labels[op.fields["target"]]))
        else:
            out.append(nxt)
    return out


def liveness(ops: list) -> list[set]:
    """The set of registers (virtual and physical) live after each op."""
    succ = successors(ops)
    n = len(ops)
    live_in: list[set] = [set() for _ in range(n)]
    live_out: list[set] = [set() for _ in range(n)]
    changed = True
    while changed:
        changed = False
        for i in range(n - 1, -1, -1):
            out = set()
            for s in succ[i]:
                out |= live_in[s]
            op = ops[i]
            new_in = (out - set(op.defs)) | set(op.uses)
            if out != live_out[i] or new_in != live_in[i]:
                live_out[i], live_in[i] = out, new_in
                changed = True
    return live_out


def _interference(ops: list, live_out: list[set]):
    graph: dict = {}
    hints: dict = {}

    def edge(a, b):
        if a is b or a == b:
            return
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set()).add(a)

    for i, op in enumerate(ops):
        if isinstance(op, Mark):
            continue
        live = live_out[i]
        skip = None
        if op.is_move:
            skip = op.fields["src"]
            dst = op.fields["dst"]
            hints.setdefault(dst, []).append(skip)
            hints.setdefault(skip, []).append(dst)
        for d in (*op.defs, *op.clobbers):
            graph.setdefault(d, set())
            for v in live:
                if v is not skip:
                    edge(d, v)
        for u in op.uses:
            graph.setdefault(u, set())
    return graph, hints


def allocate(ops: list, spill_slot: Callable[[], int]) -> dict[VReg, Reg]:
    """Map every VReg in ``ops`` to a Reg, spilling (and rewriting ``ops``) as needed."""
    slots: dict[int, set] = {}  # stack offset -> ops at which a value spilled there is live
    for _ in range(200):
        live_out = liveness(ops)
        graph, hints = _interference(ops, live_out)
        order = _first_appearance(ops)
        colour: dict = {}
        failed = []
        for v in order:
            taken = {colour.get(u, u) for u in graph.get(v, ())}
            taken = {t for t in taken if isinstance(t, Reg)}
            choice = None
            for h in hints.get(v, ()):
                h = colour.get(h, h)
                if isinstance(h, Reg) and h not in taken and h != Reg.R10:
                    choice = h
                    break
            if choice is None:  # a register the move partner can take too, so the move goes
                for h in hints.get(v, ()):
                    if isinstance(h, VReg) and h not in colour and h not in graph.get(v, ()):
                        theirs = {colour.get(u, u) for u in graph.get(h, ())}
                        choice = next((r for r in ORDER if r not in taken and r not in theirs),
                                      None)
                        if choice is not None:
                            break
            if choice is None:
                choice = next((r for r in ORDER if r not in taken), None)
            if choice is None:
                failed.append(v)
            else:
                colour[v] = choice
        if not failed:
            return colour
        accesses: dict = {}
        for op in ops:
            for r in (*op.uses, *op.defs):
                accesses[r] = accesses.get(r, 0) + 1
        victims: dict = {}
        for v in failed:  # one spill per failed value, all in this round
            victim = _spill_choice(v, graph, live_out, victims, accesses)
            if victim is not None:
                victims[victim] = None
        if not victims:
            break
        next_id = 1 + max((v.id for op in ops for v in (*op.defs, *op.uses)
                           if isinstance(v, VReg)), default=0)
        where = {victim: {id(op) for op, live in zip(ops, live_out, strict=True)
                          if victim in live or victim in op.defs} for victim in victims}
        for victim, points in where.items():
            slot = next((s for s in slots if not slots[s] & points), None)
            if slot is None:
                slot = spill_slot()
                slots[slot] = set()
            slots[slot] |= points  # values never live together share a slot
            next_id = _spill(ops, victim, slot, next_id)
    raise AsmError("register allocation did not converge (too many values live at once)")


def _spill_choice(failed: VReg, graph: dict, live_out: list[set], chosen,
                  accesses: dict) -> VReg | None:
    """The value to move to the stack so that ``failed`` finds a register.

    Among ``failed`` and the values it interferes with, the one with the
    most points live per access (Chaitin's cost: each use or definition of a
    spilled value costs a load or a store, each point it is live through
    frees a register), never a spill temporary (spilling that again would
    only make another one).
    """
    span: dict = {}
    for live in live_out:
        for v in live:
            if isinstance(v, VReg):
                span[v] = span.get(v, 0) + 1
    candidates = [v for v in (failed, *sorted(graph.get(failed, ()), key=_key))
                  if isinstance(v, VReg) and not v.name.endswith(".spill")]
    if any(v in chosen for v in candidates):
        return None  # a spill this round already makes room here
    if not candidates:
        return None
    return max(candidates, key=lambda v: (span.get(v, 0) / (1 + accesses.get(v, 0)), -v.id))


def _key(v) -> int:
    return v.id if isinstance(v, VReg) else -1 - int(v)


def _first_appearance(ops: list) -> list[VReg]:
    seen: dict = {}
    for op in ops:
        for v in (*op.defs, *op.uses):
            if isinstance(v, VReg) and v not in seen:
                seen[v] = None
    return list(seen)


def _spill(ops: list, v: VReg, offset: int, next_id: int) -> int:
    """Rewrite ``ops`` so that ``v`` lives in the stack slot at r10 + offset."""
    i = 0
    while i < len(ops):
        op = ops[i]
        if isinstance(op, Mark) or (v not in op.uses and v not in op.defs):
            i += 1
            continue
        t = VReg(next_id, f"{v.name or 'v'}.spill")
        next_id += 1
        before, after = [], []
        if v in op.uses:
            before.append(Op(Load, {"dst": t, "src": Reg.R10, "off": offset, "size": Size.DW},
                             op.source))
        if v in op.defs:
            after.append(Op(Store, {"dst": Reg.R10, "src": t, "off": offset, "size": Size.DW},
                            op.source))
        op.replace({v: t})
        ops[i:i + 1] = [*before, op, *after]
        i += len(before) + 1 + len(after)
    return next_id
