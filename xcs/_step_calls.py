"""One instruction's transfer: call openers, calls, and locals and cells.

Which CALL consumes the slot each opener pushed, what a call hands its callee
(and so what it must resolve first), and how stores and cells carry what may
be placeholders (``StackStep`` in ``_step``; the opcodes in ``_transfer``).
"""

from __future__ import annotations

from types import CodeType, FunctionType

from xcs._abstract import (
    APPEND,
    CLEAN,
    ESC,
    FILTERED,
    ITEMS,
    LCT,
    NOTDICT,
    NOTLIST,
    OTHER,
    PH,
    PLAIN,
    PRIVATE,
    SHARED,
    SLOT_BITS,
    TAINT,
    TCT,
    TLCT,
    CallSite,
    Val,
    callee_name,
)
from xcs._codes import WRITERS
from xcs._errors import RewriteError
from xcs._owners import MUTATORS
from xcs._step import StackStep


class CallStep(StackStep):
    """Call openers and calls, stores, and the cells tracked like locals."""

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
            callable_val = Val(PLAIN, what=PRIVATE)
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
        kw = by_role.get("kwstar")
        kwnull = kw is not None and bool(kw.openers)
        if kw is not None and kwnull:
            if kw.bits & OTHER:
                raise RewriteError(f"**kwargs slot is NULL on some paths only ({self.i})")
            if sim.recording:
                sim.flow.kwnull_openers.update(kw.openers)
        callee = by_role["callable"]
        deferred = self.i in sim.deferred
        holds = any(v.bits & (LCT | TCT) for r, v in by_role.items()
                    if r not in ("slot", "callable", "kwnames"))
        holds = holds or any(items[k].bits & (LCT | TCT) for k, r in enumerate(roles) if r == "arg")
        first = roles.index("arg") if "arg" in roles else -1
        site = CallSite(
            self.i, roles, slot.openers, name=callee_name(callee), kwnull=kwnull, holds=holds,
            append_to=(callee.aliases if callee.what == APPEND and roles.count("arg") == 1
                       and len(roles) == 3 else frozenset()),
            private=callee.what in (APPEND, PRIVATE),
            first_escapes=first < 0 or bool(items[first].bits & SHARED),
            # the locals of its first argument, if handed to calls on some path here (``handed``)
            first_aliases=(items[first].aliases if first >= 0 and items[first].bits & ESC
                           else frozenset()))
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
