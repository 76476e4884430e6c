"""The control-flow graph of an op list, as basic blocks.

A ``Cfg`` is computed lazily and once per op list; ``Builder.finish`` hands it
from pass to pass while a pass leaves the list as it was (most passes find
nothing to do in most programs), so the graph is not rebuilt for each analysis.
"""

from __future__ import annotations

import heapq

from pybpf.asm import Exit, Goto, GotoLong, Jump, MayGoto
from pybpf.dsl.ir import Mark

# how an instruction class leaves the straight line
COND, GOTO, EXIT = 1, 2, 3
FLOW = {Jump: COND, MayGoto: COND, Goto: GOTO, GotoLong: GOTO, Exit: EXIT}


class Cfg:
    """The basic blocks of one op list and the edges between them.

    ``spans`` are the blocks as (first, last) op indices in op order; ``bsucc``
    each block's successor blocks, a conditional jump's as (fall-through,
    target); ``back`` whether some edge goes to an earlier (or the same) block:
    a loop. A block starts at op 0, at the target of a jump and after a jump,
    goto or exit; a goto to the op right after it ends a block only if that
    op starts one for another reason.

    They are made on first use: one walk over the ops finds the labels and the
    branches; the blocks then come from the branches alone: each block's last
    op is the op before the next block's first, and only a block ending in a
    branch has other successors than the next block.
    """

    __slots__ = ("ops", "_blocks")

    def __init__(self, ops: list):
        self.ops = ops
        self._blocks = None

    @property
    def spans(self) -> list[tuple[int, int]]:
        return (self._blocks or self._block_graph())[0]

    @property
    def bsucc(self) -> list[tuple[int, ...]]:
        return (self._blocks or self._block_graph())[1]

    @property
    def back(self) -> bool:
        return (self._blocks or self._block_graph())[2]

    def _block_graph(self) -> tuple:
        ops = self.ops
        n = len(ops)
        labels, branches = {}, []
        flow = FLOW
        for i, op in enumerate(ops):
            if type(op) is Mark:
                labels[op.name] = i
            elif op.cls in flow:
                branches.append((i, op))
        ends = []  # the branches that end blocks: (index, target index or None, conditional)
        leaders = {0, n}  # (n: where the last block ends)
        for i, op in branches:
            kind = flow[op.cls]
            if kind == EXIT:
                target = None
            else:
                target = labels[op.fields["target"]]
                if kind == GOTO and target == i + 1:
                    continue
                leaders.add(target)
            leaders.add(i + 1)
            ends.append((i, target, kind == COND))
        starts = sorted(leaders)
        nb = len(starts) - 1
        index = dict(zip(starts, range(nb + 1), strict=True))
        spans = list(zip(starts[:-1], [start - 1 for start in starts[1:]], strict=True))
        bsucc: list = [(k,) for k in range(1, nb)]  # falling through into the next block
        if nb:
            bsucc.append(())
        back = False
        for i, target, cond in ends:
            k = index[i + 1] - 1
            if target is None:
                bsucc[k] = ()
                continue
            target = index[target]
            if target <= k:
                back = True
            bsucc[k] = (k + 1, target) if cond and i + 1 < n else (target,)
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
