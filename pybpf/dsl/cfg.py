"""The control-flow graph of an op list: successors of each op and basic blocks.

A ``Cfg`` is computed lazily and once per op list; ``Builder.finish`` hands it
from pass to pass while a pass leaves the list as it was (most passes find
nothing to do in most programs), so the graph is not rebuilt for each analysis.
"""

from __future__ import annotations

import heapq

from pybpf.asm import Exit, Goto, GotoLong, Jump, MayGoto
from pybpf.dsl.ir import Mark

# how an instruction class leaves the straight line: 1 conditional, 2 goto, 3 exit
_FLOW = {Jump: 1, MayGoto: 1, Goto: 2, GotoLong: 2, Exit: 3}


def successors(ops: list) -> list[tuple[int, ...]]:
    """Indices of the ops that may run after each op."""
    return _successors(ops, _branches(ops))


def _branches(ops: list) -> dict[int, tuple[int, ...]]:
    """The successors of each op that may leave the straight line (jumps, gotos,
    exits), by op index: all the graph is made of."""
    labels, branches = {}, []
    flow = _FLOW
    for i, op in enumerate(ops):
        if type(op) is Mark:
            labels[op.name] = i
        elif op.cls in flow:
            branches.append(i)
    n = len(ops)
    out = {}
    for i in branches:
        op = ops[i]
        kind = flow[op.cls]
        if kind == 3:
            out[i] = ()
        else:
            target = labels[op.fields["target"]]
            out[i] = (target,) if kind == 2 or i + 1 == n else (i + 1, target)
    return out


def _successors(ops: list, branches: dict) -> list[tuple[int, ...]]:
    """Per op, the next op, or its successors from ``branches``."""
    n = len(ops)
    succ: list = [(i,) for i in range(1, n)]
    if n:
        succ.append(())
    for i, s in branches.items():
        succ[i] = s
    return succ


class Cfg:
    """Successors, basic blocks and back edges of one op list, each computed on first use.

    ``spans`` are the blocks as (first, last) op indices in op order; ``bsucc``
    each block's successor blocks; ``back`` whether some edge goes to an
    earlier (or the same) block: a loop. Blocks come from the branches alone,
    without the per-op successor list (``succ``), which only some passes need.
    """

    __slots__ = ("ops", "_branches", "_succ", "_blocks")

    def __init__(self, ops: list):
        self.ops = ops
        self._branches = None
        self._succ = None
        self._blocks = None

    @property
    def succ(self) -> list[tuple[int, ...]]:
        if self._succ is None:
            self._succ = _successors(self.ops, self.branches)
        return self._succ

    @property
    def branches(self) -> dict[int, tuple[int, ...]]:
        """The successors of the jumps, gotos and exits, by op index, in op order."""
        if self._branches is None:
            self._branches = _branches(self.ops)
        return self._branches

    @property
    def spans(self) -> list[tuple[int, int]]:
        return self._block_graph()[0]

    @property
    def bsucc(self) -> list[tuple[int, ...]]:
        return self._block_graph()[1]

    @property
    def back(self) -> bool:
        return self._block_graph()[2]

    def _block_graph(self):
        if self._blocks is None:
            n = len(self.ops)
            # the ends of blocks: branches whose successors are not just the next op
            ends = {i: s for i, s in self.branches.items() if s != (i + 1,)}
            leaders = {0} if n else set()
            for i, s in ends.items():
                leaders.update(s)
                if i + 1 < n:
                    leaders.add(i + 1)
            starts = sorted(leaders)
            index = {start: k for k, start in enumerate(starts)}
            spans = [(start, end - 1) for start, end in zip(starts, [*starts[1:], n], strict=True)]
            bsucc, back = [], False
            for k, (_, last) in enumerate(spans):
                s = ends.get(last)
                if s is None:  # a label of a jump comes next
                    bsucc.append((k + 1,) if last + 1 < n else ())
                else:
                    s = tuple([index[j] for j in s])
                    if s and s[-1] <= k:  # a jump's target (the fall-through goes forward)
                        back = True
                    bsucc.append(s)
            self._blocks = spans, bsucc, back
        return self._blocks

    def forward(self, state_in: list, visit) -> None:
        """Visit the reached blocks of a forward analysis (``state_in[k]`` not None) until
        no entry state changes; ``visit(k)`` returns the blocks whose entry state it changed.

        Without back edges op order is a topological order: each block comes once,
        after all its predecessors, so one pass in order suffices and no queue is
        kept. With loops a worklist taken in op order (lowest block first) revisits
        what changed.
        """
        nb = len(self.spans)
        if not self.back:
            for k in range(nb):
                if state_in[k] is not None:
                    visit(k)
            return
        work, queued = [0] if nb else [], {0}
        while work:
            k = heapq.heappop(work)
            queued.discard(k)
            for j in visit(k):
                if j not in queued:
                    queued.add(j)
                    heapq.heappush(work, j)

    def same(self, ops: list) -> Cfg:
        """This graph if ``ops`` is the list it describes, else a new one for ``ops``."""
        return self if ops is self.ops else Cfg(ops)
