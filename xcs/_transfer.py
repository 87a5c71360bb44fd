"""One instruction's transfer: the rules per opcode.

``Step`` is what the simulation runs for each instruction and entry state
(``_flow``): it dispatches to an opener, a call, a store or load (``_step_calls``),
a lazy operator (``_step``), or a rule of its own for the opcodes whose operands
it must tell apart (containers, iteration, unpacking, returns); any other
opcode gets the generic transfer.
"""

from __future__ import annotations

from types import CodeType
from typing import TYPE_CHECKING

from bytecode.instr import CellVar

from xcs._abstract import (
    CLEAN,
    ESC,
    IMMUTABLE,
    ITEMS,
    LCT,
    NOTDICT,
    NOTLIST,
    OTHER,
    PH,
    PLAIN,
    SHARED,
    TCT,
    TLCT,
    State,
    Val,
)
from xcs._step_calls import CallStep

if TYPE_CHECKING:
    from xcs._flow import _Simulation

_DEREF = frozenset({"LOAD_DEREF", "STORE_DEREF", "DELETE_DEREF"})


class Step(CallStep):
    """The transfer function of one instruction from one entry state."""

    def __init__(self, sim: _Simulation, i: int, state: State) -> None:
        super().__init__(sim, i, state)
        self._transfer()

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
            clears = ops.clears_local(instr)
            for local in loads:
                local = getattr(local, "name", local)  # CellVar in inlined comprehensions
                self.pushed.append(Val(self.locs.get(local, PLAIN), aliases=frozenset({local})))
                if clears:
                    self.locs[local] = PLAIN
            self.effect_known = True
            return
        if stores is not None:
            self._done([])
            return
        if ops.lazy_op(instr) is not None and name != "UNPACK_SEQUENCE":
            self._lazy()
            return
        if name in ops.RETURNS_TOP:
            self._returns_top()
            return
        if name in ops.KEY_TUPLE_MAPS:
            self._key_tuple_map()
            return
        handler = getattr(self, "_op_" + name, None)
        if handler is not None:
            handler()
        else:
            self._generic()

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

    def _returns_top(self) -> None:
        """The instruction gives back its top operand (a function with its defaults set)."""
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

    def _op_BUILD_LIST(self) -> None:
        self._build(NOTDICT | OTHER, keyed=False)

    def _op_BUILD_TUPLE(self) -> None:
        self._build(PLAIN, keyed=False)

    def _op_BUILD_MAP(self) -> None:
        self._build(NOTLIST | OTHER, keyed=True)

    def _key_tuple_map(self) -> None:
        """A dict of the values below under the keys of the tuple on top (``{"a": x}``)."""
        keys = self.stack[-1]
        base = len(self.stack) - 1
        self._take(1)
        self._observe(base, keys)
        self._build(NOTLIST | OTHER, keyed=False)

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
