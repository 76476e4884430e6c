"""Register allocation: virtual registers onto r0-r9 by graph colouring.

1. Liveness over the control-flow graph of the op list (jumps, labels, exits),
   in bit sets: each register, virtual or physical, is one bit of a Python
   int, so a set of registers is an int (union ``|``, removal ``& ~``).
2. Interference: a register written (or clobbered by a call) at a point
   interferes with everything live after that point; a move's source and
   destination do not interfere, so they may share a register. Kept as one
   row (a bit set) per written register: one side of each edge, which the
   colouring reads from both sides.
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
from pybpf.dsl.ir import Mark, Op, VReg
from pybpf.errors import AsmError

ORDER = (Reg.R0, Reg.R1, Reg.R2, Reg.R3, Reg.R4, Reg.R5, Reg.R6, Reg.R7, Reg.R8, Reg.R9)
_PHYSICAL = (*ORDER, Reg.R10)
_PHYSICAL_BIT = {r: 1 << r for r in _PHYSICAL}
_PHYSICAL_BITS = (1 << len(_PHYSICAL)) - 1  # bits 0-10: r0-r10
_COLOURS = range(len(ORDER))
_R10 = Reg.R10

# how an instruction class leaves the straight line (cfg.py's table, with the
# conditional jump that strong liveness may drop told apart from may_goto)
_COND, _MAY, _GOTO, _EXIT = range(4)
_FLOW = {Jump: _COND, MayGoto: _MAY, Goto: _GOTO, GotoLong: _GOTO, Exit: _EXIT}


class Liveness:
    """Registers live after each op, as bit sets (Python ints).

    Every register the ops name has one bit: r0-r10 bits 0-10 (a physical
    register's bit is ``1 << r``), virtual registers the next ones as the
    analysis meets them. ``bit`` maps a register to its one-bit int, ``regs``
    a bit position to its register; per op ``i``, ``use[i]`` and ``kill[i]``
    are the registers it reads and writes, and ``out[i]`` those live after it.

    Solved by one backward walk that reads the flow from the ops: an op needs
    one ``&~`` and one ``|``, a label records its live set in ``out``, and a
    jump joins in the set of its target's label, met already when the jump
    goes forward. A jump back to a label not met yet (a loop) joins in what
    the walk before found there (nothing, the first time), so the walk repeats
    until no such label's set changes.

    With ``pure``, a side-effect-free op whose results are all dead reads
    nothing either ("strong" liveness): chains of dead arithmetic, even a
    counter that only feeds itself, come out dead in one analysis. So does a
    conditional jump with only dead ops and labels before its target (both of
    its edges lead to the same place), and what only it read follows.
    ``dead`` lists those ops, last first.
    """

    __slots__ = ("bit", "regs", "use", "kill", "out", "dead")

    def __init__(self, ops: list, pure: tuple | None = None):
        n = len(ops)
        self.bit = dict(_PHYSICAL_BIT)
        self.use, self.kill, self.out = [0] * n, [0] * n, [0] * n
        labels: dict = {}  # label -> its index, once a walk has passed it
        loops: set = set()  # labels some jump reaches backwards
        first = True
        while self._walk(ops, pure, labels, loops, first):
            first = False
        self.regs = list(self.bit)

    def _walk(self, ops: list, pure: tuple | None, labels: dict, loops: set, first: bool) -> bool:
        """One backward walk (the first computes ``use`` and ``kill``); True when a
        label that a loop jumps to has changed, so the next walk may find more.
        """
        bit, use, kill, out = self.bit, self.use, self.kill, self.out
        live, dead, changed = 0, [], False
        kept = len(ops)  # the first op after this one that stays (not dead, not a label)
        for i in range(len(ops) - 1, -1, -1):
            op = ops[i]
            if type(op) is Mark:
                if loops and op.name in loops and out[i] != live:
                    changed = True
                labels[op.name] = i
                out[i] = live
                continue
            if first:
                u = k = 0
                for r in op.uses:
                    b = bit.get(r)
                    if b is None:
                        b = bit[r] = 1 << len(bit)
                    u |= b
                if op.defs:  # an eBPF instruction writes one register at most
                    r = op.defs[0]
                    k = bit.get(r)
                    if k is None:
                        k = bit[r] = 1 << len(bit)
                use[i], kill[i] = u, k
            else:
                u, k = use[i], kill[i]
            cls = op.cls
            kind = _FLOW.get(cls)
            if kind is None:
                if (pure is not None and k and not live & k and not k & _PHYSICAL_BITS
                        and cls in pure):
                    dead.append(i)
                    continue
                o = live
            elif kind == _EXIT:
                o = 0
            else:
                name = op.fields["target"]
                t = labels.get(name)
                if t is None or t < i:  # a loop: what the walk before found there
                    loops.add(name)
                    landing = 0 if t is None else out[t]
                elif kind == _COND and pure is not None and t < kept:
                    # nothing stays before the target: both edges go the same way
                    dead.append(i)
                    continue
                else:
                    landing = out[t]
                o = landing if kind == _GOTO else live | landing
            out[i] = o
            live = o & ~k | u
            kept = i
        self.dead = dead
        return changed

    def without_dead(self, ops: list) -> tuple[list, Liveness]:
        """``ops`` without the dead ones, and their liveness."""
        copy = object.__new__(Liveness)
        copy.bit, copy.regs, copy.dead = self.bit, self.regs, []
        copy.use, copy.kill, copy.out = (_drop(self.use, self.dead), _drop(self.kill, self.dead),
                                         _drop(self.out, self.dead))
        return _drop(ops, self.dead), copy

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


def _drop(items: list, dead: list) -> list:
    """``items`` without the positions in ``dead`` (last first)."""
    kept, start = [], 0
    for i in reversed(dead):
        kept += items[start:i]
        start = i + 1
    kept += items[start:]
    return kept


def _graph(ops: list, live: Liveness) -> tuple[dict, dict, list]:
    """What the colouring needs, from one walk over the ops: interference rows
    (bit sets keyed by the written register's bit), move hints, and the virtual
    registers in order of first appearance (an op's definitions first).

    ``rows[b]`` holds what is live where the register of bit ``b`` is written
    (or clobbered): one side of each edge only. Two registers interfere when
    either is in the other's row; the colouring asks exactly that, so the rows
    are never expanded into neighbour sets, which would cost one update per
    live register per definition.
    """
    bit, regs = live.bit, live.regs
    rows: dict = {}
    hints: dict = {}
    order = []
    unseen = (1 << len(regs)) - 1 & ~_PHYSICAL_BITS  # the virtual registers not met yet
    for op, out, u, written in zip(ops, live.out, live.use, live.kill, strict=True):
        new = (u | written) & unseen
        if new:
            unseen ^= new
            if new & (new - 1):
                for v in (*op.defs, *op.uses):
                    b = bit[v]
                    if new & b:
                        order.append(v)
                        new ^= b
            else:
                order.append(regs[new.bit_length() - 1])
        if written:  # one register: an eBPF instruction writes dst, or r0, or nothing
            if op.is_move:  # its source is all it reads
                src, dst = op.fields["src"], op.fields["dst"]
                hints.setdefault(dst, []).append(src)
                hints.setdefault(src, []).append(dst)
                mask = out & ~(written | u)
            else:
                mask = out & ~written
            if mask:
                rows[written] = rows.get(written, 0) | mask
        if op.clobbers:
            for r in op.clobbers:
                b = 1 << r
                mask = out & ~b
                if mask:
                    rows[b] = rows.get(b, 0) | mask
    return rows, hints, order


def allocate(ops: list, spill_slot: Callable[[], int],
             live: Liveness | None = None) -> dict[VReg, Reg]:
    """Map every VReg in ``ops`` to a Reg, spilling (and rewriting ``ops``) as needed.

    ``live``, when given, is the liveness of ``ops`` as they are (it is not
    recomputed for the first round).
    """
    slots: dict[int, set] = {}  # stack offset -> ops at which a value spilled there is live
    for _ in range(200):
        live = Liveness(ops) if live is None else live
        rows, hints, order = _graph(ops, live)
        colour, failed = _colour(order, live.bit, rows, hints)
        if not failed:
            return colour
        costs, held_at = _regions(ops, live)
        victims: dict = {}
        for v in failed:  # one spill per failed value, all in this round
            choice = _spill_choice(v, rows, live, held_at, victims, costs)
            if choice is not None:
                victims[choice[0]] = choice[1]
        if not victims:
            break
        next_id = 1 + max((v.id for v in live.regs[len(_PHYSICAL):]), default=0)
        where = {}  # victim -> the ops at which it is live or set
        for victim in victims:
            b = live.bit[victim]
            where[victim] = {id(op) for op, out, k in zip(ops, live.out, live.kill, strict=True)
                             if (out | k) & b}
        for victim, points in where.items():
            slot = next((s for s in slots if not slots[s] & points), None)
            if slot is None:
                slot = spill_slot()
                slots[slot] = set()
            slots[slot] |= points  # values never live together share a slot
            next_id = _spill(ops, victim, slot, next_id, victims[victim])
        live = None
    raise AsmError("register allocation did not converge (too many values live at once)")


def _colour(order: list, bit: dict, rows: dict, hints: dict) -> tuple[dict, list]:
    """Registers for the values in ``order`` (first come, first served), and those left out.

    Per colour (r0-r9, by number), ``owned`` is the bit set of the registers
    given it (a physical register is its own colour) and ``owned_rows`` the
    union of their interference rows: ``v`` (bit ``b``, row ``row``) may take
    colour ``c`` unless ``owned[c] & row`` or ``owned_rows[c] & b``.
    """
    owned = [1 << c for c in _COLOURS]
    owned_rows = [rows.get(1 << c, 0) for c in _COLOURS]

    def first_free(row: int, b: int) -> int | None:
        for c in _COLOURS:
            if not (owned[c] & row or owned_rows[c] & b):
                return c
        return None

    colour: dict = {}
    failed = []
    for v in order:
        b = bit[v]
        row = rows.get(b, 0)
        choice = None
        partners = hints.get(v, ())
        for h in partners:  # the register of a move partner
            h = colour.get(h, h)
            if type(h) is not VReg and h is not _R10 and not (owned[h] & row or owned_rows[h] & b):
                choice = h
                break
        else:  # a register the move partner can take too, so the move goes
            for h in partners:
                if type(h) is VReg and h not in colour:
                    hb = bit[h]
                    theirs = rows.get(hb, 0)
                    if not row & hb and not theirs & b:
                        choice = first_free(row | theirs, b | hb)
                        if choice is not None:
                            break
            if choice is None:
                choice = first_free(row, b)
        if choice is None:
            failed.append(v)
        else:
            colour[v] = ORDER[choice]
            owned[choice] |= b
            owned_rows[choice] |= row
    return colour, failed


def _spill_choice(failed: VReg, rows: dict, live: Liveness, held_at: list, chosen,
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
    bit, mine = live.bit, live.bit[failed]
    near = rows.get(mine, 0)  # its neighbours: its row, and the rows it is in
    for b, row in rows.items():
        if row & mine:
            near |= b
    candidates = [v for v in (failed, *sorted(live.members(near), key=_key))
                  if type(v) is VReg and not v.name.endswith(".spill")]
    if any(v in chosen for v in candidates):
        return None  # a spill this round already makes room here
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
        return min(useful, key=lambda v: (-freed[bit[v]] / (1 + costs.get(bit[v], 0)),
                                          v.id)), False
    if not candidates:
        return None
    # no call or label between the values that crowd here: one loaded at each use
    # and stored at each definition (it holds a register only there)
    span = {v: sum(1 for out in live.out if out & bit[v]) for v in candidates}
    return max(candidates, key=lambda v: (span[v] / (1 + costs.get(bit[v], 0)), -v.id)), True


def _regions(ops: list, live: Liveness) -> tuple[dict, list]:
    """What spilling each virtual register costs, and where it would still hold a register.

    ``_spill`` keeps a spilled value in a register from a definition or load to
    the end of its *region* (the next label, jump, exit or call): uses there
    read that register, and one store at the region's end serves all the
    definitions in it. So spilling costs a load per region that uses the value
    before defining it and a store per region that defines it (an op inside a
    loop, between a back edge's target and source, counts 8 times), and frees
    its register only where it is live outside such regions. Returns the costs
    (keyed by the register's bit) and, per op, the bit set of the values a
    region holds after it.
    """
    weight = [1] * len(ops)
    labels: dict = {}  # the labels before this op
    for i, op in enumerate(ops):
        if type(op) is Mark:
            labels[op.name] = i
        else:
            start = labels.get(op.fields.get("target"))
            if start is not None:  # a back edge: a loop from start to here
                weight[start:i + 1] = [8] * (i + 1 - start)
    cost: dict = {}
    # bit sets of the values in a register since a use or definition in this region, and
    # of those defined in it (a store is due at its end); physical registers count as
    # both, as they are never spilled
    held = dirty = _PHYSICAL_BITS
    held_at = [0] * len(ops)
    for i, (op, u, k) in enumerate(zip(ops, live.use, live.kill, strict=True)):
        if type(op) is Mark:
            held = dirty = _PHYSICAL_BITS
            continue
        load, store = u & ~held, k & ~dirty
        held |= u | k
        dirty |= k
        if load or store:
            w = weight[i]
            for due in (load, store):
                while due:
                    low = due & -due
                    cost[low] = cost.get(low, 0) + w
                    due ^= low
        if op.clobbers or op.cls in _ENDS_REGION:
            held = dirty = _PHYSICAL_BITS
        held_at[i] = held
    return cost, held_at


def _key(v) -> int:
    return v.id if isinstance(v, VReg) else -1 - int(v)


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
