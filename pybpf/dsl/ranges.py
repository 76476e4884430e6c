"""Facts about values that decide checks: packet bounds checks implied by earlier
ones go, and unsigned value ranges propagated over the control-flow graph drop
conditional jumps they decide and masks that change nothing.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter, namedtuple

from pybpf.asm import (
    Alu,
    Arith,
    Endian,
    Goto,
    Jump,
    JumpOp,
    Load,
    LoadImm64,
    Size,
)
from pybpf.dsl.cfg import COND, EXIT, FLOW, GOTO, Cfg
from pybpf.dsl.ir import Mark, Op, VReg, is_imm
from pybpf.dsl.jumps import drop_unreachable
from pybpf.dsl.regalloc import Liveness


def drop_implied_checks(ops: list, cfg: Cfg | None = None) -> list:
    """A packet bounds check implied by an earlier one on every path goes.

    The DSL's check is ``t = base; t += K; if t > end goto short``. Past it
    (on the fall-through edge), ``base + K <= end`` holds until ``base`` or
    ``end`` is written again; a later check of ``base + K2`` with ``K2 <= K``
    cannot fail, so it is removed (its ``t`` then dies and goes too).
    """
    cfg = Cfg(ops) if cfg is None else cfg
    checks = {}
    for _, i in cfg.spans:  # (a conditional jump ends its block)
        op = ops[i]
        if type(op) is Op and op.cls is Jump and op.fields["op"] is _JGT and i >= 2:
            key = _check_key(ops, i)
            if key is not None:
                checks[i] = key
    # A check is implied only by another check of the same base and end: the others
    # need no facts, and when no two checks share them there is nothing to look for.
    pairs = Counter([key[:2] for key in checks.values()])
    checks = {i: key for i, key in checks.items() if pairs[key[:2]] > 1}
    if not checks:
        return ops
    spans, bsucc = cfg.spans, cfg.bsucc
    # per block, the ops that can change a fact: checks (each ends its block), and
    # writes of a checked base or end; without loops, only writes between the first
    # and the last check can come after a check and before another one
    regs = {r for base, end, _ in checks.values() for r in (base, end)}
    writes = range(len(ops)) if cfg.back else range(min(checks) + 1, max(checks))
    starts = [first for first, _ in spans]
    block_of = {}
    steps: list = [[] for _ in spans]
    for i in sorted([*checks, *(i for i in writes if not regs.isdisjoint(ops[i].defs))]):
        block_of[i] = k = bisect_right(starts, i) - 1
        steps[k].append(i)
    state_in: list = [None] * len(spans)  # facts at block entry: {(base, end): K}; None: top

    def visit(k: int) -> list:
        """Facts at the end of block k handed to its successors; those whose entry changed."""
        last = spans[k][1]
        facts = state_in[k]
        if steps[k]:
            facts = _check_facts(ops, steps[k], facts, checks)
        changed = []
        if not facts:  # nothing holds here, so nothing holds at the successors either
            for j in bsucc[k]:
                if state_in[j] is None or state_in[j]:
                    state_in[j] = facts
                    changed.append(j)
            return changed
        check = checks.get(last)
        for j in bsucc[k]:
            edge = facts
            if check is not None and j != k + 1:  # the taken edge of a check
                edge = _without_own_check(facts, check)
            old = state_in[j]
            if old is None:
                new = edge
            elif not old or old is edge:
                continue  # nothing to take away
            else:
                new = {f: min(v, edge[f]) for f, v in old.items() if f in edge}
            if new != old:
                state_in[j] = new
                changed.append(j)
        return changed

    state_in[0] = {}
    if cfg.back:
        cfg.forward(state_in, visit)
    else:  # each block once, in op order; past the last check's block no fact is needed
        for k in range(block_of[max(checks)]):
            if state_in[k] is not None:
                visit(k)
    drop = set()
    for i, (base, end, kk) in checks.items():
        k = block_of[i]
        if state_in[k] is not None:
            facts = _check_facts(ops, steps[k][:-1], state_in[k], checks)  # up to the check
            implied = facts.get((base, end))
            if implied is not None and implied >= kk:
                drop.add(i)
    if not drop:
        return ops
    return [op for i, op in enumerate(ops) if i not in drop]


def _check_facts(ops: list, steps: list, facts: dict, checks: dict) -> dict:
    """Facts after the ops at indices ``steps`` (on the fall-through edge of a check)."""
    for i in steps:
        op = ops[i]
        if op.defs and facts:
            d = op.defs
            if any(f[0] in d or f[1] in d for f in facts):
                facts = {f: v for f, v in facts.items() if f[0] not in d and f[1] not in d}
        c = checks.get(i)
        if c is not None:
            base, end, k = c
            facts = {**facts, (base, end): max(k, facts.get((base, end), k))}
    return facts


def _without_own_check(facts: dict, key: tuple) -> dict:
    """On the taken edge of a check (``key``), its own fact does not hold."""
    base, end, k = key
    return {kk: v for kk, v in facts.items() if kk != (base, end)} if facts.get((base, end)) == k \
        else facts


def _check_key(ops: list, i: int):
    """(base, end, K) if ops[i-2:i+1] is ``t = base; t += K; if t > end goto ...``
    (``ops[i]`` is a ``>`` jump)."""
    j, a, m = ops[i], ops[i - 1], ops[i - 2]
    if not (j.fields["width"] == 64 and isinstance(j.fields["src"], VReg)):
        return None
    t = j.fields["dst"]
    if not (isinstance(a, Op) and a.cls is Alu and a.fields["op"] is _ADD
            and a.fields["dst"] is t and a.fields["width"] == 64 and is_imm(a.fields["src"])):
        return None
    if not (isinstance(m, Op) and m.is_move and m.fields["dst"] is t
            and isinstance(m.fields["src"], VReg)):
        return None
    return (m.fields["src"], j.fields["src"], a.fields["src"])


# -- value ranges ---------------------------------------------------------------------------

_M64 = (1 << 64) - 1
_M32 = (1 << 32) - 1
_TOP = (0, _M64)
_LOADED = {size: (0, (1 << (8 * size.bytes)) - 1) for size in Size}  # what a load of a size gives


def drop_decided_jumps(ops: list, cfg: Cfg | None = None) -> list:
    """Conditional jumps that value ranges decide, and masks that change nothing, go.

    Unsigned intervals of virtual registers are propagated along the paths
    of the code (loads give their width, ``&``/``>>``/``<<``/``+`` with known operands
    stay bounded, jumps narrow their operand on each edge, loops widen to
    "unknown"). A ``if x > 65535 goto short`` on an offset that is provably
    at most 40 + 60 + 8 * 255, say, cannot jump, and the verifier knows it
    too; the DSL emits such checks whenever it cannot see that itself.

    A state maps virtual registers to ``(lo, hi)``; one it lacks is unknown
    (physical registers never have an interval). A register's interval comes
    only from those of the registers its op reads, so a state may leave out
    any register no decision ahead depends on.
    """
    decided = _decide(ops)
    if decided is None:  # the code has loops
        decided = _decide_with_loops(ops, Cfg(ops) if cfg is None else cfg)
    change, thread = decided
    if not change and not thread:
        return ops
    ops = list(ops)
    for i, op in change.items():
        ops[i] = op
    for i, to in thread.items():
        op = ops[i]
        if op is not None:
            ops[i] = Op(op.cls, {**op.fields, "target": to}, op.source)
    out = [op for op in ops if op is not None]
    if thread or any(op is not None for op in change.values()):
        # a jump became a goto or goes elsewhere: what it jumped over may be unreachable now
        return drop_unreachable(out)
    return out


def _decide(ops: list) -> tuple[dict, dict] | None:
    """What ranges decide in code without loops: op index -> None (drop) or the Goto
    replacing it, and op index of a jump or goto -> the label it goes to instead;
    None if the code has loops.

    ``_plan`` lists what to do in op order; one walk over that list carries the
    state along the straight line and hands a jump's state to its label (met
    later: jumps go forward), where the states arriving join. Only the steps on
    the way to a decision are walked, from a state holding only the registers
    decisions ahead read. A jump or goto to labels and one decidable jump goes
    straight where that jump goes if its state decides it (``else if`` after a
    failed lookup inside the first branch: the second test is known false there).
    """
    plan = _plan(ops)
    if plan is None:
        return None
    events, masks, jumps, tests, led, reads = plan
    change: dict = {}
    thread: dict = {}
    pending: dict = {}  # label -> the join of the states of the jumps to it met so far
    state: dict | None = {}  # None: no path reaches this point
    for what, x, y in events:
        if what is _WALK:  # x: the steps, y: the registers read ahead
            if state is not None:
                state = _walk(x, {r: v for r, v in state.items() if r in y}, masks, change)
        elif what is _LABEL:  # x: its name, y: the registers read ahead
            arriving = pending.pop(x, None)
            if arriving is not None:
                state = arriving if state is None else _join(state, arriving)
            if state and not y:  # nothing ahead reads what it knows
                state = {}
        elif state is not None:  # a branch: x its index, y its target
            if what is EXIT:
                state = None
                continue
            if x in jumps:
                fails, edge = _decide_jump(ops[x], x, state, change, *jumps[x])
            else:
                fails = edge = state
            old = pending.get(y)
            if old is None:  # nothing known is handed to a label where nothing is read
                pending[y] = edge if reads[y] else {}
            else:
                pending[y] = _join(old, edge)
            if y in tests and _threads(ops, x, led):
                to = _threaded(ops, tests[y], edge)
                if to is not None:
                    thread[x] = to
            state = fails if what is COND else None
    return change, thread


def _join(a: dict, b: dict) -> dict:
    """The state where paths in states ``a`` and ``b`` meet (an empty state, nothing
    known, stays so)."""
    return a if not a or a is b else _hull(a, b)


def _threads(ops: list, i: int, led: set) -> bool:
    """Whether the branch ``ops[i]`` ends a basic block, so may be threaded: a
    jump with a fall-through, or a goto (one to the label right after it only if
    that label starts a block)."""
    op = ops[i]
    if op.cls is Jump:
        return i + 1 < len(ops)
    if op.cls is not Goto:
        return False
    target = op.fields["target"]
    nxt = ops[i + 1] if i + 1 < len(ops) else None
    return target in led or not (type(nxt) is Mark and nxt.name == target)


def _decide_with_loops(ops: list, cfg: Cfg) -> tuple[dict, dict]:
    """What ranges decide in code with loops (as ``_decide``, without threading).

    Blocks are visited until no entry state changes (``Cfg.forward``), walking
    all their ops and keeping the registers still live; an entry state that
    keeps growing gives up on what grows. Only then, with the states final,
    a last walk of each block records what they decide.
    """
    spans, bsucc = cfg.spans, cfg.bsucc
    masks, jumps = _decisions(ops)
    walks = [[(i, op.defs[0], _transfer(op)) for i, op in enumerate(ops[first:last + 1], first)
              if op.defs and type(op.defs[0]) is VReg] for first, last in spans]
    live = Liveness(ops)
    bit, live_out = live.bit, live.out
    nb = len(spans)
    state_in: list = [None] * nb
    visits = [0] * nb

    def visit(k: int) -> list:
        """Walk block k from its entry state; the successors whose entry state changed."""
        last = spans[k][1]
        state = _walk(walks[k], dict(state_in[k]), masks, None)
        state = {r: v for r, v in state.items() if bit[r] & live_out[last]}
        edges = (state,) * len(bsucc[k])
        if last in jumps and len(edges) == 2:  # (fall-through, target)
            edges = _decide_jump(ops[last], last, state, None)
        changed = []
        for j, edge in zip(bsucc[k], edges, strict=True):
            old = state_in[j]
            if old is None:
                new = edge
            else:
                new = _hull(old, edge)
                if new != old:
                    visits[j] += 1
                    if visits[j] > 8:  # a loop keeps growing it: give up on what grows
                        new = {r: v for r, v in new.items() if old.get(r) == v}
            if new != old:
                state_in[j] = new
                changed.append(j)
        return changed

    if nb:
        state_in[0] = {}
    cfg.forward(state_in, visit)
    change: dict = {}
    for k, (_, last) in enumerate(spans):
        if state_in[k] is not None:
            state = _walk(walks[k], dict(state_in[k]), masks, change)
            if last in jumps:
                _decide_jump(ops[last], last, state, change)
    return change, {}


def _transfer(op: Op):
    """How a step computes the interval of the register ``op`` writes: a constant
    interval, a virtual register it copies, the ALU op to compute (``_alu_value``),
    or None: unknown."""
    cls, f = op.cls, op.fields
    if cls is Alu:
        aop = f["op"]
        if aop is _MOV and f["width"] == 64:
            src = f["src"]
            return src if type(src) is VReg else (src & _M64,) * 2 if is_imm(src) else None
        return op if aop in _BOUNDED else None
    if cls is Load:
        iv = _LOADED[f["size"]]
    elif cls is Endian:
        iv = (0, (1 << f["bits"]) - 1)
    elif cls is LoadImm64:
        iv = (f["imm"] & _M64,) * 2
    else:
        return None
    return None if iv == _TOP else iv


def _walk(steps: list, state: dict, masks: set, change: dict | None) -> dict:
    """Apply ``steps``, (op index, register written, ``_transfer``) each, to ``state``
    (in place, and returned); into ``change`` (unless None) the masks among them
    that change nothing. A register whose interval is unknown leaves the state."""
    for i, dst, how in steps:
        kind = type(how)
        if kind is tuple:
            state[dst] = how
            continue
        if kind is VReg:
            iv = state.get(how)
        elif how is None:
            iv = None
        else:
            if change is not None and i in masks and \
                    state.get(dst, _TOP)[1] <= how.fields["src"]:
                change[i] = None  # x &= mask with x <= mask changes nothing
            iv = _alu_value(how, state)
            if iv == _TOP:
                iv = None
        if iv is None:
            state.pop(dst, None)
        else:
            state[dst] = iv
    return state


def _decide_jump(jump: Op, i: int, state: dict, change: dict | None, fall: bool = True,
                 taken: bool = True) -> tuple[dict, dict]:
    """The states where the decidable ``jump`` (``ops[i]``) falls through and where
    it jumps, from ``state`` (its register narrowed on the edges where it is read,
    ``fall`` and ``taken``); and into ``change`` (unless None) what the state
    decides of it: a jump that never jumps goes, one that always does becomes a
    goto (the code it jumps over is unreachable, and goes)."""
    jumped, fails, holds = _branch(jump, state, fall, taken)
    if change is not None and jumped is not None:
        change[i] = Op(Goto, {"target": jump.fields["target"]}, jump.source) if jumped else None
    return fails, holds


def _threaded(ops: list, i: int, state: dict) -> str | None:
    """Where the decidable jump ``ops[i]`` leads from ``state``: its target when it
    always jumps, the label after it when it never does, None when undecided."""
    op = ops[i]
    jumps = _branch(op, state, False, False)[0]
    if jumps:
        return op.fields["target"]
    if jumps is False and i + 1 < len(ops) and type(ops[i + 1]) is Mark:
        return ops[i + 1].name
    return None


class _Plan(namedtuple("_Plan", "events masks jumps tests led reads")):
    """What ``_decide`` needs of code without loops.

    ``events``, in op order: (_WALK, steps as ``_walk`` takes them, registers read
    ahead), (_LABEL, name, registers read ahead), and a branch as (COND or GOTO, op
    index, target label) or (EXIT, op index, None). ``masks``: the decisions, masks
    and jumps (op indices). ``jumps``: op index -> whether its register is read
    ahead where it falls through, where it jumps. ``tests``: the labels right before
    a decidable jump, label -> its index. ``led``: the labels that start a basic
    block for a branch going there (all but those only a goto right before them
    names). ``reads``: label -> the registers decisions ahead read there.
    A namedtuple: typing.NamedTuple would import typing at every start-up.
    """

    __slots__ = ()


_WALK, _LABEL = "walk", "label"  # the events that are no branch (a branch's: COND, GOTO, EXIT)


def _plan(ops: list) -> _Plan | None:
    """For code without loops, the steps a decision depends on and what else
    ``_decide`` meets, in op order; None if some jump goes back (a loop).

    Every jump goes forward in op order, so one backward walk over the ops finds
    them, meeting a jump's label before the jump: an op is on the way to a
    decision when it writes a register a later decision reads, directly or
    through other such ops: liveness with only those reads (an ALU operation's
    result comes from its operands, a load's or a byte swap's from its width
    alone). The other ops cannot change a decision, so the walk passes over them.
    """
    events: list = []
    masks: set = set()
    jumps: dict = {}
    reads: dict = {}
    tests: dict = {}
    led: set = set()
    test = None  # the decidable jump that the labels met now come right before
    # the live set is shared (with a label, a successor) until the walk changes it
    live, owned = _NO_REGS, False
    steps: list = []  # those met since the last label or branch, last first
    for i in range(len(ops) - 1, -1, -1):
        op = ops[i]
        defs = op.defs
        if defs:  # (labels and branches write no register)
            test = None
            dst = defs[0]  # (an op writes one register at most)
            if op.cls is Alu and op.fields["op"] is _AND and _is_decision(op):
                masks.add(i)
            elif dst not in live:
                continue
            if not owned:
                live, owned = set(live), True
            live.discard(dst)
            how = _transfer(op)
            if type(how) is Op:  # a result computed from its operands
                live.update([r for r in op.uses if type(r) is VReg])
            elif type(how) is VReg:
                live.add(how)
            steps.append((i, dst, how))
            continue
        if type(op) is Mark:
            if steps:
                steps.reverse()
                events.append((_WALK, steps, live))
                steps = []
            name = op.name
            reads[name], owned = live, False
            if test is not None:
                tests[name] = test
            events.append((_LABEL, name, live))
            continue
        test = None
        kind = FLOW.get(op.cls)
        if kind is None:
            continue
        if steps:
            steps.reverse()
            events.append((_WALK, steps, live))
            steps = []
        if kind == EXIT:
            live, owned = _NO_REGS, False
            events.append((EXIT, i, None))
            continue
        target = op.fields["target"]
        there = reads.get(target)
        if there is None:  # not met yet: the label comes before the jump
            return None
        if kind == GOTO:
            live, owned = there, False
            nxt = ops[i + 1] if i + 1 < len(ops) else None
            if not (type(nxt) is Mark and nxt.name == target):
                led.add(target)
        else:
            led.add(target)
            if op.cls is Jump and _is_decision(op):
                dst = op.fields["dst"]
                jumps[i] = (dst in live, dst in there)
                live, owned = {*live, *there, dst}, True
                test = i
            else:
                live, owned = {*live, *there}, True
        events.append((kind, i, target))
    if steps:
        steps.reverse()
        events.append((_WALK, steps, live))
    events.reverse()
    return _Plan(events, masks, jumps, tests, led, reads)


def _decisions(ops: list) -> tuple[set[int], set[int]]:
    """The ops a range may decide: the masks and the jumps (op indices)."""
    decisions = [(i, op.cls) for i, op in enumerate(ops) if type(op) is Op and _is_decision(op)]
    return {i for i, cls in decisions if cls is Alu}, {i for i, cls in decisions if cls is Jump}


def _is_decision(op: Op) -> bool:
    """What a range may decide: an unsigned jump comparing a virtual register with a
    constant, or ``x &= 2**n - 1`` on one."""
    cls, f = op.cls, op.fields
    if cls is Jump:
        return f["op"] in _UNSIGNED_JUMPS and type(f["dst"]) is VReg and is_imm(f["src"])
    if cls is Alu and f["op"] is _AND and type(f["dst"]) is VReg:
        k = f["src"]
        return is_imm(k) and k >= 0 and (k + 1) & k == 0
    return False


_UNSIGNED_JUMPS = frozenset((JumpOp.JEQ, JumpOp.JNE, JumpOp.JGT, JumpOp.JGE, JumpOp.JLT, JumpOp.JLE))
_NO_REGS: frozenset = frozenset()  # the empty live set, shared (never changed in place)


def _branch(op: Op, state: dict, fall: bool = True,
            taken: bool = True) -> tuple[bool | None, dict, dict]:
    """Whether the decidable jump ``op`` jumps from ``state`` (always: True, never:
    False, it depends: None), and the states where it falls through and where it
    jumps (its register narrowed only on the edges where it is read: ``fall``,
    ``taken``)."""
    f = op.fields
    r = f["dst"]
    iv = state.get(r, _TOP)
    if f["width"] == 64:
        k = f["src"] & _M64
    elif iv[1] > _M32:
        return None, state, state
    else:
        k = f["src"] & _M32
    fails, holds = _SPLIT[f["op"]](*iv, k)
    jumped = True if fails[0] > fails[1] else False if holds[0] > holds[1] else None
    return (jumped, _with(state, r, iv, fails) if fall else state,
            _with(state, r, iv, holds) if taken else state)


# the part of [lo, hi] where ``x op k`` fails, and the part where it holds; an
# empty one (lo > hi) says the jump is decided
_SPLIT = {
    JumpOp.JGT: lambda lo, hi, k: ((lo, min(hi, k)), (max(lo, k + 1), hi)),
    JumpOp.JGE: lambda lo, hi, k: ((lo, min(hi, k - 1)), (max(lo, k), hi)),
    JumpOp.JLT: lambda lo, hi, k: ((max(lo, k), hi), (lo, min(hi, k - 1))),
    JumpOp.JLE: lambda lo, hi, k: ((max(lo, k + 1), hi), (lo, min(hi, k))),
    JumpOp.JEQ: lambda lo, hi, k: (_EMPTY if lo == hi == k else (lo, hi), (max(lo, k), min(hi, k))),
    JumpOp.JNE: lambda lo, hi, k: ((max(lo, k), min(hi, k)), _EMPTY if lo == hi == k else (lo, hi)),
}
_EMPTY = (1, 0)


def _with(state: dict, r: VReg, iv: tuple[int, int], new: tuple[int, int]) -> dict:
    """``state`` where ``r``, now in ``iv``, is in ``new``."""
    if new[0] > new[1]:  # this edge cannot be taken: keep the state (it changes nothing downstream)
        return state
    if new == iv and r in state:  # the jump tells nothing new on this edge
        return state
    return {**state, r: new}


# enum members read once (each ``JumpOp.X`` is a class attribute lookup through the enum type)
_JGT = JumpOp.JGT
_MOV, _ADD, _SUB, _MUL, _AND = Arith.MOV, Arith.ADD, Arith.SUB, Arith.MUL, Arith.AND
_OR, _XOR, _LSH, _RSH, _DIV, _MOD = Arith.OR, Arith.XOR, Arith.LSH, Arith.RSH, Arith.DIV, Arith.MOD
# the ALU operators whose result ``_alu_value`` bounds from its operands (others: unknown)
_BOUNDED = frozenset((_MOV, _ADD, _SUB, _MUL, _AND, _OR, _XOR, _LSH, _RSH, _DIV, _MOD))


def _hull(a: dict, b: dict) -> dict:
    """The registers known in both states, each in an interval covering both (most
    often the same interval: the states come from one before the paths split)."""
    return {k: v if v is w else (min(v[0], w[0]), max(v[1], w[1]))
            for k, v in a.items() if (w := b.get(k)) is not None}


def _alu_value(op: Op, state: dict) -> tuple[int, int] | None:
    """The interval of what the ALU ``op`` writes to its virtual register (all values
    of the op's width when unknown).

    An operand's interval is as the op sees it: a 32-bit op reads the low half,
    unknown unless the whole interval fits in it.
    """
    f = op.fields
    w = f["width"]
    mask = _M64 if w == 64 else _M32
    top = (0, mask)
    src = f["src"]
    if type(src) is VReg:
        b = state.get(src, top)
        if b[1] > mask:
            b = top
    elif is_imm(src):
        b = (src & mask,) * 2
    else:  # a physical register
        b = top
    aop = f["op"]
    if aop is _MOV:
        return b
    a = state.get(f["dst"], top)
    if a[1] > mask:
        a = top
    if aop is _ADD:
        lo, hi = a[0] + b[0], a[1] + b[1]
    elif aop is _SUB:
        if a[0] < b[1]:
            return top
        lo, hi = a[0] - b[1], a[1] - b[0]
    elif aop is _MUL:
        lo, hi = a[0] * b[0], a[1] * b[1]
    elif aop is _AND:
        lo, hi = 0, min(a[1], b[1])
    elif aop is _OR or aop is _XOR:
        lo, hi = 0, (1 << max(a[1], b[1]).bit_length()) - 1
    elif aop is _LSH and b[0] == b[1]:
        n = b[0] & (w - 1)
        lo, hi = a[0] << n, a[1] << n
    elif aop is _RSH:
        lo, hi = a[0] >> min(b[1], w - 1), a[1] >> (b[0] if b[0] < w else 0)
    elif aop is _DIV:
        lo, hi = 0, a[1]
    elif aop is _MOD:
        lo, hi = 0, (min(a[1], b[1] - 1) if b[0] > 0 else a[1])
    else:
        return top
    return (lo, hi) if hi <= mask else top
