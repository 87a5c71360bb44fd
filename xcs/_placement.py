"""Where the hooks go in one copy of one code unit: the rewrite's placement.

For a unit and a variant, ``Placement`` simulates which values may be
placeholders and decides what is inserted before and after each instruction:
the trace's probes of calls and operators, a replay's wrapping of deferred
calls, resolutions where the body observes a placeholder, and the waits before
what others may see (barriers, guards, touches of what deferred calls own).
``_emit`` then writes the copy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bytecode import Instr, Label
from bytecode.instr import CellVar

from xcs import _compat
from xcs._abstract import LCT, NOTDICT, NOTLIST, OTHER, Val
from xcs._errors import RewriteError
from xcs._flow import simulate
from xcs._sequences import (
    CellHook,
    Exposure,
    anchor,
    barrier,
    cell_name,
    copy_call,
    guard_at,
    probe,
    resolve_at,
)
from xcs._sites import RUN_IN_PLACE, Hooks, Site, Unit, Variant

ops = _compat.required()

__all__ = ["Placement"]


class Placement:
    """What goes before and after each instruction of ``unit`` in the copy for ``variant``."""

    def __init__(self, sites: list[Site], unit: Unit, variant: Variant, hooks: Hooks) -> None:
        self.sites = sites
        self.unit = unit
        self.variant = variant
        self.hooks = hooks
        self.cfg = cfg = unit.cfg
        # A first call records like a trial and defers like a replay: the calls of
        # callees known to be slow at the sites a replay could defer (``first``).
        self.first = first = variant.mode == "first"
        self.trace = trace = variant.mode == "trace" or first
        self.in_place = in_place = unit.kind != "nested"
        self.deferred_calls = frozenset(
            index for index, sid in unit.site_ids.items()
            if (sid in variant.deferred if not trace else sites[sid].deferrable)
            and in_place)
        self.replay = replay = not trace or first  # placeholders exist in this copy
        # The trace lets placeholders flow through every operator site, so that
        # each site's probe sees what reaches it; a replay only through its plan's.
        lazy_ops = frozenset(i for i, op in unit.op_ids.items() if trace or op in variant.lazy)
        flow = unit.flow
        if in_place:  # placeholders may come from this code's sites or from comprehensions
            flow = simulate(cfg, ops, self.deferred_calls,
                            returns_to_caller=unit.kind in RUN_IN_PLACE,
                            comprehension=self._comprehension_result(), lazy=lazy_ops,
                            cells=unit.cells, closure_cells=unit.closure_cells)
        self.flow = flow
        self.probed_ops = {i: n for i, n in flow.lazy_ops.items() if i in unit.op_ids and trace}
        self.lazy_here = {i: n for i, n in flow.lazy_ops.items() if i in lazy_ops and replay}
        normalize: set[int] = set()
        for index, call in flow.calls.items():
            if trace or index in self.deferred_calls:
                normalize |= call.openers
        self.normalize = normalize - flow.kwnull_openers
        # A method-form opener on a result (``r.strip()``) is an attribute load and the
        # NULL slot: its result is the load's, before the slot is pushed.
        self.methods = {i for i in self.lazy_here if ops.opener(cfg.instrs[i]) is not None}
        self.methods |= {i for i in self.probed_ops if ops.opener(cfg.instrs[i]) is not None
                         and i in self.normalize}
        self.before: dict[int, list[Any]] = {}
        self.after: dict[int, list[Any]] = {}
        self._resolutions()
        if unit.closure_cells and replay and variant.deferred:
            self._exposures()
        self._operators()
        self._calls()
        if in_place and not trace and variant.settles:
            for index in flow.calls:
                if unit.site_ids[index] in variant.settles and not cfg.protected[index]:
                    self.at(index).extend(barrier(hooks.settle, cfg.instrs[index].location))
        if in_place and replay and variant.deferred:
            self._touches()
            self._waits()
        self.switches = self._switches() if first else {}

    def at(self, index: int) -> list[Any]:
        """The insertions before instruction ``index``: for a CALL, before its glued
        prefix (``ops.CALL_PREFIX``)."""
        cfg = self.cfg
        where = anchor(cfg, index)
        if ops.after_loop_end(cfg.instrs, where):
            raise RewriteError("cannot insert code at the end of a for loop")
        return self.before.setdefault(where, [])

    def _resolutions(self) -> None:
        """A placeholder, or a cell that may hold one, is resolved where it is observed
        (recorded as a use in a trace)."""
        hooks, cfg = self.hooks, self.cfg
        hook = hooks.use_resolve if self.first else hooks.use if self.trace else hooks.resolve
        for index, depths in self.flow.resolves.items():
            if index in self.probed_ops:
                continue  # the operator's probe records these uses
            loc = cfg.instrs[index].location
            for depth in depths:
                self.at(index).extend(resolve_at(depth, hook, loc))
        for index, cells in self.flow.resolve_cells.items():
            loc = cfg.instrs[index].location
            for cell in cells:  # the cell object itself: it may be empty on this path
                self.at(index).extend([Instr(ops.CELL_LOAD, CellVar(cell), location=loc),
                                       *ops.apply(CellHook(hook), loc),
                                       Instr("POP_TOP", location=loc)])

    def _operators(self) -> None:
        """A trace's probes of operator and access sites."""
        hooks, cfg, unit = self.hooks, self.cfg, self.unit
        for index, n in self.probed_ops.items():
            instr = cfg.instrs[index]
            if ops.opener(instr) is not None and index not in self.methods:
                continue  # not normalized: left as it is (its receiver is resolved)
            loc = instr.location
            op = unit.op_ids[index]
            self.at(index).extend(copy_call(list(range(n, 0, -1)), hooks.op_before(op), loc))
            if self.first and index in self.methods:
                continue  # its lazy hook, then the probe of what it returned (``_emit``)
            if instr.name != "UNPACK_SEQUENCE" and index not in self.methods:  # one result
                self.after.setdefault(index, []).extend(ops.apply(hooks.op_after(op), loc))

    def _calls(self) -> None:
        """A trace's probes of call sites; the wrapping of a replay's deferred calls."""
        hooks, cfg, unit, variant = self.hooks, self.cfg, self.unit, self.variant
        for index, call in self.flow.calls.items():
            site = unit.site_ids[index]
            loc = cfg.instrs[index].location
            if self.trace:
                self.at(index).extend(probe(call, hooks.before(site), loc))
                if self.first and index in self.deferred_calls:
                    # Every site the simulation lets placeholders reach uncalled: the
                    # callable decides (``wrap_first``, which defers only at
                    # ``variant.deferred``): deferred, its inputs go as they are; made
                    # here, each is resolved first (``first_arg``).
                    roles = call.roles
                    depth = len(roles) - roles.index("callable")
                    self.at(index).extend([Instr("SWAP", depth, location=loc),
                                           *ops.apply(hooks.wrap_first(site), loc),
                                           Instr("SWAP", depth, location=loc)])
                    for k, role in enumerate(roles):
                        if role in ("arg", "star") or (role == "kwstar" and not call.kwnull):
                            self.at(index).extend(
                                resolve_at(len(roles) - k, hooks.first_arg, loc))
                self.after.setdefault(index, []).extend(ops.apply(hooks.after(site), loc))
            elif index in self.deferred_calls:
                depth = len(call.roles) - call.roles.index("callable")
                wrap = (hooks.wrap_drain(site) if site in variant.drains
                        else hooks.wrap_continuation(site) if site in variant.continued
                        else hooks.wrap(site))
                self.at(index).extend([Instr("SWAP", depth, location=loc),
                                       *ops.apply(wrap, loc),
                                       Instr("SWAP", depth, location=loc)])

    def _waits(self) -> None:
        """Before what others may see, the body waits for the calls it deferred."""
        hooks, cfg, unit, flow = self.hooks, self.cfg, self.unit, self.flow
        for index, instr in enumerate(cfg.instrs):
            if cfg.protected[index]:
                continue  # nothing is ever pending inside protected code
            if ops.is_with_enter(instr):
                # Before the context manager expression: ``with open(p, "wb")``
                # must not truncate a file when a call deferred before it failed.
                start = flow.with_starts.get(index, index)
                self.at(start).extend(barrier(hooks.barrier, instr.location))
            elif instr.name in ops.SIDE_EFFECTS and (cell_name(instr) in unit.cells
                                                 or cell_name(instr) in unit.closure_cells):
                pass  # a local of this frame (a closure cell: checked at run time)
            elif instr.name in ops.SIDE_EFFECTS or index in flow.stores_outside:
                self.at(index).extend(barrier(hooks.barrier, instr.location))
            elif index in flow.mutators:
                # ``history.append(x)`` on a list the caller sees: wait first (also so
                # that a list handed to a deferred call is not changed under it).
                self.at(index).extend(guard_at(1, hooks.guard, instr.location))
            elif (index in flow.in_place_outside
                  and unit.op_ids.get(index) not in self.variant.lazy):
                # ``xs += ys`` mutates xs when it is a list: a barrier then, and only
                # then (``total += x`` on an int must not wait).  Operators in the
                # plan's lazy set saw only immutable operands in the trial and pay
                # no guard call; their lazy hook checks instead.
                self.at(index).extend(guard_at(2, hooks.guard, instr.location))

    def _switches(self) -> dict[int, tuple[int, object]]:
        """First instruction -> (hooked instruction, its switch) of each site of a first
        body whose hooks a switch can skip: every call site (from its glued prefix) and
        every operator or access site that has hooks."""
        cfg, unit, hooks = self.cfg, self.unit, self.hooks
        found: dict[int, tuple[int, object]] = {}
        for index in self.flow.calls:
            found[anchor(cfg, index)] = (index, hooks.site_switch(unit.site_ids[index]))
        for index in self.probed_ops:
            if ops.opener(cfg.instrs[index]) is None or index in self.methods:
                found.setdefault(index, (index, hooks.op_switch(unit.op_ids[index])))
        return found

    def _exposures(self) -> None:
        """Keep closure cells sound while a closure holding one is alive (see
        ``closure_cells``): around each instruction that may change a closure cell
        or what it holds, if a closure holds the cell now, the body waits for every
        deferred call first (as for outside state) and resolves what the cell holds
        afterwards (a closure must never see a placeholder)."""
        cfg, hooks = self.cfg, self.hooks
        before_hook = Exposure(False, hooks.barrier, hooks.resolve)
        after_hook = Exposure(True, hooks.barrier, hooks.resolve)
        for index, cells in self.flow.cell_changes.items():
            loc = cfg.instrs[index].location
            for cell in cells:
                boxed = [Instr(ops.CELL_LOAD, CellVar(cell), location=loc),
                         Instr("BUILD_TUPLE", 1, location=loc)]
                self.at(index).extend([*boxed, *ops.apply(before_hook, loc),
                                       Instr("POP_TOP", location=loc)])
                self.after.setdefault(index, []).extend(
                    [*boxed, *ops.apply(after_hook, loc), Instr("POP_TOP", location=loc)])

    def _touches(self) -> None:
        """Before each instruction that reads an object a deferred call may own, check.

        ``touch(*objects)`` waits for the deferred calls that received one of them
        (see ``_replay``); it is only called while some call owns objects, which an
        inline test of the owners' table tells in two instructions.  Not checked:
        the receiver of a method that is itself deferred (handing an object to
        another deferred call does not wait), lazy operators (their hook checks),
        and instructions before which the body waits for every call anyway.
        """
        cfg, unit, flow, hooks = self.cfg, self.unit, self.flow, self.hooks
        deferred_calls = self.deferred_calls
        handed = set().union(*(flow.calls[i].openers for i in deferred_calls))
        handed -= set().union(*(c.openers for i, c in flow.calls.items()
                                if i not in deferred_calls))
        for index, depths in flow.touches.items():
            instr = cfg.instrs[index]
            if (cfg.protected[index] or index in handed or index in self.lazy_here
                    or instr.name in ops.SIDE_EFFECTS or index in flow.stores_outside
                    or ops.is_with_enter(instr)):
                continue
            if index in deferred_calls and self.sites[unit.site_ids[index]].writes:
                continue  # a filter made as a continuation runs after the owners itself
            if ops.call_roles(instr) is not None:  # its callable first, then its arguments
                hook = hooks.touch_call
            elif ops.reads_deep(instr):  # reads what its operands hold, too
                hook = hooks.touch_deep
            else:
                hook = hooks.touch
            loc = instr.location
            skip = Label()
            self.at(index).extend([Instr("LOAD_CONST", hooks.owned, location=loc),
                                   *ops.jump_forward_if_false(skip, loc),
                                   *copy_call(depths, hook, loc), skip])

    def _comprehension_result(self) -> Callable[[Any], Val]:
        """What calling a 3.11 comprehension returns: it may hold placeholders."""
        comps = {child.code: child for child in self.unit.children.values()
                 if child.kind == "comprehension"}
        variant, sites = self.variant, self.sites
        trace = variant.mode in ("trace", "first")

        def result(code: Any) -> Val:
            child = comps.get(code)
            if child is None:
                return Val()
            if not any((sites[s].deferrable if trace else s in variant.deferred)
                       for s in child.site_ids.values()):
                return Val()
            kind = NOTDICT | OTHER if code.co_name == "<listcomp>" else NOTLIST | OTHER
            return Val(kind | LCT)

        return result
