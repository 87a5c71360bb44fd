"""Stack simulation over a code object's control-flow graph.

One forward dataflow pass over the instructions of a ``bytecode.Bytecode``
answers the three questions the rewrite asks:

* which CALL consumes the slot that each call opener pushed (the pairing of
  ``PUSH_NULL``/``LOAD_GLOBAL``/method loads with their calls, across
  branches and duplicated tails);
* which instructions run inside the function's own try/except/with;
* given the set of call sites whose results will be placeholders, where a
  placeholder (or a container holding one) reaches an instruction that would
  observe it, and so must be resolved just before that instruction.

Abstract stack items and locals carry bit flags.  Every flag means "may be":
the join of two states is a bitwise OR, and the analysis is conservative in
the direction that resolves more, never less.
"""

from __future__ import annotations

from typing import Any

from xcs._abstract import (
    CLEAN,
    Flow,
    State,
)
from xcs._cfg import Cfg
from xcs._errors import RewriteError
from xcs._opcodes import Opcodes
from xcs._transfer import Step

__all__ = ["simulate"]


def simulate(cfg: Cfg, ops: Opcodes, deferred: frozenset[int] = frozenset(), *,
             returns_to_caller: bool = False,
             comprehension: Any = None, lazy: frozenset[int] = frozenset(),
             cells: frozenset[str] = frozenset(),
             closure_cells: frozenset[str] = frozenset()) -> Flow:
    """Run the dataflow to a fixed point and record its findings.

    Args:
        cfg: the code's control-flow graph.
        ops: the bytecode of this CPython (``_compat.ops``).
        deferred: indices of the CALL instructions whose results are placeholders.
        returns_to_caller: the code's return value goes straight back into the
            enclosing frame (a 3.11 comprehension), so it may hold placeholders.
        comprehension: ``code -> Val`` giving what calling a nested comprehension
            code object returns (3.11), or None.
        lazy: indices of pure operators (``a + b``, f-string parts) that take
            placeholders and produce one instead of waiting.
        cells: cell variables that only comprehensions read (3.11): tracked like
            fast locals, and resolved just before a comprehension that reads
            them is called.
        closure_cells: cells that closures only read (``_cells.closure_cells``):
            tracked like fast locals; resolved before a closure is built over one,
            after which what it holds counts as seen by others.
    """
    sim = _Simulation(cfg, ops, deferred, returns_to_caller, comprehension, lazy, cells,
                      closure_cells)
    sim.run()
    return sim.flow


class _Simulation:
    def __init__(self, cfg: Cfg, ops: Opcodes, deferred: frozenset[int],
                 returns_to_caller: bool, comprehension: Any, lazy: frozenset[int],
                 cells: frozenset[str], closure_cells: frozenset[str]) -> None:
        self.cfg = cfg
        self.cells = cells
        self.closure_cells = closure_cells
        self.local_cells = cells | closure_cells
        self.ops = ops
        self.deferred = deferred
        self.lazy = lazy
        self.returns_to_caller = returns_to_caller
        self.comprehension = comprehension
        self.flow = Flow(cfg)
        self.recording = False

    def run(self) -> None:
        n = len(self.cfg.instrs)
        states: list[State | None] = [None] * n
        if n == 0:
            return
        states[0] = State((), {})
        work = [0]
        queued = {0}
        while work:
            i = work.pop()
            queued.discard(i)
            state = states[i]
            assert state is not None
            for j, out in self._successors(i, state):
                if j >= n:
                    raise RewriteError("control flow falls off the end of the code")
                old = states[j]
                new = out if old is None else old.join(out, f"instruction {j}")
                if old is None or not new.same(old):
                    states[j] = new
                    if j not in queued:
                        queued.add(j)
                        work.append(j)
        self.recording = True
        for i, state in enumerate(states):
            if state is not None:
                self._successors(i, state)

    def _successors(self, i: int, state: State) -> list[tuple[int, State]]:
        cfg = self.cfg
        out = []
        block = cfg.region[i]
        if block is not None:
            depth = block.stack_depth
            if not isinstance(depth, int):
                raise RewriteError(f"unknown handler depth at instruction {i}")
            # 3.15 genexprs cover their final (non-raising) instructions with a
            # handler deeper than the stack there: such an edge is never taken.
            if depth <= len(state.stack):
                extra = (CLEAN,) * (2 if block.push_lasti else 1)
                handler_state = State(state.stack[:depth] + extra, dict(state.locs))
                out.append((cfg.handler(block), handler_state))
        step = Step(self, i, state)
        for j, jump in cfg.succ[i]:
            out.append((j, step.after(jump)))
        if self.recording and step.resolve:
            self.flow.resolves[i] = sorted(set(step.resolve), reverse=True)
        if self.recording and step.touch:
            self.flow.touches[i] = sorted(set(step.touch), reverse=True)
        if self.recording and self.closure_cells and step.changes and step.may_change():
            changed = sorted(self.closure_cells & step.changes)
            if changed:
                self.flow.cell_changes[i] = changed
        return out
