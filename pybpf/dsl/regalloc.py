"""Register allocation: virtual registers onto r0-r9 by graph colouring.

1. Liveness over the control-flow graph of the op list (jumps, labels, exits).
2. Interference: a register written (or clobbered by a call) at a point
   interferes with everything live after that point; a move's source and
   destination do not interfere, so they may share a register. Kept as one
   row per written register (one side of each edge), which the colouring
   reads from both sides.
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

from pybpf.asm import (
    Call,
    CallKfunc,
    CallLocal,
    CallX,
    Exit,
    Goto,
    GotoLong,
    Jump,
    Load,
    MayGoto,
    Reg,
    Size,
    Store,
)
from pybpf.dsl.cfg import successors
from pybpf.dsl.ir import Mark, Op, VReg
from pybpf.errors import AsmError

ORDER = (Reg.R0, Reg.R1, Reg.R2, Reg.R3, Reg.R4, Reg.R5, Reg.R6, Reg.R7, Reg.R8, Reg.R9)


class Liveness:
    """Registers live after each op, as bit sets (Python ints) over ``bit``.

    ``bit`` maps every register the ops name (virtual and physical) to a
    one-bit int; ``out[i]`` is the set live after op ``i``. Computed once by
    a backward pass in reverse order (again only while back edges change
    something), so a build pays for it a few times, not per query.
    With ``pure``, a side-effect-free op whose results are all dead reads
    nothing either ("strong" liveness): chains of dead arithmetic, even a
    counter that only feeds itself, come out dead in one analysis.
    """

    __slots__ = ("bit", "regs", "out", "dead")

    def __init__(self, ops: list, succ: list | None = None, pure: tuple | None = None):
        succ = successors(ops) if succ is None else succ
        bit: dict = {}
        n = len(ops)
        use = [0] * n
        kill = [0] * n
        removable = [False] * n
        for i, op in enumerate(ops):
            u = k = 0
            for r in op.uses:
                b = bit.get(r)
                if b is None:
                    b = bit[r] = 1 << len(bit)
                u |= b
            vdefs = True
            for r in op.defs:
                b = bit.get(r)
                if b is None:
                    b = bit[r] = 1 << len(bit)
                k |= b
                vdefs = vdefs and isinstance(r, VReg)
            use[i], kill[i] = u, k
            if pure is not None and op.defs and vdefs and op.cls in pure:
                removable[i] = True
        back = any(s <= i for i, ss in enumerate(succ) for s in ss)
        live_in = [0] * n
        out = [0] * n
        dead = [False] * n
        changed = True
        while changed:
            changed = False
            for i in range(n - 1, -1, -1):
                o = 0
                for s in succ[i]:
                    o |= live_in[s]
                if removable[i] and not o & kill[i]:
                    new_in, dead[i] = o, True
                else:
                    new_in, dead[i] = (o & ~kill[i]) | use[i], False
                if new_in != live_in[i] or o != out[i]:
                    live_in[i], out[i] = new_in, o
                    changed = back
        self.bit, self.out, self.dead = bit, out, dead
        self.regs = list(bit)  # bit position -> register

    def without_dead(self) -> Liveness:
        """The liveness of the ops left once the dead ones are removed."""
        copy = object.__new__(Liveness)
        copy.bit, copy.regs = self.bit, self.regs
        copy.out = [o for o, d in zip(self.out, self.dead, strict=True) if not d]
        copy.dead = [False] * len(copy.out)
        return copy

    def has(self, i: int, r) -> bool:
        """Is ``r`` live after op ``i``?"""
        b = self.bit.get(r)
        return b is not None and bool(self.out[i] & b)

    def members(self, mask: int) -> list:
        """The registers of a bit set."""
        regs, found = self.regs, []
        while mask:
            low = mask & -mask
            found.append(regs[low.bit_length() - 1])
            mask ^= low
        return found

    def sets(self) -> list[set]:
        """``out`` as Python sets."""
        return [set(self.members(m)) for m in self.out]


def liveness(ops: list) -> list[set]:
    """The set of registers (virtual and physical) live after each op."""
    return Liveness(ops).sets()


def _interference(ops: list, live: Liveness):
    """Interference rows as bit sets over ``live.bit``, and move hints.

    ``rows[d]`` holds what is live where ``d`` is written (or clobbered): one
    side of each edge only. Two registers interfere when either is in the
    other's row; the colouring asks exactly that (``_Colours``), so the rows
    are never expanded into neighbour sets, which cost one dict update per
    live register per definition.
    """
    bit = live.bit
    rows: dict = {}
    hints: dict = {}
    out_sets = live.out
    for i, op in enumerate(ops):
        if type(op) is Mark:
            continue
        out = out_sets[i]
        if op.is_move:
            skip, dst = op.fields["src"], op.fields["dst"]
            hints.setdefault(dst, []).append(skip)
            hints.setdefault(skip, []).append(dst)
            out &= ~bit[skip]
        for d in (*op.defs, *op.clobbers):
            db = bit.get(d)
            if db is None:
                db = bit[d] = 1 << len(bit)
                live.regs.append(d)
            mask = out & ~db
            if mask:
                rows[d] = rows.get(d, 0) | mask
    return rows, hints


def _neighbours(rows: dict, live: Liveness) -> dict:
    """The interference graph as sets of neighbours (both sides of every edge)."""
    graph: dict = {}
    for d, mask in rows.items():
        for v in live.members(mask):
            graph.setdefault(d, set()).add(v)
            graph.setdefault(v, set()).add(d)
    return graph


def allocate(ops: list, spill_slot: Callable[[], int],
             live: Liveness | None = None) -> dict[VReg, Reg]:
    """Map every VReg in ``ops`` to a Reg, spilling (and rewriting ``ops``) as needed.

    ``live``, when given, is the liveness of ``ops`` as they are (it is not
    recomputed for the first round).
    """
    slots: dict[int, set] = {}  # stack offset -> ops at which a value spilled there is live
    for _ in range(200):
        live = Liveness(ops) if live is None else live
        rows, hints = _interference(ops, live)
        order = _first_appearance(ops)
        colour: dict = {}
        bit = live.bit
        # per colour, its registers as a bit set (a physical register is its own colour)
        # and the union of their interference rows
        owned = {r: bit.get(r, 0) for r in (*ORDER, Reg.R10)}
        owned_rows = {r: rows.get(r, 0) for r in owned}

        def taken_by(v, owned: dict = owned, owned_rows: dict = owned_rows, rows: dict = rows,
                     bit: dict = bit) -> set:
            """The colours of the registers ``v`` interferes with (this round's)."""
            row, b = rows.get(v, 0), bit[v]
            return {r for r, m in owned.items() if m & row or owned_rows[r] & b}

        failed = []
        for v in order:
            taken = taken_by(v)
            choice = None
            for h in hints.get(v, ()):
                h = colour.get(h, h)
                if isinstance(h, Reg) and h not in taken and h != Reg.R10:
                    choice = h
                    break
            if choice is None:  # a register the move partner can take too, so the move goes
                mine, b = rows.get(v, 0), bit[v]
                for h in hints.get(v, ()):
                    if (isinstance(h, VReg) and h not in colour and not mine & bit[h]
                            and not rows.get(h, 0) & b):
                        theirs = taken_by(h)
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
                owned[choice] |= bit[v]
                owned_rows[choice] |= rows.get(v, 0)
        if not failed:
            return colour
        live_out = live.sets()
        graph = _neighbours(rows, live)
        costs, held_at = _regions(ops, bit)
        victims: dict = {}
        for v in failed:  # one spill per failed value, all in this round
            choice = _spill_choice(v, graph, live, held_at, victims, costs)
            if choice is not None:
                victims[choice[0]] = choice[1]
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
            next_id = _spill(ops, victim, slot, next_id, victims[victim])
        live = None
    raise AsmError("register allocation did not converge (too many values live at once)")


def _spill_choice(failed: VReg, graph: dict, live: Liveness, held_at: list, chosen,
                  costs: dict) -> tuple[VReg, bool] | None:
    """The value to move to the stack so that ``failed`` finds a register.

    Among ``failed`` and the values it interferes with, the one freeing the
    most points where ``failed`` is live per load or store its spill adds
    (Chaitin's cost, with what a spill really frees and costs: ``_regions``;
    a temporary used next to its definition frees nothing and is never
    chosen), never a spill temporary (spilling that again would only make
    another one). When no spill frees anything there (straight-line code
    crowded with values), the one live longest per access, spilled at every
    access (the second item: True).
    """
    candidates = [v for v in (failed, *sorted(graph.get(failed, ()), key=_key))
                  if isinstance(v, VReg) and not v.name.endswith(".spill")]
    if any(v in chosen for v in candidates):
        return None  # a spill this round already makes room here
    bit, mine = live.bit, live.bit[failed]
    mask = 0
    for v in candidates:
        mask |= bit[v]
    freed: dict = {}
    for out, held in zip(live.out, held_at, strict=True):
        if out & mine:
            free = out & mask & ~held
            while free:
                low = free & -free
                freed[low] = freed.get(low, 0) + 1
                free ^= low
    useful = [v for v in candidates if freed.get(bit[v])]
    if useful:
        return min(useful, key=lambda v: (-freed[bit[v]] / (1 + costs.get(v, 0)), v.id)), False
    if not candidates:
        return None
    # no call or label between the values that crowd here: one loaded at each use
    # and stored at each definition (it holds a register only there)
    span = {v: sum(1 for out in live.out if out & bit[v]) for v in candidates}
    return max(candidates, key=lambda v: (span[v] / (1 + costs.get(v, 0)), -v.id)), True


def _regions(ops: list, bit: dict) -> tuple[dict, list]:
    """What spilling each virtual register costs, and where it would still hold a register.

    ``_spill`` keeps a spilled value in a register from a definition or load to
    the end of its *region* (the next label, jump, exit or call): uses there
    read that register, and one store at the region's end serves all the
    definitions in it. So spilling costs a load per region that uses the value
    before defining it and a store per region that defines it (an op inside a
    loop, between a back edge's target and source, counts 8 times), and frees
    its register only where it is live outside such regions. Returns the costs
    and, per op, the bit set of the values a region holds after it.
    """
    weight = [1] * len(ops)
    labels = {op.name: i for i, op in enumerate(ops) if type(op) is Mark}
    for i, op in enumerate(ops):
        target = op.fields.get("target") if type(op) is Op else None
        if target is not None and labels.get(target, i + 1) <= i:
            for j in range(labels[target], i + 1):
                weight[j] = 8
    cost: dict = {}
    held = 0  # bit set of the values in a register since a use or definition in this region
    dirty = 0  # of those, the ones defined in this region (a store is due at its end)
    held_at = [0] * len(ops)
    for i, op in enumerate(ops):
        if type(op) is Mark:
            held = dirty = 0
            continue
        w = weight[i]
        for v in op.uses:
            if type(v) is VReg and not held & bit[v]:
                cost[v] = cost.get(v, 0) + w
                held |= bit[v]
        for v in op.defs:
            if type(v) is VReg:
                b = bit[v]
                if not dirty & b:
                    cost[v] = cost.get(v, 0) + w
                held |= b
                dirty |= b
        if op.clobbers or op.cls in _ENDS_REGION:
            held = dirty = 0
        held_at[i] = held
    return cost, held_at


def _key(v) -> int:
    return v.id if isinstance(v, VReg) else -1 - int(v)


def _first_appearance(ops: list) -> list[VReg]:
    seen: dict = {}
    for op in ops:
        for v in (*op.defs, *op.uses):
            if isinstance(v, VReg) and v not in seen:
                seen[v] = None
    return list(seen)


def _spill(ops: list, v: VReg, offset: int, next_id: int, everywhere: bool = False) -> int:
    """Rewrite ``ops`` so that ``v`` lives in the stack slot at r10 + offset.

    Within a region (``_regions``: up to the next label, jump, exit or call) a
    use reads the register of the last definition or load of ``v`` (``ctx`` at
    entry is read from r1 until the first call), and the definitions store
    once, before the region ends. ``everywhere``: each op is a region of its own.
    """
    out: list = []
    held = None  # the temporary holding v in this region
    dirty = None  # the op storing it, due before the region ends
    for op in ops:
        ends = type(op) is Mark or bool(op.clobbers) or op.cls in _ENDS_REGION
        uses = type(op) is Op and v in op.uses
        defs = type(op) is Op and v in op.defs
        if dirty is not None and (ends or defs):
            if not defs:  # else v changes first: only its new value needs the slot
                out.append(dirty)
            dirty = None
        if not uses and not defs:
            out.append(op)
            if ends:
                held = None
            continue
        if uses and held is not None:
            t = held
        else:
            t = VReg(next_id, f"{v.name or 'v'}.spill")
            next_id += 1
            if uses:
                out.append(Op(Load, {"dst": t, "src": Reg.R10, "off": offset, "size": Size.DW},
                              op.source))
        op.replace({v: t})
        out.append(op)
        held = t
        if defs:
            dirty = Op(Store, {"dst": Reg.R10, "src": t, "off": offset, "size": Size.DW},
                       op.source)
        if everywhere and not ends:
            if dirty is not None:
                out.append(dirty)
                dirty = None
            held = None
        if ends:
            if dirty is not None:
                raise AsmError(f"cannot spill {v!r}: {op.cls.__name__} defines it and ends "
                               "a region")
            held = None
    if dirty is not None:
        out.append(dirty)
    ops[:] = out
    return next_id


# instructions after which a spilled value is loaded again (the paths part, or r0-r5 die)
_ENDS_REGION = frozenset((Jump, Goto, GotoLong, Exit, MayGoto, Call, CallLocal, CallKfunc, CallX))
