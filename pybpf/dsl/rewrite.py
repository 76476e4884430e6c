"""Rewrites on virtual-register code before allocation: dead ops (and the jumps
left over nothing) go, ``x == K1 | x == K2 | ...`` becomes one bit test, and runs
of zero stores to the stack share one zeroed register.
"""

from __future__ import annotations

from pybpf.asm import (
    Alu,
    Arith,
    Exit,
    Jump,
    JumpOp,
    LoadImm64,
    Reg,
    Size,
    Store,
    StoreImm,
)
from pybpf.dsl.ir import Mark, Op, VReg
from pybpf.dsl.jumps import JUMPS
from pybpf.dsl.regalloc import Liveness


def remove_dead(ops: list, pure: tuple) -> tuple[list, Liveness]:
    """Drop side-effect-free ops whose results nobody reads (loads of unused fields ...).

    One strong-liveness analysis finds them all at once, including chains
    (a value only read by another dead op) and counters that only feed
    themselves around a loop or through an unrolled chain. A conditional jump
    left with nothing to jump over (``if f != 0 goto L; L:`` once the flag it
    set is gone) goes too, and what only it read follows. Returns the ops
    left and their liveness (a dead op only passed its live set through).
    """
    live = Liveness(ops, pure=pure)
    return live.without_dead(ops) if live.dead else (ops, live)


def set_membership(ops: list, new_vreg, new_label) -> list:
    """Three or more ``x == K`` tests of one value against small constants, joined by
    ``|``, become one bit test (clang's shape): ``if x > 63 goto out; t = MASK;
    t >>= x; t &= 1; if t == 0 goto out``.

    Each ``if x == K goto L`` edge hands the verifier a state where x is exactly K,
    so L is walked once per constant; one bit test reaches it once.
    Form A: ``if x == K1 goto L; ...; if x != Kn goto M; L:``;
    form B: ``if x == K1 goto L; ...; if x == Kn goto L`` (falls through when not).
    """
    out: list = []
    done, n = 0, len(ops)  # ops[:done] are in out
    jumps = [k for k, op in enumerate(ops) if type(op) is Op and op.cls is Jump]
    for m in range(len(jumps) - 2):
        i = jumps[m]
        op = ops[i]  # either form is three jumps in a row at least
        if jumps[m + 2] != i + 2 or i < done or not _member_test(op, JumpOp.JEQ):
            continue
        x, w, target = op.fields["dst"], op.fields["width"], op.fields["target"]
        ks, j = [], i
        while (j < n and _member_test(ops[j], JumpOp.JEQ) and ops[j].fields["dst"] is x
               and ops[j].fields["width"] == w and ops[j].fields["target"] == target):
            ks.append(ops[j].fields["src"])
            j += 1
        form_a = (j + 1 < n and _member_test(ops[j], JumpOp.JNE) and ops[j].fields["dst"] is x
                  and ops[j].fields["width"] == w and type(ops[j + 1]) is Mark
                  and ops[j + 1].name == target)
        if form_a:
            ks.append(ops[j].fields["src"])
        if len(ks) < 3:
            continue
        src = op.source
        mask = sum(1 << k for k in set(ks))
        t = new_vreg("in_set")
        if form_a:
            miss, after = ops[j].fields["target"], None
        else:
            miss = after = new_label("notin")
        test = [Op(Jump, {"op": JumpOp.JGT, "dst": x, "src": 63, "target": miss, "width": w}, src)]
        if mask <= _S32_MAX:
            test.append(Op(Alu, {"op": Arith.MOV, "dst": t, "src": mask, "width": 64}, src))
        else:
            test.append(Op(LoadImm64, {"dst": t, "imm": mask}, src))
        test += [Op(Alu, {"op": Arith.RSH, "dst": t, "src": x, "width": 64}, src),
                 Op(Alu, {"op": Arith.AND, "dst": t, "src": 1, "width": 32}, src)]
        if form_a:
            test.append(Op(Jump, {"op": JumpOp.JEQ, "dst": t, "src": 0, "target": miss,
                                  "width": 32}, src))
        else:
            test += [Op(Jump, {"op": JumpOp.JNE, "dst": t, "src": 0, "target": target,
                               "width": 32}, src), Mark(after, src)]
        out += ops[done:i]
        out += test
        done = j + 1 if form_a else j
    if not done:
        return ops
    out += ops[done:]
    return out


_S32_MAX = (1 << 31) - 1


def _member_test(op, jop) -> bool:
    if not (type(op) is Op and op.cls is Jump and op.fields["op"] is jop):
        return False
    k = op.fields["src"]
    return type(op.fields["dst"]) is VReg and type(k) is int and 0 <= k <= 63


def share_zero_stores(ops: list, new_vreg) -> list:
    """Three or more ``*(uN *)(r10 + off) = 0`` in a row (no label, jump or call between)
    store one register set to zero instead, as clang does: the x86-64 JIT turns a
    store-immediate into ``mov [rbp-x], imm32`` (7-8 bytes) and a register store into 3-4.
    """
    zeros = [i for i, op in enumerate(ops) if type(op) is Op and op.cls is StoreImm
             and op.fields["imm"] == 0 and op.fields["dst"] == _R10]
    if len(zeros) < 3:
        return ops
    runs: list[list[int]] = [[]]  # positions of the zero stores, by run
    for i in zeros:
        run = runs[-1]
        if run and any(_ends_run(between) for between in ops[run[-1] + 1:i]):
            runs.append([i])
        else:
            run.append(i)
    out: list = []
    done = 0  # ops[:done] are in out
    for run in runs:
        if len(run) < 3 or not any(ops[i].fields["size"] in _WIDE for i in run):
            continue
        z = new_vreg("zero")
        out += ops[done:run[0]]
        out.append(Op(Alu, {"op": Arith.MOV, "dst": z, "src": 0, "width": 64}, ops[run[0]].source))
        stores = set(run)
        for i in range(run[0], run[-1] + 1):
            op = ops[i]
            if i in stores:
                f = op.fields
                op = Op(Store, {"dst": Reg.R10, "src": z, "off": f["off"], "size": f["size"]},
                        op.source)
            out.append(op)
        done = run[-1] + 1
    if not done:
        return ops
    out += ops[done:]
    return out


def _ends_run(op) -> bool:
    """A label, jump, exit or call: zero stores on either side are not one run."""
    return type(op) is Mark or op.cls in JUMPS or op.cls is Exit or bool(op.clobbers)


_WIDE = (Size.W, Size.DW)
_R10 = Reg.R10  # an enum member read through its class costs a metaclass lookup per read
