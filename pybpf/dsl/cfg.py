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
    return _successors(ops)[0]


def _successors(ops: list) -> tuple[list[tuple[int, ...]], list[int]]:
    """Successors, and the ops whose successors are not just the next op (block ends)."""
    n = len(ops)
    succ: list = [(i,) for i in range(1, n)]
    if n:
        succ.append(())
    labels, branches = {}, []
    flow = _FLOW.get
    for i, op in enumerate(ops):
        if type(op) is Mark:
            labels[op.name] = i
        elif op.cls in _FLOW:
            branches.append(i)
    ends = []
    for i in branches:
        op = ops[i]
        kind = flow(op.cls)
        if kind == 3:
            succ[i] = ()
        else:
            target = labels[op.fields["target"]]
            if kind == 2:
                succ[i] = (target,)
            elif i + 1 < n:
                succ[i] = (i + 1, target)
            else:
                succ[i] = (target,)
        if succ[i] != (i + 1,):
            ends.append(i)
    return succ, ends


class Cfg:
    """Successors, basic blocks and back edges of one op list, each computed on first use.

    ``spans`` are the blocks as (first, last) op indices in op order; ``bsucc``
    each block's successor blocks; ``back`` whether some edge goes to an
    earlier (or the same) block: a loop.
    """

    __slots__ = ("ops", "_succ", "_ends", "_blocks", "_back")

    def __init__(self, ops: list):
        self.ops = ops
        self._succ = None
        self._ends = None
        self._blocks = None
        self._back = None

    @property
    def succ(self) -> list[tuple[int, ...]]:
        if self._succ is None:
            self._succ, self._ends = _successors(self.ops)
        return self._succ

    @property
    def spans(self) -> list[tuple[int, int]]:
        return self._block_graph()[0]

    @property
    def bsucc(self) -> list[tuple[int, ...]]:
        return self._block_graph()[1]

    @property
    def back(self) -> bool:
        if self._back is None:
            self._back = any(j <= k for k, js in enumerate(self.bsucc) for j in js)
        return self._back

    def _block_graph(self):
        if self._blocks is None:
            succ = self.succ
            n = len(succ)
            leaders = {0} if n else set()
            for i in self._ends:
                leaders.update(succ[i])
                if i + 1 < n:
                    leaders.add(i + 1)
            starts = sorted(leaders)
            index = {start: k for k, start in enumerate(starts)}
            spans = [(start, end - 1) for start, end in zip(starts, [*starts[1:], n], strict=True)]
            self._blocks = spans, [tuple(index[j] for j in succ[last]) for _, last in spans]
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
