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

from dataclasses import dataclass, field
from types import CodeType, FunctionType
from typing import Any

from bytecode import Bytecode, Instr, Label
from bytecode.instr import CellVar, TryBegin, TryEnd

from xcs._codes import WRITERS
from xcs._errors import RewriteError
from xcs._owners import MUTATORS

PH = 1  # may be a placeholder
LCT = 2  # may be a list or dict holding placeholders (resolvable in place)
TCT = 4  # may be a tuple holding placeholders (must be rebuilt)
ESC = 8  # may be other than a list/dict that this frame built and nobody else saw
NOTLIST = 16  # may be other than a list
NOTDICT = 32  # may be other than a dict
OTHER = 64  # may be an ordinary value rather than the NULL slot of a call opener
TAINT = PH | LCT | TCT
# With LCT: a list or dict whose items may be tuples holding placeholders
# (``out.append((r, len(r)))``); its items are then TCT.
TLCT = 128
# A loop's iterator over a list holding placeholders: what FOR_ITER pushes may be one.
ITEMS = 256
# A list an outlined filter (``_filters``) may still be appending to: the body's own
# appends are then ordinary calls (checked against its owners), not gathers.
FILTERED = 512
# With ESC: seen by more than the calls it was handed to as an argument (stored, aliased,
# captured, read by the body, of unknown origin).  An outlined filter may fill a list that
# only calls a replay defers or continues saw: they own it while they run, and the filter
# runs after them (``_replay``); not one others may hold (``o.items = lst``).
SHARED = 1024
PLAIN = ESC | NOTLIST | NOTDICT | OTHER | SHARED
# A value that is never an object handed to a deferred call: a constant, a bool
# result.  (Not ESC: ESC also means "may be an object someone else holds".)
IMMUTABLE = NOTLIST | NOTDICT | OTHER

APPEND = "append"  # ``what`` of the bound ``append`` of a fresh list
_PRIVATE = "private"  # ``what`` of another method of a container nobody else saw
_DEREF = frozenset({"LOAD_DEREF", "STORE_DEREF", "DELETE_DEREF"})
# Instructions (besides calls and in-place operators) that change an operand.
_CHANGES = frozenset({"STORE_SUBSCR", "DELETE_SUBSCR", "STORE_SLICE", "STORE_ATTR",
                      "DELETE_ATTR"})


@dataclass(frozen=True, slots=True)
class Val:
    """What may be in one stack slot or local variable."""

    bits: int = PLAIN
    openers: frozenset[int] = frozenset()  # call openers that may have pushed this slot
    aliases: frozenset[str] = frozenset()  # locals this value may have been loaded from
    what: Any = None  # ("code", c), ("func", c) or APPEND, when known on every path
    origin: int = 1 << 30  # the first instruction that went into computing it

    def join(self, other: Val) -> Val:
        if self == other:
            return self
        what = self.what if self.what == other.what else None
        return Val(self.bits | other.bits, self.openers | other.openers,
                   self.aliases | other.aliases, what, min(self.origin, other.origin))


CLEAN = Val()
SLOT_BITS = 0


@dataclass(slots=True)
class State:
    stack: tuple[Val, ...]
    locs: dict[str, int]

    def join(self, other: State, where: str) -> State:
        if len(self.stack) != len(other.stack):
            raise RewriteError(f"stack depth differs at {where}")
        stack = tuple(a.join(b) for a, b in zip(self.stack, other.stack))
        locs = dict(self.locs)
        for name, bits in other.locs.items():
            locs[name] = locs.get(name, PLAIN) | bits
        return State(stack, locs)

    def same(self, other: State) -> bool:
        return self.stack == other.stack and self.locs == other.locs


class Cfg:
    """The real instructions of a Bytecode with their successors and try regions."""

    def __init__(self, code: Bytecode, ops: Any) -> None:
        self.code = code
        self.instrs: list[Instr] = []
        self.region: list[TryBegin | None] = []
        self.label_index: dict[Label, int] = {}
        pending: list[Label] = []
        active: TryBegin | None = None
        for item in code:
            if isinstance(item, Label):
                pending.append(item)
            elif isinstance(item, TryBegin):
                active = item
            elif isinstance(item, TryEnd):
                active = None
            elif isinstance(item, Instr):
                for label in pending:
                    self.label_index[label] = len(self.instrs)
                pending.clear()
                self.instrs.append(item)
                self.region.append(active)
        self.succ: list[list[tuple[int, bool]]] = []
        monitor_only: frozenset[str] = getattr(ops, "MONITOR_ONLY_JUMPS", frozenset())
        for i, instr in enumerate(self.instrs):
            edges: list[tuple[int, bool]] = []
            if instr.has_jump() and instr.name not in monitor_only:
                edges.append((self._target(instr.arg), True))
            if not instr.is_final():
                edges.append((i + 1, False))
            self.succ.append(edges)
        self.protected = self._protected()
        self.preds: list[list[int]] = [[] for _ in self.instrs]
        for i, edges in enumerate(self.succ):
            for j, _ in edges:
                if j < len(self.preds):
                    self.preds[j].append(i)

    def reaches(self, start: int, goal: int) -> bool:
        """Whether a path (an exception's to its handler too) leads from instruction
        ``start`` on to ``goal``."""
        seen, todo = {start}, [start]
        while todo:
            i = todo.pop()
            nexts = [j for j, _ in self.succ[i]]
            region = self.region[i]
            if region is not None:
                nexts.append(self._target(region.target))
            for j in nexts:
                if j == goal:
                    return True
                if j not in seen and j < len(self.instrs):
                    seen.add(j)
                    todo.append(j)
        return False

    def _target(self, label: Any) -> int:
        try:
            return self.label_index[label]
        except (KeyError, TypeError):
            raise RewriteError("jump to an unknown label") from None

    def entered_from_outside(self, block: TryBegin) -> bool:
        """Can control reach the first instruction of ``block`` from unprotected code?

        Only such entries need a barrier: inside protected code nothing is
        ever deferred, so nothing can be pending there.
        """
        if not self._user_visible(block):
            return False
        starts = [i for i, region in enumerate(self.region) if region is block]
        if not starts:
            return False
        first = starts[0]
        return first == 0 or any(not self.protected[p] for p in self.preds[first])

    def handler(self, block: TryBegin) -> int:
        return self._target(block.target)

    def _user_visible(self, block: TryBegin) -> bool:
        # A handler that pushes or pops exc_info belongs to the user's code
        # (except, finally, with).  Compiler cleanups that only restore state
        # and re-raise (inlined comprehensions on 3.12+) are transparent.
        i = self.handler(block)
        while i < len(self.instrs):
            name = self.instrs[i].name
            if name in ("PUSH_EXC_INFO", "POP_EXCEPT", "WITH_EXCEPT_START", "CHECK_EXC_MATCH"):
                return True
            if self.instrs[i].is_final():
                return False
            i += 1
        return False

    def _reraise_of(self, block: TryBegin) -> int | None:
        i = self.handler(block)
        while i < len(self.instrs):
            if self.instrs[i].is_final():
                return i if self.instrs[i].name == "RERAISE" else None
            i += 1
        return None

    def _protected(self) -> list[bool]:
        memo: dict[int, bool] = {}

        def visible(block: TryBegin, seen: frozenset[int]) -> bool:
            key = id(block)
            if key not in memo:
                if self._user_visible(block):
                    memo[key] = True
                else:
                    at = self._reraise_of(block)
                    outer = self.region[at] if at is not None else None
                    memo[key] = (outer is not None and key not in seen
                                 and visible(outer, seen | {key}))
            return memo[key]

        return [block is not None and visible(block, frozenset()) for block in self.region]


@dataclass
class CallSite:
    """A CALL whose slot was pushed by call openers: a call site of the user's code."""

    index: int
    roles: tuple[str, ...]
    openers: frozenset[int]
    name: str | None = None  # the global the callee was loaded from, when known
    kwnull: bool = False  # 3.14+: the **kwargs slot of CALL_FUNCTION_EX holds NULL
    append_to: frozenset[str] = frozenset()  # ``L.append(x)`` on a fresh list L
    holds: bool = False  # an operand may be a container holding placeholders
    private: bool = False  # a method of a container this frame built and nobody else saw
    first_escapes: bool = True  # its first argument may be an object others see
    # the locals its first argument may be in, if it may have been handed to calls
    first_aliases: frozenset[str] = frozenset()


@dataclass
class Flow:
    """The result of simulating one code object for one set of deferred sites."""

    cfg: Cfg
    calls: dict[int, CallSite] = field(default_factory=dict)
    resolves: dict[int, list[int]] = field(default_factory=dict)  # index -> depths
    kwnull_openers: set[int] = field(default_factory=set)
    stores_outside: set[int] = field(default_factory=set)  # stores into containers not built here
    lazy_ops: dict[int, int] = field(default_factory=dict)  # pure operator on a placeholder -> arity
    with_starts: dict[int, int] = field(default_factory=dict)  # with-enter -> its expression's start
    in_place_outside: set[int] = field(default_factory=set)  # x += y where x may be outside state
    mutators: set[int] = field(default_factory=set)  # x.append(...) etc. where x may be outside
    # Before a 3.11 comprehension's call, or before a closure is built over a closure
    # cell: the cells whose content may hold placeholders (resolved in place)
    resolve_cells: dict[int, list[str]] = field(default_factory=dict)
    # Closure cells an instruction may change or put a placeholder in: the replay
    # checks there whether a closure holding the cell is alive (see closure_cells)
    cell_changes: dict[int, list[str]] = field(default_factory=dict)
    # index -> depths of the operands it reads that may be objects a deferred call
    # received: the replay checks them against the objects deferred calls own
    touches: dict[int, list[int]] = field(default_factory=dict)
    # local -> the calls that received what it holds as an argument (``SHARED``)
    handed: dict[str, set[int]] = field(default_factory=dict)


def callee_name(val: Val) -> str | None:
    what = val.what
    return what[1] if isinstance(what, tuple) and what[0] == "global" else None


def simulate(cfg: Cfg, ops: Any, deferred: frozenset[int] = frozenset(), *,
             returns_to_caller: bool = False,
             comprehension: Any = None, lazy: frozenset[int] = frozenset(),
             cells: frozenset[str] = frozenset(),
             closure_cells: frozenset[str] = frozenset()) -> Flow:
    """Run the dataflow to a fixed point and record its findings.

    Args:
        cfg: the code's control-flow graph.
        ops: the version module (``xcs._v3XX``).
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
        closure_cells: cells that closures only read (``_outline.closure_cells``):
            tracked like fast locals; resolved before a closure is built over one,
            after which what it holds counts as seen by others.
    """
    sim = _Simulation(cfg, ops, deferred, returns_to_caller, comprehension, lazy, cells,
                      closure_cells)
    sim.run()
    return sim.flow


class _Simulation:
    def __init__(self, cfg: Cfg, ops: Any, deferred: frozenset[int],
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
        step = _Step(self, i, state)
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


class _Step:
    """The transfer function of one instruction from one entry state."""

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
        self._transfer()

    def may_change(self) -> bool:
        """Can this instruction change what one of its operands holds, or a cell?"""
        instr, ops = self.instr, self.sim.ops
        return (instr.name in _CHANGES or instr.name in ("STORE_DEREF", "DELETE_DEREF")
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

    # -- transfer ----------------------------------------------------------
    def _transfer(self) -> None:
        ops = self.sim.ops
        instr = self.instr
        name = instr.name
        if name in ops.CALL_PREFIX:
            self._done([])
            return
        opener = ops.opener(instr)
        if opener is not None:
            self._opener(*opener)
            return
        roles = ops.call_roles(instr)
        if roles is not None:
            self._call(roles)
            return
        if name in _DEREF and self.sim.local_cells:
            cell = getattr(self.arg, "name", self.arg)
            if cell in self.sim.local_cells:
                self._cell(name, cell)
                return
        if (name in ops.CELL_LOADS and type(self.arg) is CellVar
                and self.arg.name in self.sim.closure_cells):
            self._expose(self.arg.name)
            return
        loads = ops.local_loads(instr)
        stores = ops.local_stores(instr)
        if stores is not None:
            self._store(stores)
        if loads is not None:
            for local in loads:
                local = getattr(local, "name", local)  # CellVar in inlined comprehensions
                self.pushed.append(Val(self.locs.get(local, PLAIN), aliases=frozenset({local})))
                if name == "LOAD_FAST_AND_CLEAR":
                    self.locs[local] = PLAIN
            self.effect_known = True
            return
        if stores is not None:
            self._done([])
            return
        if ops.lazy_op(instr) is not None and name != "UNPACK_SEQUENCE":
            self._lazy()
            return
        handler = getattr(self, "_op_" + name, None)
        if handler is not None:
            handler()
        else:
            self._generic()

    def _done(self, pushed: list[Val]) -> None:
        self.pushed = pushed
        self.effect_known = True

    def _generic(self) -> None:
        ops = self.sim.ops
        consumed = ops.count(ops.CONSUMED, self.instr)
        if consumed is None:  # an instruction we have no model for: resolve everything
            consumed = len(self.stack)
        self.consumed = consumed
        base = len(self.stack) - consumed
        items = self._take(consumed)
        kept = ops.count(ops.KEPT, self.instr, 0) or 0
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
        consumed = sim.ops.count(sim.ops.CONSUMED, self.instr)
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

    # -- call openers and calls ---------------------------------------------
    def _opener(self, popped: int, roles: tuple[str, ...]) -> None:
        ops = self.sim.ops
        base = len(self.stack) - popped
        items = self._take(popped)
        callable_val = CLEAN
        if self.instr.name == "LOAD_GLOBAL":
            callable_val = Val(PLAIN, what=("global", self.arg[1]))
        receiver = items[0] if items else None
        method = ops.method_name(self.instr)
        if receiver is not None and method is not None and receiver.bits & PH and popped == 1:
            # ``r.strip()`` on a placeholder: the method is an access of the result.
            if self.sim.recording:
                self.sim.flow.lazy_ops[self.i] = 1
            if self.i in self.sim.lazy:
                self._escape(receiver)
                slot, bound = Val(SLOT_BITS, openers=frozenset({self.i})), Val(PLAIN | PH)
                self._done([slot if role == "slot" else bound for role in roles])
                return
        if (receiver is not None and method == "append"
                and not receiver.bits & (ESC | NOTLIST | FILTERED) and popped == 1):
            callable_val = Val(PLAIN, aliases=receiver.aliases, what=APPEND)
        elif (receiver is not None and method is not None
              and not receiver.bits & (ESC | FILTERED)):
            for k, val in enumerate(items):
                self._observe(base + k, val)
            callable_val = Val(PLAIN, what=_PRIVATE)
        else:
            if (receiver is not None and method in MUTATORS and receiver.bits & ESC
                    and self.sim.recording):
                self.sim.flow.mutators.add(self.i)
            for k, val in enumerate(items):
                self._observe(base + k, val)
        slot = Val(SLOT_BITS, openers=frozenset({self.i}))
        self._done([slot if role == "slot" else callable_val for role in roles])

    def _call(self, roles: tuple[str, ...]) -> None:
        sim = self.sim
        n = len(roles)
        base = len(self.stack) - n
        items = self._take(n)
        by_role = dict(zip(roles, items))
        slot = by_role["slot"]
        if slot.openers and slot.bits & OTHER:
            raise RewriteError(f"a call slot is NULL on some paths only (instruction {self.i})")
        if not slot.openers:  # not a call site: decorator, with-exit, comprehension call
            for k, val in enumerate(items):
                self._observe(base + k, val)
            result = CLEAN
            what = slot.what
            code = what[1] if isinstance(what, tuple) and what[0] == "func" else None
            if sim.comprehension is not None and code is not None:
                result = sim.comprehension(code)
            if sim.cells:
                self._enter_closure(code)
            self._done([result])
            return
        site = CallSite(self.i, roles, slot.openers, name=callee_name(by_role["callable"]))
        kw = by_role.get("kwstar")
        if kw is not None and kw.openers:
            if kw.bits & OTHER:
                raise RewriteError(f"**kwargs slot is NULL on some paths only ({self.i})")
            site.kwnull = True
            if sim.recording:
                sim.flow.kwnull_openers.update(kw.openers)
        callee = by_role["callable"]
        deferred = self.i in sim.deferred
        site.holds = any(v.bits & (LCT | TCT) for r, v in by_role.items()
                         if r not in ("slot", "callable", "kwnames"))
        site.holds = site.holds or any(items[k].bits & (LCT | TCT) for k, r in enumerate(roles)
                                       if r == "arg")
        if callee.what == APPEND and roles.count("arg") == 1 and len(roles) == 3:
            site.append_to = callee.aliases
        site.private = callee.what in (APPEND, _PRIVATE)
        first = roles.index("arg") if "arg" in roles else -1
        if first >= 0:
            site.first_escapes = bool(items[first].bits & SHARED)
            if items[first].bits & ESC:  # handed to calls on some path here (``handed``)
                site.first_aliases = items[first].aliases
        if first >= 0 and not self._filter(callee):
            first = -1
        for k, (role, val) in enumerate(zip(roles, items)):
            pos = base + k
            if role in ("slot", "kwnames") or (role == "kwstar" and site.kwnull):
                continue
            if k == first:  # the list an outlined filter appends to: it does nothing else
                if self.touching and (val.bits & ESC or ~val.bits & (NOTLIST | NOTDICT)):
                    self.touch.append(self._depth_of(pos))  # a deferred call may own it
                for local in val.aliases:
                    self.locs[local] = self.locs.get(local, PLAIN) | FILTERED
                continue
            if role == "callable":
                if deferred and val.bits & PH and not val.bits & (LCT | TCT):
                    self._escape(val)  # the method of a result: the deferral waits for it
                elif val.what != APPEND:
                    self._observe(pos, val, touch=not deferred)
            elif deferred and role in ("star", "kwstar") and val.bits & PH:
                self._observe(pos, val, touch=False)  # handed to the call, resolved first
            elif deferred:
                # Handed to the deferred call, which resolves it.  A *args or
                # **kwargs operand is unpacked by CALL_FUNCTION_EX itself, so
                # it must be a real iterable (its items may be placeholders).
                self._escape(val, handed=role == "arg")
            elif site.append_to and not val.bits & LCT:
                if val.bits & (PH | TCT):  # a tuple holding one is rebuilt in place too
                    held = LCT | (TLCT if val.bits & TCT else 0)
                    for local in site.append_to:
                        self.locs[local] = self.locs.get(local, PLAIN) | held
                self._escape(val)
            else:  # an argument: seen by this call only, unless the replay makes it here
                self._observe(pos, val, handed=role == "arg")
        if sim.recording:
            sim.flow.calls[self.i] = site
        self._done([Val(PLAIN | PH) if deferred else CLEAN])

    def _filter(self, callee: Val) -> bool:
        """Is the callable an outlined filter (``_filters``), loaded as a constant?"""
        if not 0 <= callee.origin < len(self.sim.cfg.instrs):
            return False
        instr = self.sim.cfg.instrs[callee.origin]
        return (instr.name == "LOAD_CONST" and type(instr.arg) is FunctionType
                and id(instr.arg.__code__) in WRITERS)

    # -- locals --------------------------------------------------------------
    def _cell(self, name: str, cell: str) -> None:
        """A cell that only comprehensions read, or a closure cell: like a fast local."""
        if name != "LOAD_DEREF":
            self.changes.add(cell)
        if name == "LOAD_DEREF":
            self._done([Val(self.locs.get(cell, PLAIN), aliases=frozenset({cell}))])
        elif name == "STORE_DEREF":
            self._store((cell,))
            self._done([])
        else:  # DELETE_DEREF
            self.locs[cell] = PLAIN
            self._done([])

    def _expose(self, cell: str) -> None:
        """A closure cell loaded as a cell, to build a closure: from now on others may
        read what it holds, so it must hold no placeholder (resolved first) and it
        counts as seen by others."""
        bits = self.locs.get(cell, PLAIN)
        if bits & TAINT and self.sim.recording:
            self.sim.flow.resolve_cells.setdefault(self.i, []).append(cell)
        self.locs[cell] = (bits & ~(TAINT | TLCT | ITEMS)) | ESC | SHARED
        self._done([Val()])

    def _enter_closure(self, code: CodeType | None) -> None:
        """A call that may run a comprehension reading cells: resolve those first.

        The comprehension reads a cell as outside state, so what it finds there
        must be placeholder-free; it may also rebind the cell (``:=``), so the
        cell's content is unknown afterwards.
        """
        names = self.sim.cells if code is None else self.sim.cells & set(code.co_freevars)
        for cell in sorted(names):
            if self.locs.get(cell, PLAIN) & TAINT and self.sim.recording:
                self.sim.flow.resolve_cells.setdefault(self.i, []).append(cell)
            self.locs[cell] = PLAIN

    def _store(self, names: tuple[str, ...]) -> None:
        base = len(self.stack) - len(names)
        items = self._take(len(names))
        for k, (local, val) in enumerate(zip(names, reversed(items))):
            local = getattr(local, "name", local)
            pos = base + len(items) - 1 - k
            bits = val.bits
            if bits & TCT:  # a tuple cannot be resolved in place later
                self.resolve.append(self._depth_of(pos))
                bits &= ~TCT
            others = val.aliases - {local}
            if others:
                self._escape(val)
                bits |= ESC | SHARED
            self.locs[local] = bits

    def _op_DELETE_FAST(self) -> None:
        self.locs[getattr(self.arg, "name", self.arg)] = PLAIN
        self._done([])

    def _op_LOAD_GLOBAL(self) -> None:
        self._generic()
        name = self.arg[1] if isinstance(self.arg, tuple) else self.arg
        self._done([Val(PLAIN, what=("global", name))])

    def _op_LOAD_CONST(self) -> None:
        arg = self.arg
        self._done([Val(PLAIN, what=("code", arg)) if isinstance(arg, CodeType)
                    else Val(IMMUTABLE)])

    def _op_MAKE_FUNCTION(self) -> None:
        top = self.stack[-1] if self.stack else CLEAN
        self._generic()
        what = top.what
        func = ("func", what[1]) if isinstance(what, tuple) and what[0] == "code" else None
        self._done([Val(PLAIN, what=func)])

    def _op_SET_FUNCTION_ATTRIBUTE(self) -> None:
        func = self.stack[-1]
        self._generic()
        self._done([func])

    # -- stack shuffles --------------------------------------------------------
    def _op_COPY(self) -> None:
        n = self.arg
        val = self.stack[-n]
        if not val.bits & ESC:  # two references to a fresh container: no longer fresh
            self._escape(val)
            val = Val(val.bits | ESC | SHARED, val.openers, val.aliases, val.what, val.origin)
            self.stack[-n] = val
        self._done([val])

    def _op_SWAP(self) -> None:
        n = self.arg
        self.stack[-1], self.stack[-n] = self.stack[-n], self.stack[-1]
        self._done([])

    def _op_POP_TOP(self) -> None:
        self._take(1)
        self._done([])

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

    def _op_BUILD_LIST(self) -> None:
        self._build(NOTDICT | OTHER, keyed=False)

    def _op_BUILD_TUPLE(self) -> None:
        self._build(PLAIN, keyed=False)

    def _op_BUILD_MAP(self) -> None:
        self._build(NOTLIST | OTHER, keyed=True)

    def _op_BUILD_CONST_KEY_MAP(self) -> None:
        keys = self.stack[-1]
        base = len(self.stack) - 1
        self._take(1)
        self._observe(base, keys)
        self._build(NOTLIST | OTHER, keyed=False)

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

    def _op_LIST_APPEND(self) -> None:
        base = len(self.stack) - 1
        (value,) = self._take(1)
        self.stack.append(value)  # put back while the container is inspected
        self._add_to(self.arg + 1, [(base, value)], NOTLIST)
        self.stack.pop()
        self._done([])

    def _op_MAP_ADD(self) -> None:
        base = len(self.stack) - 2
        key, value = self.stack[-2], self.stack[-1]
        self._observe(base, key)
        self._add_to(self.arg + 2, [(base + 1, value)], NOTDICT)
        self._take(2)
        self._done([])

    def _op_LIST_EXTEND(self) -> None:
        base = len(self.stack) - 1
        (value,) = self._take(1)
        self._observe(base, value)
        self._done([])

    def _op_STORE_SUBSCR(self) -> None:
        base = len(self.stack) - 3
        value, container, key = self.stack[-3], self.stack[-2], self.stack[-1]
        self._observe(base + 2, key)
        if not container.bits & ESC and not value.bits & LCT:
            if value.bits & (PH | TCT):
                held = LCT | (TLCT if value.bits & TCT else 0)
                for local in container.aliases:
                    self.locs[local] = self.locs.get(local, PLAIN) | held
            self._escape(value)
        else:
            self._observe(base, value)
            self._observe(base + 1, container)
            if self.sim.recording:
                self.sim.flow.stores_outside.add(self.i)
        self._take(3)
        self._done([])

    def _op_GET_ITER(self) -> None:
        """``for r in results:`` over a list the body built that holds placeholders:
        the loop gets them one by one, as they are (nothing waits for all of them).
        Only for an iterator that a FOR_ITER takes at once: one handed elsewhere (a
        3.11 comprehension) is a real iterator whose items must be values."""
        val = self.stack[-1]
        nxt = self.i + 1
        loop = nxt < len(self.sim.cfg.instrs) and self.sim.cfg.instrs[nxt].name == "FOR_ITER"
        listed = not val.bits & NOTLIST
        if not loop or not val.bits & LCT or val.bits & (PH | TCT) or not (
                listed or not val.bits & NOTDICT):
            self._generic()
            return
        base = len(self.stack) - 1
        self._take(1)
        self.consumed, self.kept_items = 1, []
        if self.touching:
            self.touch.append(self._depth_of(base))
        # A list's items may be placeholders; a dict's keys never are.
        self.fill = Val(PLAIN | ITEMS | (val.bits & TLCT)) if listed else CLEAN

    def _op_FOR_ITER(self) -> None:
        self._generic()
        held = [v for v in self.kept_items if v.bits & ITEMS]
        if held:
            self.fill = Val(PLAIN | PH | (TCT if any(v.bits & TLCT for v in held) else 0))

    def _op_CONTAINS_OP(self) -> None:
        """``key in d`` on a dict the body built reads its keys, never a placeholder."""
        base = len(self.stack) - 2
        key, container = self.stack[-2], self.stack[-1]
        if container.bits & (NOTDICT | TCT | PH):  # not surely a dict
            self._generic()
            return
        self._take(2)
        self._observe(base, key)
        if self.touching:
            self.touch.append(self._depth_of(base + 1))
        self._done([Val(IMMUTABLE)])

    def _op_UNPACK_SEQUENCE(self) -> None:
        base = len(self.stack) - 1
        if self.stack[-1].bits & PH:
            if self.sim.recording:
                self.sim.flow.lazy_ops[self.i] = 1
            if self.i in self.sim.lazy:  # ``a, b = f(x)``: each name a placeholder
                (val,) = self._take(1)
                self._escape(val)
                self._done([Val(PLAIN | PH)] * self.arg)
                return
        (val,) = self._take(1)
        if val.bits & PH:
            self.resolve.append(self._depth_of(base))
        if self.touching and (val.bits & ESC or ~val.bits & (NOTLIST | NOTDICT)):
            self.touch.append(self._depth_of(base))
        self._escape(val)
        element = Val(PLAIN | PH) if val.bits & (LCT | TCT) else CLEAN
        self._done([element] * self.arg)

    def _op_YIELD_VALUE(self) -> None:
        """A generator expression drained by the body hands what it yields back: a
        placeholder (or a tuple holding one) reaches the drain, which resolves it."""
        if not self.sim.returns_to_caller:
            self._generic()
            return
        base = len(self.stack) - 1
        (val,) = self._take(1)
        if val.bits & LCT:
            self._observe(base, val)
        else:
            self._escape(val)
        self._done([CLEAN])  # what the consumer sends back in

    # -- returns -------------------------------------------------------------------
    def _op_RETURN_VALUE(self) -> None:
        base = len(self.stack) - 1
        (val,) = self._take(1)
        if self.sim.returns_to_caller:
            self._escape(val)
        else:
            self._observe(base, val)
        self._done([])
