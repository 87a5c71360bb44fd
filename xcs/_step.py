"""One instruction's transfer over abstract values: the stack bookkeeping.

``StackStep`` holds what every transfer function needs: taking operands off the
abstract stack, observing a value (it must be resolved before the instruction,
or a deferred call's owner waited for), letting it escape, and the generic
transfer of an instruction xcs has no model for.  ``_step_calls`` adds call
openers, calls and locals, ``_transfer`` the per-opcode rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xcs._abstract import (
    CLEAN,
    ESC,
    IMMUTABLE,
    LCT,
    NOTDICT,
    NOTLIST,
    PH,
    PLAIN,
    SHARED,
    TAINT,
    TCT,
    TLCT,
    State,
    Val,
)
from xcs._errors import RewriteError

if TYPE_CHECKING:
    from xcs._flow import _Simulation

class StackStep:
    """The transfer function of one instruction from one entry state: its stack."""

    def __init__(self, sim: _Simulation, i: int, state: State) -> None:
        self.sim = sim
        self.i = i
        self.instr = sim.cfg.instrs[i]
        self.arg: Any = self.instr.arg  # its type depends on the opcode
        self.stack = list(state.stack)
        self.locs = dict(state.locs)
        self.depth0 = len(self.stack)
        self.resolve: list[int] = []
        self.changes: set[str] = set()  # locals of the operands it takes, cells it stores
        self.touch: list[int] = []  # depths of operands this instruction reads
        self.touching = self.instr.name not in sim.ops.READS_NOTHING
        self.pushed: list[Val] = []
        self.fill = CLEAN  # what a generic instruction pushes beyond what it kept
        self.effect_known = False
        self.origin = i
        if sim.recording and sim.ops.is_with_enter(self.instr) and self.stack:
            sim.flow.with_starts[i] = min(i, self.stack[-1].origin)
        if (sim.recording and sim.ops.in_place(self.instr) and len(self.stack) >= 2
                and self.stack[-2].bits & ESC):
            sim.flow.in_place_outside.add(i)

    def may_change(self) -> bool:
        """Can this instruction change what one of its operands holds, or a cell?"""
        instr, ops = self.instr, self.sim.ops
        return (instr.name in ops.CHANGES_OPERAND or instr.name in ("STORE_DEREF", "DELETE_DEREF")
                or ops.call_roles(instr) is not None or ops.in_place(instr))

    # -- helpers -----------------------------------------------------------
    def _take(self, n: int) -> list[Val]:
        if n > len(self.stack):
            raise RewriteError(f"stack underflow at instruction {self.i} ({self.instr.name})")
        if n == 0:
            return []
        items = self.stack[-n:]
        del self.stack[-n:]
        self.origin = min(self.origin, min(v.origin for v in items))
        if self.sim.closure_cells:
            for v in items:
                self.changes |= v.aliases
        return items

    def _depth_of(self, pos: int) -> int:
        """Depth (1 = top) at instruction entry of the item at stack position ``pos``."""
        return self.depth0 - pos

    def _observe(self, pos: int, val: Val, touch: bool = True, handed: bool = False) -> None:
        """The instruction observes ``val`` (at entry position ``pos``): resolve it first.

        With ``touch``, the instruction also reads the object: if a deferred call
        may own it, the replay waits for that call first.
        """
        if val.bits & TAINT:
            self.resolve.append(self._depth_of(pos))
        if touch and self.touching and (val.bits & ESC or ~val.bits & (NOTLIST | NOTDICT)):
            # Not a fresh value nobody saw, or a fresh list or dict (which may hold
            # objects a call owns: ``helper({"m": msgs})``).
            self.touch.append(self._depth_of(pos))
        self._escape(val, handed)

    def _escape(self, val: Val, handed: bool = False) -> None:
        """``val`` may now be seen by others: by anyone, or only by this call, which
        receives it as an argument (``handed``: recorded in ``Flow.handed``)."""
        bits = ESC if handed else ESC | SHARED
        for name in val.aliases:
            self.locs[name] = self.locs.get(name, PLAIN) | bits
        if handed and self.sim.recording:
            for name in val.aliases:
                self.sim.flow.handed.setdefault(name, set()).add(self.i)

    def after(self, jump: bool) -> State:
        stack = list(self.stack)
        pushed = self.pushed if self.effect_known else self._generic_push(jump)
        if self.instr.name in self.sim.ops.IMMUTABLE_RESULT:
            pushed = [Val(IMMUTABLE) for _ in pushed]
        if self.instr.name not in ("COPY", "SWAP"):  # shuffles move values, make none
            origin = self.origin
            pushed = [v if v.origin <= origin else
                      Val(v.bits, v.openers, v.aliases, v.what, origin) for v in pushed]
        stack.extend(pushed)
        return State(tuple(stack), self.locs)

    def _done(self, pushed: list[Val]) -> None:
        self.pushed = pushed
        self.effect_known = True

    def _generic(self) -> None:
        ops = self.sim.ops
        consumed = ops.consumed(self.instr)
        if consumed is None:  # an instruction we have no model for: resolve everything
            consumed = len(self.stack)
        self.consumed = consumed
        base = len(self.stack) - consumed
        items = self._take(consumed)
        kept = ops.kept(self.instr)
        self.kept_items = items[:kept]
        if self.instr.name in ops.READS_KEPT and items:
            # MATCH_MAPPING and friends test the subject they leave on the stack
            # (a placeholder is no mapping); FOR_ITER advances its iterator.
            self._observe(base, items[0])
        for k, val in enumerate(items[kept:], start=kept):
            self._observe(base + k, val)

    def _generic_push(self, jump: bool) -> list[Val]:
        ops = self.sim.ops
        try:
            effect = self.instr.stack_effect(jump=jump)
        except Exception as exc:
            raise RewriteError(f"no stack effect for {self.instr.name}: {exc}") from None
        effect += ops.EFFECT_FIX.get(self.instr.name, 0)
        produced = self.consumed + effect
        if produced < 0:
            raise RewriteError(f"inconsistent stack effect for {self.instr.name}")
        kept = self.kept_items[:produced]
        fill = CLEAN if jump else self.fill  # (an exhausted FOR_ITER's dummy is no item)
        return kept + [fill] * (produced - len(kept))

    def _lazy(self) -> None:
        """A pure operator or an access: on a placeholder it may produce one.

        A subscript of a container holding placeholders (``results[k]``, built by
        the body) reads the container, not the values: it passes the item on as
        it is, so it produces what the container may hold.
        """
        sim = self.sim
        consumed = sim.ops.consumed(self.instr)
        if consumed is None:  # (every operator a replay may compute later has a model)
            raise RewriteError(f"no stack model for {self.instr.name}")
        items = self.stack[len(self.stack) - consumed:]
        subscript = sim.ops.is_subscript(self.instr)
        held = subscript and items[0].bits & (LCT | TCT)
        if not held and not any(v.bits & (PH | TCT) for v in items):
            if subscript and not items[0].bits & (ESC | PH):
                self._item(consumed)
            else:
                self._generic()
            return
        if sim.recording:
            sim.flow.lazy_ops[self.i] = consumed
        if self.i not in sim.lazy:
            self._generic()
            return
        base = len(self.stack) - consumed
        for k, val in enumerate(self._take(consumed)):
            if subscript and k == 0:
                continue  # the container is read, not shown to anyone: it stays fresh
            if val.bits & LCT or (val.bits & TCT and subscript):
                self._observe(base + k, val)
            else:  # a tuple holding placeholders (``"%s/%d" % (r, n)``) is rebuilt
                self._escape(val)
        container = items[0].bits if subscript else 0
        result = PLAIN | PH
        if container & TLCT or container & TCT:  # an item, or a slice of a tuple
            result |= TCT
        if container & LCT and container & NOTDICT:  # may be a slice of a list
            result |= LCT
        self._done([Val(result)])

    def _item(self, consumed: int) -> None:
        """``d[key]`` (or ``xs[a:b]``) on a list or dict the body built and nobody saw:
        it stays so."""
        base = len(self.stack) - consumed
        _, *keys = self._take(consumed)
        for k, key in enumerate(keys, start=1):
            self._observe(base + k, key)
        if self.touching:
            self.touch.append(self._depth_of(base))
        self._done([CLEAN])

    # -- containers --------------------------------------------------------------
    def _build(self, kind: int, keyed: bool) -> None:
        """BUILD_LIST/TUPLE/MAP: values may be placeholders, keys may not."""
        count = self.arg * (2 if keyed else 1)
        base = len(self.stack) - count
        holds = tuples = False
        for k, val in enumerate(self._take(count)):
            # A list or dict may hold tuples holding placeholders (``(r, len(r))``):
            # resolving it rebuilds them.  A tuple of such tuples is resolved now.
            if (keyed and k % 2 == 0) or val.bits & LCT or (val.bits & TCT and kind & ESC):
                self._observe(base + k, val)
            else:
                holds = holds or bool(val.bits & (PH | TCT))
                tuples = tuples or bool(val.bits & TCT)
                self._escape(val)
        if holds:
            kind |= TCT if kind & ESC else LCT | (TLCT if tuples else 0)
        self._done([Val(kind)])

    def _add_to(self, container_depth: int, values: list[tuple[int, Val]], need: int) -> None:
        container = self.stack[-container_depth]
        fresh = not container.bits & (ESC | need)
        holds = False
        tuples = 0
        for pos, val in values:
            if fresh and not val.bits & LCT:
                holds = holds or bool(val.bits & (PH | TCT))
                if val.bits & TCT:
                    tuples = TLCT
                self._escape(val)
            else:
                self._observe(pos, val)
        if holds:
            self.stack[-container_depth] = Val(container.bits | LCT | tuples, container.openers,
                                               container.aliases, container.what,
                                               container.origin)
