"""Rewrite stage: one code object that holds the plain body and its instrumented copies.

A jitted function keeps a single frame.  Its code starts with a prologue
that passes the bound arguments to a dispatch hook, which answers which copy
of the body to run: the untouched plain body, a *trace* body that records
each call, or a *replay* body in which the chosen call sites are deferred to
an executor and their placeholders resolved where the body observes them.
Because every copy runs in the function's own frame, ``super()``,
``sys._getframe``, warnings' stacklevel and recursion depth are those of the
plain function, and sites that are not deferred run their original
instructions (no hook, no extra frame).

Hooks are passed in by the later stages (``Hooks``); this module only places
them.  Everything version-specific comes from ``xcs._compat.ops``.
"""

from __future__ import annotations

import dataclasses
import sys
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import CodeType, FunctionType
from typing import Any, Protocol

from bytecode import Bytecode, Instr, Label
from bytecode.instr import UNSET, CellVar, InstrLocation, TryBegin, TryEnd

from xcs import _compat
from xcs._codes import WRITERS
from xcs._errors import RewriteError
from xcs._flow import LCT, NOTDICT, NOTLIST, OTHER, CallSite, Cfg, Flow, Val, simulate
from xcs._outline import Outlined, outline
from xcs._outline import closure_cells as _closure_cells
from xcs._outline import comprehension_cells as _comprehension_cells
from xcs._owners import CHECKED_GENERATORS
from xcs._provenance import fed_by as _fed_by

# The version module (see _compat); the rewrite stage is only used where it exists.
ops: Any = _compat.ops
UNSUPPORTED = _compat.UNSUPPORTED

__all__ = ["Hooks", "OpSite", "Program", "RewriteError", "Site", "Variant"]

# Code that hands what it makes back to the body: a 3.11 comprehension returns
# it, a generator expression yields it.
_RUN_IN_PLACE = frozenset({"comprehension", "genexpr"})
# Builtins that read the calling frame: a body that calls them could see a
# placeholder in its locals, so it is never replayed.
FRAME_READERS = frozenset({"locals", "vars", "eval", "exec", "dir"})
# Builtins whose call must stay in the body's frame and thread, in order.
IN_PLACE = FRAME_READERS | {"super", "globals", "print", "input", "breakpoint", "__import__"}
# Instructions that change state outside the frame: before them the body
# waits for the calls it deferred, so that when one of those fails, the body
# stops where the plain function would have stopped.
SIDE_EFFECTS = frozenset({"STORE_ATTR", "DELETE_ATTR", "STORE_GLOBAL", "DELETE_GLOBAL",
                          "STORE_NAME", "DELETE_NAME", "STORE_DEREF", "DELETE_DEREF",
                          "DELETE_SUBSCR", "STORE_SLICE", "IMPORT_NAME"})


@dataclass(frozen=True, slots=True)
class Site:
    """One call site of the jitted function (or of code nested in it)."""

    id: int
    code: str  # qualified name of the code object holding the site
    filename: str
    line: int
    nested: bool  # in a lambda, inner function or generator expression
    protected: bool  # inside the function's own try/except/with
    append: bool  # ``L.append(x)`` on a list L that the body built
    in_place: bool = False  # calls a builtin such as super() that must run in this frame
    scan: bool = True  # its arguments may be containers holding placeholders
    comprehension: bool = False  # in a comprehension that is a function of its own (3.11)
    genexpr: bool = False  # in a generator expression of the body: deferred only while a
    # builtin that consumes it whole (``"".join``, ``sum``, ``list`` ...) drains it
    outside: bool = False  # a mutating method (``append``...) of an object others may see
    writes: bool = False  # the call of an outlined filter (``_filters``): it fills a list
    # for such a call: the sites whose calls received that list; it may be a continuation
    # only if a replay defers or continues every one of them (``_analyze``)
    handed_to: frozenset[int] = frozenset()
    private: bool = False  # a method of a container the body built that nobody else saw

    @property
    def deferrable(self) -> bool:
        """Whether replay may defer this site (before looking at what it called)."""
        return not (self.nested or self.protected or self.append or self.in_place)

    def where(self) -> str:
        return f"{self.filename.rsplit('/', 1)[-1]}:{self.line}"


@dataclass(frozen=True, slots=True)
class OpSite:
    """An operator (``a + b``, an f-string part) or an access (``r.choices``, ``r[0]``,
    ``a, b = r``, the method of ``r.strip()``) that may meet a placeholder."""

    id: int
    code: str
    filename: str
    line: int
    op: str
    kind: str = "operator"  # "operator", "access" or "unpack"
    arity: int = 0  # for "unpack": how many names
    inner: bool = False  # in a comprehension (3.11) or generator expression of the body

    def where(self) -> str:
        return f"{self.filename.rsplit('/', 1)[-1]}:{self.line}"


class Hooks(Protocol):
    """Callables that the trace and replay stages place into rewritten code."""

    @property
    def use(self) -> Callable[[Any], Any]: ...
    @property
    def resolve(self) -> Callable[[Any], Any]: ...
    @property
    def use_resolve(self) -> Callable[[Any], Any]: ...
    @property
    def first_arg(self) -> Callable[[Any], Any]: ...
    @property
    def barrier(self) -> Callable[[Any], Any]: ...
    @property
    def finish(self) -> Callable[[Any], Any]: ...
    @property
    def abort(self) -> Callable[[BaseException], BaseException]: ...
    @property
    def guard(self) -> Callable[[Any], Any]: ...
    @property
    def settle(self) -> Callable[[Any], Any]: ...
    @property
    def touch(self) -> Callable[..., Any]: ...
    @property
    def touch_deep(self) -> Callable[..., Any]: ...
    @property
    def touch_call(self) -> Callable[..., Any]: ...
    @property
    def owned(self) -> object: ...

    def before(self, site: int) -> Callable[..., Any]: ...
    def after(self, site: int) -> Callable[[Any], Any]: ...
    def wrap(self, site: int) -> Callable[[Any], Any]: ...
    def wrap_continuation(self, site: int) -> Callable[[Any], Any]: ...
    def wrap_drain(self, site: int) -> Callable[[Any], Any]: ...
    def wrap_first(self, site: int) -> Callable[[Any], Any]: ...
    def op_before(self, op: int) -> Callable[..., Any]: ...
    def op_after(self, op: int) -> Callable[[Any], Any]: ...
    def lazy(self, op: int) -> Callable[[tuple[Any, ...]], Any]: ...
    def site_switch(self, site: int) -> object: ...
    def op_switch(self, op: int) -> object: ...


@dataclass(frozen=True)
class Variant:
    """Which copy of the body to build: ``trace``, or ``replay`` with deferred sites
    (of which ``continued`` run as continuations: when their inputs arrive, where
    they arrive) and the op sites that may produce placeholders, or ``first``: the
    trace that may defer the calls at ``deferred`` sites of callees known to be slow."""

    mode: str
    deferred: frozenset[int] = frozenset()
    lazy: frozenset[int] = frozenset()
    continued: frozenset[int] = frozenset()
    drains: frozenset[int] = frozenset()  # calls that drain a generator expression first
    settles: frozenset[int] = frozenset()  # calls before which continuations settle


_TRACE = Variant("trace")


@dataclass(eq=False)
class _Unit:
    """One code object of the function: the main code or a nested one."""

    code: CodeType
    kind: str  # "main", "comprehension" (3.11, runs in place) or "nested"
    bytecode: Bytecode
    cfg: Cfg
    flow: Flow  # simulation with nothing deferred: the call sites
    site_ids: dict[int, int] = field(default_factory=dict)  # CALL index -> site id
    op_ids: dict[int, int] = field(default_factory=dict)  # operator index -> op site id
    children: dict[int, _Unit] = field(default_factory=dict)  # LOAD_CONST index -> unit
    cells: frozenset[str] = frozenset()  # cells only comprehensions read (3.11)
    closure_cells: frozenset[str] = frozenset()  # cells closures only read (_outline)


def _load(code: CodeType) -> Bytecode:
    return Bytecode.from_code(code, conserve_exception_block_stackdepth=True)


class Program:
    """A function's code, analysed once, from which body copies are built."""

    def __init__(self, fn: FunctionType) -> None:
        if ops is None:
            raise RewriteError(UNSUPPORTED or "unsupported interpreter")
        self.fn = fn
        self.sites: list[Site] = []
        self.op_sites: list[OpSite] = []
        self._op_fns: list[Callable[..., Any]] = []
        self.notes: list[str] = []  # nested code left as it is, and why
        self._fed_by: dict[int, frozenset[int]] | None = None
        # The trace and replay bodies call a helper in place of each ``try`` that only
        # computes a value (``_outline``); the plain body keeps the statement.
        try:
            outlined = outline(fn)
        except Exception as exc:  # a failure of its own never turns the function plain
            outlined = Outlined(None, (), (f"its try statements run as written: "
                                           f"{type(exc).__name__}: {exc}",))
        self.outlines = outlined.outlines
        self.notes += outlined.notes
        self._plain_items = list(_load(fn.__code__)) if outlined.code is not None else None
        self.main = self._analyse(outlined.code or fn.__code__, "main", protected=False)
        self.frame_reads = any(
            instr.name in ("LOAD_GLOBAL", "LOAD_NAME")
            and (instr.arg[1] if isinstance(instr.arg, tuple) else instr.arg) in FRAME_READERS
            for instr in self.main.cfg.instrs)
        self._prefix_len = self._find_prefix()

    @classmethod
    def from_function(cls, fn: FunctionType) -> Program:
        """Analyse ``fn``; raises RewriteError when its code cannot be rewritten."""
        try:
            return cls(fn)
        except RewriteError:
            raise
        except Exception as exc:
            raise RewriteError(f"{type(exc).__name__}: {exc}") from exc

    # -- analysis ----------------------------------------------------------
    def _analyse(self, code: CodeType, kind: str, protected: bool) -> _Unit:
        bc = _load(code)
        cfg = Cfg(bc, ops)
        cells = _comprehension_cells(code) if kind == "main" else frozenset()
        closure = _closure_cells(code) if kind == "main" else frozenset()
        flow = simulate(cfg, ops, returns_to_caller=kind in _RUN_IN_PLACE, cells=cells,
                        closure_cells=closure)
        unit = _Unit(code, kind, bc, cfg, flow, cells=cells, closure_cells=closure)
        writers = {j for i, instr in enumerate(cfg.instrs)  # an outlined filter's call: its
                   if instr.name == "LOAD_CONST" and type(instr.arg) is FunctionType  # slot
                   and id(instr.arg.__code__) in WRITERS for j in (i - 1, i + 1)}
        for index in sorted(flow.calls):
            call = flow.calls[index]
            instr = cfg.instrs[index]
            line = instr.lineno if isinstance(instr.lineno, int) else code.co_firstlineno
            site = Site(len(self.sites), code.co_qualname, code.co_filename, line,
                        nested=kind == "nested",
                        protected=protected or cfg.protected[index],
                        append=bool(call.append_to), in_place=call.name in IN_PLACE,
                        comprehension=kind == "comprehension", genexpr=kind == "genexpr",
                        # a filter of a list others may see changes outside state too
                        outside=bool(call.openers & flow.mutators) or bool(
                            call.openers & writers and call.first_escapes),
                        writes=bool(call.openers & writers), private=call.private)
            unit.site_ids[index] = site.id
            self.sites.append(site)
        for index, call in flow.calls.items():  # what a filter's list was handed to
            site = self.sites[unit.site_ids[index]]
            if site.writes:  # by a call the filter may run after (-1: not a site)
                self.sites[site.id] = dataclasses.replace(site, handed_to=frozenset(
                    unit.site_ids.get(j, -1) for name in call.first_aliases
                    for j in flow.handed.get(name, ()) if j != index and cfg.reaches(j, index)))
        if kind != "nested":  # operators that placeholders can reach when all is deferred
            deferred = frozenset(i for i, s in unit.site_ids.items() if self.sites[s].deferrable)
            lazy: frozenset[int] = frozenset()
            while True:  # an operator's placeholder result may reach another operator
                reach = simulate(cfg, ops, deferred, returns_to_caller=kind in _RUN_IN_PLACE,
                                 comprehension=_may_hold_placeholders, lazy=lazy, cells=cells,
                                 closure_cells=closure)
                found = frozenset(i for i in reach.lazy_ops
                                  if not (protected or cfg.protected[i]))
                if found <= lazy:
                    break
                lazy |= found
            for index, sid in unit.site_ids.items():  # with everything deferred, the most
                most = reach.calls.get(index)       # containers can hold placeholders
                if most is not None and not most.holds:
                    self.sites[sid] = dataclasses.replace(self.sites[sid], scan=False)
            for index in sorted(lazy):
                instr = cfg.instrs[index]
                line = instr.lineno if isinstance(instr.lineno, int) else code.co_firstlineno
                op_kind = ("operator" if ops.pure_op(instr) is not None else
                           "unpack" if instr.name == "UNPACK_SEQUENCE" else "access")
                op = OpSite(len(self.op_sites), code.co_qualname, code.co_filename, line,
                            _op_text(instr) if op_kind == "access" else
                            str(getattr(instr.arg, "name", instr.name)).lower(),
                            op_kind, ops.arg(instr) if op_kind == "unpack" else 0,
                            kind in _RUN_IN_PLACE)
                unit.op_ids[index] = op.id
                self.op_sites.append(op)
                self._op_fns.append(ops.lazy_op(instr))
        for index, instr in enumerate(cfg.instrs):
            if instr.name == "LOAD_CONST" and isinstance(instr.arg, CodeType):
                child = instr.arg
                child_kind = ("comprehension" if kind != "nested" and child.co_name in ops.COMPREHENSIONS
                              else "genexpr" if kind == "main" and child.co_name == "<genexpr>"
                              and not (protected or cfg.protected[index])
                              else "nested")
                try:
                    unit.children[index] = self._analyse(
                        child, child_kind, protected or cfg.protected[index])
                except RewriteError as exc:
                    self.notes.append(f"{child.co_qualname} is not traced: {exc}")
        return unit

    def fed_by(self) -> dict[int, frozenset[int]]:
        """Site -> the sites of the same code whose results may reach its operands
        (``_provenance``); worked out on first use."""
        if self._fed_by is None:
            found: dict[int, frozenset[int]] = {}
            todo = [self.main]
            while todo:
                unit = todo.pop()
                todo.extend(unit.children.values())
                ids = unit.site_ids
                for index, sources in _fed_by(unit.cfg, ops).items():
                    if index in ids:
                        found[ids[index]] = frozenset(ids[j] for j in sources if j in ids)
            self._fed_by = found
        return self._fed_by

    def first_sites(self) -> frozenset[int]:
        """The sites whose calls a first call may defer (``Variant("first")``): those a
        replay could defer whatever its trial saw.  Not a generator expression's (a
        drain decides), a filter's or a mutator's of what others may see."""
        return frozenset(s.id for s in self.sites if s.deferrable and not (
            s.genexpr or s.outside or s.writes))

    @property
    def accesses(self) -> frozenset[int]:
        """The op sites that read a part of their operand (not pure operators)."""
        return frozenset(op.id for op in self.op_sites if op.kind != "operator")

    def op_function(self, op: int) -> Callable[..., Any]:
        """The plain computation of operator site ``op`` (from its instruction)."""
        fn = self._op_fns[op]
        return fn

    def _find_prefix(self) -> int:
        for pos, item in enumerate(self.main.bytecode):
            if isinstance(item, Instr) and item.name == "RESUME":
                return pos + 1
        raise RewriteError("no RESUME instruction")

    def __repr__(self) -> str:
        deferrable = sum(s.deferrable for s in self.sites)
        return f"Program({self.fn.__qualname__!r}, {len(self.sites)} sites, {deferrable} deferrable)"

    def as_text(self, variant: Variant | None = None) -> str:
        """The sites, and the body rewritten for ``variant`` (hooks shown by name)."""
        lines = [repr(self)]
        for s in self.sites:
            flags = [name for name in ("nested", "protected", "append", "in_place")
                     if getattr(s, name)]
            lines.append(f"  site {s.id} {s.code} line {s.line - self.fn.__code__.co_firstlineno:+d}"
                         + (f" ({', '.join(flags)})" if flags else ""))
        for op in self.op_sites:
            lines.append(f"  op {op.id} {op.code} line {op.line - self.fn.__code__.co_firstlineno:+d}"
                         f" {op.op}")
        if variant is not None:
            body = list(self.main.bytecode)[self._prefix_len:]
            items = self._emit(self.main, body, variant, _NamedHooks(), self._prefix_len)
            lines.append(f"{variant.mode} body:")
            lines += _listing(items)
        return "\n".join(lines)

    # -- building ----------------------------------------------------------
    def combine(self, variants: list[Variant], dispatch: Callable[[tuple[Any, ...]], int],
                hooks: Hooks) -> CodeType:
        """The function's code with the plain body and one body per variant.

        ``dispatch(params)`` receives the bound parameters as a tuple and
        returns 0 for the plain body or ``k`` for ``variants[k - 1]``.
        """
        try:
            return self._combine(variants, dispatch, hooks)
        except RewriteError:
            raise
        except Exception as exc:
            raise RewriteError(f"{type(exc).__name__}: {exc}") from exc

    def _combine(self, variants: list[Variant], dispatch: Callable[..., int],
                 hooks: Hooks) -> CodeType:
        main = self.main
        items = list(main.bytecode)
        prefix, body = items[:self._prefix_len], items[self._prefix_len:]
        plain = body
        if self._plain_items is not None:  # the body before outlining
            resume = next(i for i, x in enumerate(self._plain_items)
                          if isinstance(x, Instr) and x.name == "RESUME")
            plain = self._plain_items[resume + 1:]
        loc = _location(prefix)
        # The prologue has no line number: a tracer must not see a line event on
        # the `def` line that the plain function does not have.
        nowhere = InstrLocation(None, None, None, None)
        out: list[Any] = list(prefix)
        out += self._load_params(nowhere)
        out += ops.apply(dispatch, nowhere)
        starts = [Label() for _ in variants]
        for k, start in enumerate(starts, start=1):
            out += [Instr("COPY", 1, location=nowhere), Instr("LOAD_CONST", k, location=nowhere),
                    Instr("IS_OP", 0, location=nowhere), ops.jump_forward_if_true(start, nowhere)]
        out.append(Instr("POP_TOP", location=nowhere))
        out += _clone(plain)
        for start, variant in zip(starts, variants):
            out.append(start)
            copy = [Instr("POP_TOP", location=nowhere)]
            copy += self._emit(main, body, variant, hooks, offset=self._prefix_len)
            out += _catch_all(copy, hooks.abort, loc)
        return _assemble(main.bytecode, out)

    def _load_params(self, loc: Any) -> list[Instr]:
        code = self.fn.__code__
        n = code.co_argcount + code.co_kwonlyargcount
        n += bool(code.co_flags & 0x04) + bool(code.co_flags & 0x08)  # *args, **kwargs
        loads = []
        for name in code.co_varnames[:n]:
            if name in code.co_cellvars:
                loads.append(Instr("LOAD_DEREF", CellVar(name), location=loc))
            else:
                loads.append(Instr("LOAD_FAST", name, location=loc))
        return [*loads, Instr("BUILD_TUPLE", n, location=loc)]

    def nested_code(self, unit: _Unit, variant: Variant, hooks: Hooks) -> CodeType:
        """A rewritten nested code object (comprehension or nested function)."""
        code = _assemble(unit.bytecode, self._emit(unit, list(unit.bytecode), variant, hooks, 0))
        if unit.kind == "genexpr" and variant.mode in ("replay", "first"):
            CHECKED_GENERATORS.add(code)
        return code

    def _emit(self, unit: _Unit, items: list[Any], variant: Variant, hooks: Hooks,
              offset: int) -> list[Any]:
        """A copy of ``items`` (a run of ``unit``'s bytecode) rewritten for ``variant``."""
        # A first call records like a trial and defers like a replay: the calls of
        # callees known to be slow at the sites a replay could defer (``first``).
        first = variant.mode == "first"
        trace = variant.mode == "trace" or first
        in_place = unit.kind != "nested"
        deferred_calls = frozenset(
            index for index, sid in unit.site_ids.items()
            if (sid in variant.deferred if not trace else self.sites[sid].deferrable)
            and in_place)
        replay = not trace or first  # placeholders exist in this copy
        # The trace lets placeholders flow through every operator site, so that
        # each site's probe sees what reaches it; a replay only through its plan's.
        lazy_ops = frozenset(i for i, op in unit.op_ids.items() if trace or op in variant.lazy)
        flow = unit.flow
        if in_place:  # placeholders may come from this code's sites or from comprehensions
            flow = simulate(unit.cfg, ops, deferred_calls,
                            returns_to_caller=unit.kind in _RUN_IN_PLACE,
                            comprehension=self._comprehension_result(unit, variant, hooks),
                            lazy=lazy_ops, cells=unit.cells,
                            closure_cells=unit.closure_cells)
        probed_ops = {i: n for i, n in flow.lazy_ops.items() if i in unit.op_ids and trace}
        lazy_here = {i: n for i, n in flow.lazy_ops.items() if i in lazy_ops and replay}
        children: dict[int, CodeType] = {}
        for index, child in unit.children.items():
            code = self._child_code(child, variant, hooks)
            if code is not None:
                children[index] = code
        normalize: set[int] = set()
        for index, call in flow.calls.items():
            if trace or index in deferred_calls:
                normalize |= call.openers
        normalize -= flow.kwnull_openers

        # Positions: the real instruction index of each Instr in ``items``.
        first_instr = sum(isinstance(x, Instr) for x in unit.bytecode[:offset])
        before: dict[int, list[Any]] = {}
        after: dict[int, list[Any]] = {}
        cfg = unit.cfg

        def at(index: int) -> list[Any]:
            # Insertions for a CALL go before its glued prefix (KW_NAMES, PRECALL).
            anchor = _anchor(cfg, index)
            if cfg.instrs[anchor].name in ("END_FOR", "POP_ITER") or (
                    anchor > 0 and cfg.instrs[anchor - 1].name == "END_FOR"
                    and not ops.CODE_AFTER_END_FOR):
                raise RewriteError("cannot insert code at the end of a for loop")
            return before.setdefault(anchor, [])

        hook_resolve = hooks.use_resolve if first else hooks.use if trace else hooks.resolve
        for index, depths in flow.resolves.items():
            if index in probed_ops:
                continue  # the operator's probe records these uses
            loc = cfg.instrs[index].location
            for depth in depths:
                at(index).extend(_resolve_at(depth, hook_resolve, loc))
        for index, cells in flow.resolve_cells.items():
            loc = cfg.instrs[index].location
            for cell in cells:  # the cell object itself: it may be empty on this path
                at(index).extend([Instr(ops.CELL_LOAD, CellVar(cell), location=loc),
                                  *ops.apply(_CellHook(hook_resolve), loc),
                                  Instr("POP_TOP", location=loc)])
        if unit.closure_cells and replay and variant.deferred:
            self._exposures(unit, flow, hooks, at, after)
        # A method-form opener on a result (``r.strip()``) is an attribute load and the
        # NULL slot: its result is the load's, before the slot is pushed.
        methods = {i for i in lazy_here if ops.opener(cfg.instrs[i]) is not None}
        methods |= {i for i in probed_ops if ops.opener(cfg.instrs[i]) is not None
                    and i in normalize}
        for index, n in probed_ops.items():
            instr = cfg.instrs[index]
            if ops.opener(instr) is not None and index not in methods:
                continue  # not normalized: left as it is (its receiver is resolved)
            loc = instr.location
            op = unit.op_ids[index]
            at(index).extend(_copy_call(list(range(n, 0, -1)), hooks.op_before(op), loc))
            if first and index in methods:
                continue  # its lazy hook, then the probe of what it returned (below)
            if instr.name != "UNPACK_SEQUENCE" and index not in methods:  # pushes one result
                after.setdefault(index, []).extend(ops.apply(hooks.op_after(op), loc))
        for index, call in flow.calls.items():
            site = unit.site_ids[index]
            loc = cfg.instrs[index].location
            if trace:
                at(index).extend(_probe(call, hooks.before(site), loc))
                if first and index in deferred_calls:
                    # Every site the simulation lets placeholders reach uncalled: the
                    # callable decides (``wrap_first``, which defers only at
                    # ``variant.deferred``): deferred, its inputs go as they are; made
                    # here, each is resolved first (``first_arg``).
                    roles = call.roles
                    depth = len(roles) - roles.index("callable")
                    at(index).extend([Instr("SWAP", depth, location=loc),
                                      *ops.apply(hooks.wrap_first(site), loc),
                                      Instr("SWAP", depth, location=loc)])
                    for k, role in enumerate(roles):
                        if role in ("arg", "star") or (role == "kwstar" and not call.kwnull):
                            at(index).extend(_resolve_at(len(roles) - k, hooks.first_arg, loc))
                after.setdefault(index, []).extend(ops.apply(hooks.after(site), loc))
            elif index in deferred_calls:
                depth = len(call.roles) - call.roles.index("callable")
                wrap = (hooks.wrap_drain(site) if site in variant.drains
                        else hooks.wrap_continuation(site) if site in variant.continued
                        else hooks.wrap(site))
                at(index).extend([Instr("SWAP", depth, location=loc),
                                  *ops.apply(wrap, loc),
                                  Instr("SWAP", depth, location=loc)])
        if in_place and not trace and variant.settles:
            for index in flow.calls:
                if unit.site_ids[index] in variant.settles and not cfg.protected[index]:
                    at(index).extend(_barrier(hooks.settle, cfg.instrs[index].location))
        if in_place and replay and variant.deferred:
            self._touches(unit, flow, deferred_calls, lazy_here, hooks, at)
            for index, instr in enumerate(cfg.instrs):
                if cfg.protected[index]:
                    continue  # nothing is ever pending inside protected code
                if ops.is_with_enter(instr):
                    # Before the context manager expression: ``with open(p, "wb")``
                    # must not truncate a file when a call deferred before it failed.
                    start = flow.with_starts.get(index, index)
                    at(start).extend(_barrier(hooks.barrier, instr.location))
                elif instr.name in SIDE_EFFECTS and (_cell_name(instr) in unit.cells
                                                     or _cell_name(instr) in unit.closure_cells):
                    pass  # a local of this frame (a closure cell: checked at run time)
                elif instr.name in SIDE_EFFECTS or index in flow.stores_outside:
                    at(index).extend(_barrier(hooks.barrier, instr.location))
                elif index in flow.mutators:
                    # ``history.append(x)`` on a list the caller sees: wait first (also so
                    # that a list handed to a deferred call is not changed under it).
                    at(index).extend(_guard_at(1, hooks.guard, instr.location))
                elif index in flow.in_place_outside and unit.op_ids.get(index) not in variant.lazy:
                    # ``xs += ys`` mutates xs when it is a list: a barrier then, and only
                    # then (``total += x`` on an int must not wait).  Operators in the
                    # plan's lazy set saw only immutable operands in the trial and pay
                    # no guard call; their lazy hook checks instead.
                    at(index).extend(_guard_at(2, hooks.guard, instr.location))

        out: list[Any] = []
        labels: dict[Label, Label] = {}
        blocks: dict[int, TryBegin] = {}

        def label(old: Label) -> Label:
            return labels.setdefault(old, Label())

        def hooked(index: int, item: Instr) -> list[Any]:
            loc = item.location
            seq: list[Any] = [*before.get(index, ())]
            if index in lazy_here:
                seq += [Instr("BUILD_TUPLE", lazy_here[index], location=loc),
                        *ops.apply(hooks.lazy(unit.op_ids[index]), loc)]
                if index in methods:  # then the slot, as the opener would push it
                    if first:
                        seq += ops.apply(hooks.op_after(unit.op_ids[index]), loc)
                    seq += ops.normalize(item)[1:]
                elif item.name == "UNPACK_SEQUENCE":  # of the tuple the hook returned
                    seq.append(item.copy())
            elif index in methods:  # traced: the load, its probe, then the slot
                load, *rest = ops.normalize(item)
                seq += [load, *ops.apply(hooks.op_after(unit.op_ids[index]), loc), *rest]
            else:
                seq += self._replace(unit, index, item, normalize, children, trace, hooks,
                                     label)
            seq.extend(after.get(index, ()))
            return seq

        def as_written(index: int, item: Instr) -> list[Instr]:
            if index in methods:  # the same stack as the hooked copy's
                normalized: list[Instr] = ops.normalize(item)
                return normalized
            return self._replace(unit, index, item, normalize, children, trace, hooks, label)

        switches = self._switches(unit, flow, probed_ops, methods, hooks) if first else {}
        index = first_instr
        pos = 0
        while pos < len(items):
            item = items[pos]
            pos += 1
            if isinstance(item, Label):
                out.append(label(item))
            elif isinstance(item, TryBegin):
                if unit.kind == "main" and replay and cfg.entered_from_outside(item):
                    out.extend(_barrier(hooks.barrier, _location(out)))
                new = TryBegin(label(item.target), item.push_lasti, item.stack_depth)
                blocks[id(item)] = new
                out.append(new)
            elif isinstance(item, TryEnd):
                out.append(TryEnd(blocks[id(item.entry)]))
            elif isinstance(item, Instr):
                switch = switches.get(index)
                span = [item]
                if switch is not None:
                    last, on = switch
                    span += items[pos:pos + last - index]
                    if not all(isinstance(x, Instr) for x in span) or any(
                            i in before or i in after for i in range(index + 1, last)):
                        span = [item]
                        switch = None
                if switch is None:
                    out += hooked(index, item)
                else:
                    # A first call's site that proved fast runs as written while
                    # its switch is off (``_switches``): one test, no hook call.
                    loc = item.location
                    plain, end = Label(), Label()
                    out += [Instr("LOAD_CONST", on, location=loc),
                            *ops.jump_forward_if_false(plain, loc)]
                    for k, instr in enumerate(span):
                        out += hooked(index + k, instr)
                    out += [ops.jump_forward(end, loc), plain]
                    for k, instr in enumerate(span):
                        out += as_written(index + k, instr)
                    out.append(end)
                    pos += len(span) - 1
                index += len(span)
            else:
                out.append(item)
        return out

    def _switches(self, unit: _Unit, flow: Flow, probed_ops: dict[int, int],
                  methods: set[int], hooks: Hooks) -> dict[int, tuple[int, object]]:
        """First instruction -> (hooked instruction, its switch) of each site of a first
        body whose hooks a switch can skip: every call site (from its glued prefix) and
        every operator or access site that has hooks."""
        cfg = unit.cfg
        found: dict[int, tuple[int, object]] = {}
        for index in flow.calls:
            found[_anchor(cfg, index)] = (index, hooks.site_switch(unit.site_ids[index]))
        for index in probed_ops:
            if ops.opener(cfg.instrs[index]) is None or index in methods:
                found.setdefault(index, (index, hooks.op_switch(unit.op_ids[index])))
        return found

    def _exposures(self, unit: _Unit, flow: Flow, hooks: Hooks,
                   at: Callable[[int], list[Any]], after: dict[int, list[Any]]) -> None:
        """Keep closure cells sound while a closure holding one is alive (see
        ``closure_cells``): around each instruction that may change a closure cell
        or what it holds, if a closure holds the cell now, the body waits for every
        deferred call first (as for outside state) and resolves what the cell holds
        afterwards (a closure must never see a placeholder)."""
        cfg = unit.cfg
        before_hook = _Exposure(False, hooks.barrier, hooks.resolve)
        after_hook = _Exposure(True, hooks.barrier, hooks.resolve)
        for index, cells in flow.cell_changes.items():
            loc = cfg.instrs[index].location
            for cell in cells:
                boxed = [Instr(ops.CELL_LOAD, CellVar(cell), location=loc),
                         Instr("BUILD_TUPLE", 1, location=loc)]
                at(index).extend([*boxed, *ops.apply(before_hook, loc),
                                  Instr("POP_TOP", location=loc)])
                after.setdefault(index, []).extend(
                    [*boxed, *ops.apply(after_hook, loc), Instr("POP_TOP", location=loc)])

    def _touches(self, unit: _Unit, flow: Flow, deferred_calls: frozenset[int],
                 lazy_here: dict[int, int], hooks: Hooks, at: Callable[[int], list[Any]]) -> None:
        """Before each instruction that reads an object a deferred call may own, check.

        ``touch(*objects)`` waits for the deferred calls that received one of them
        (see ``_replay``); it is only called while some call owns objects, which an
        inline test of the owners' table tells in two instructions.  Not checked:
        the receiver of a method that is itself deferred (handing an object to
        another deferred call does not wait), lazy operators (their hook checks),
        and instructions before which the body waits for every call anyway.
        """
        cfg = unit.cfg
        handed = set().union(*(flow.calls[i].openers for i in deferred_calls))
        handed -= set().union(*(c.openers for i, c in flow.calls.items()
                                if i not in deferred_calls))
        for index, depths in flow.touches.items():
            instr = cfg.instrs[index]
            if (cfg.protected[index] or index in handed or index in lazy_here
                    or instr.name in SIDE_EFFECTS or index in flow.stores_outside
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
            at(index).extend([Instr("LOAD_CONST", hooks.owned, location=loc),
                              *ops.jump_forward_if_false(skip, loc),
                              *_copy_call(depths, hook, loc), skip])

    def _replace(self, unit: _Unit, index: int, instr: Instr, normalize: set[int],
                 children: dict[int, CodeType], trace: bool, hooks: Hooks,
                 label: Callable[[Label], Label]) -> list[Instr]:
        loc = instr.location
        opener = ops.opener(instr)
        if index in normalize and opener is not None and opener[0]:  # a method-form load
            normalized: list[Instr] = ops.normalize(instr)
            return normalized
        if index in children:
            return [Instr("LOAD_CONST", children[index], location=loc)]
        if unit.kind == "main":
            is_const, value = ops.return_const(instr)
            if is_const:
                return [Instr("LOAD_CONST", value, location=loc), *ops.apply(hooks.finish, loc),
                        Instr("RETURN_VALUE", location=loc)]
            if ops.returns_value(instr):
                return [*ops.apply(hooks.finish, loc), Instr("RETURN_VALUE", location=loc)]
        new = ops.unborrow(instr)
        if isinstance(new.arg, Label):
            new = Instr(new.name, label(new.arg), location=loc)
        elif new is instr:
            new = instr.copy()
        return [new]

    def _child_code(self, child: _Unit, variant: Variant, hooks: Hooks) -> CodeType | None:
        if child.kind == "nested" and variant.mode == "replay":
            return None  # nested functions run as written in replay
        if variant.mode == "first" and child.kind == "nested":
            variant = _TRACE  # recorded, as in a trial; a closure never sees a placeholder
        return self.nested_code(child, variant, hooks)

    def _comprehension_result(self, unit: _Unit, variant: Variant,
                              hooks: Hooks) -> Callable[[CodeType], Val]:
        """What calling a 3.11 comprehension returns: it may hold placeholders."""
        comps = {child.code: child for child in unit.children.values()
                 if child.kind == "comprehension"}
        trace = variant.mode in ("trace", "first")

        def result(code: CodeType) -> Val:
            child = comps.get(code)
            if child is None:
                return Val()
            if not any((self.sites[s].deferrable if trace else s in variant.deferred)
                       for s in child.site_ids.values()):
                return Val()
            kind = NOTDICT | OTHER if code.co_name == "<listcomp>" else NOTLIST | OTHER
            return Val(kind | LCT)

        return result


class _Named:
    """A stand-in hook that prints as its name in listings."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: Any) -> Any:
        raise AssertionError("listing hooks are not called")

    def __repr__(self) -> str:
        return f"<{self.name}>"


class _NamedHooks:
    use = _Named("use")
    resolve = _Named("resolve")
    use_resolve = _Named("use_resolve")
    first_arg = _Named("first_arg")
    barrier = _Named("barrier")
    finish = _Named("finish")
    abort = _Named("abort")
    guard = _Named("guard")
    settle = _Named("settle")
    touch = _Named("touch")
    touch_deep = _Named("touch_deep")
    touch_call = _Named("touch_call")
    owned = _Named("owned")

    def before(self, site: int) -> Any:
        return _Named(f"before {site}")

    def after(self, site: int) -> Any:
        return _Named(f"after {site}")

    def wrap(self, site: int) -> Any:
        return _Named(f"wrap {site}")

    def wrap_continuation(self, site: int) -> Any:
        return _Named(f"continue {site}")

    def wrap_drain(self, site: int) -> Any:
        return _Named(f"drain {site}")

    def wrap_first(self, site: int) -> Any:
        return _Named(f"first {site}")

    def op_before(self, op: int) -> Any:
        return _Named(f"op_before {op}")

    def op_after(self, op: int) -> Any:
        return _Named(f"op_after {op}")

    def lazy(self, op: int) -> Any:
        return _Named(f"lazy {op}")

    def site_switch(self, site: int) -> Any:
        return _Named(f"switch {site}")

    def op_switch(self, op: int) -> Any:
        return _Named(f"op switch {op}")


def _op_text(instr: Instr) -> str:
    """How an access reads in explain: ``.choices``, ``[]``."""
    if ops.is_subscript(instr):
        return "[]"
    return "." + str(ops.attr_name(instr))


def _listing(items: list[Any]) -> list[str]:
    names: dict[Label, str] = {}
    for item in items:
        if isinstance(item, Label):
            names[item] = f"L{len(names) + 1}"
    out = []
    for item in items:
        if isinstance(item, Label):
            out.append(f"  {names[item]}:")
        elif isinstance(item, TryBegin):
            out.append(f"    try -> {names.get(item.target, '?')} depth {item.stack_depth}"
                       + (" lasti" if item.push_lasti else ""))
        elif isinstance(item, TryEnd):
            out.append("    end try")
        elif isinstance(item, Instr):
            arg = item.arg
            if isinstance(arg, Label):
                text = names.get(arg, "?")
            elif isinstance(arg, CodeType):
                text = f"<code {arg.co_name}>"
            elif isinstance(arg, FunctionType):  # an outlined try's helper
                text = f"<function {arg.__qualname__}>"
            elif arg is UNSET:
                text = ""
            else:
                text = repr(arg)
            out.append(f"    {item.name} {text}".rstrip())
    return out


def _location(items: list[Any]) -> Any:
    for item in reversed(items):
        if isinstance(item, Instr):
            return item.location
    return None


class _CellHook:
    """Applies a resolve (or use) hook to a cell's content, if the cell holds one.

    A variable that only comprehensions read may be unbound on some paths; the
    plain function fails (NameError) only if a comprehension actually reads it,
    so the body must not load it itself.
    """

    __slots__ = ("hook",)

    def __init__(self, hook: Callable[[Any], Any]) -> None:
        self.hook = hook

    def __call__(self, cell: Any) -> None:
        try:
            value = cell.cell_contents
        except ValueError:  # empty
            return
        new = self.hook(value)
        if new is not value:
            cell.cell_contents = new

    def __repr__(self) -> str:
        return f"<cell {self.hook!r}>"


def _references(box: tuple[Any]) -> int:
    """The references to the cell in ``box``: its owner's, the box's, and this call's."""
    cell = box[0]
    return sys.getrefcount(cell)


def _unshared() -> int:
    cell = types.CellType()  # held by a local here, as a frame holds its cell
    return _references((cell,))


class _Exposure:
    """The run-time check of a closure cell (``Program._exposures``).

    The body hands the cell in a 1-tuple (which took the stack's reference):
    the cell is then referenced by its frame, the tuple, and the closures that
    hold it.  More references than a cell only a frame holds (``_UNSHARED``,
    counted the same way) means that a closure holding it is alive; then the
    check before the instruction waits for every deferred call, the one after
    resolves what the cell holds, in place.
    """

    __slots__ = ("after", "barrier", "resolve")

    def __init__(self, after: bool, barrier: Callable[[Any], Any],
                 resolve: Callable[[Any], Any]) -> None:
        self.after = after
        self.barrier = barrier
        self.resolve = resolve

    def __call__(self, box: tuple[Any]) -> None:
        if _references(box) <= _UNSHARED:
            return
        if not self.after:
            self.barrier(None)
            return
        cell = box[0]
        try:
            value = cell.cell_contents
        except ValueError:  # empty
            return
        new = self.resolve(value)
        if new is not value:
            cell.cell_contents = new

    def __repr__(self) -> str:
        return f"<exposure {'after' if self.after else 'before'}>"


_UNSHARED = _unshared()


def _may_hold_placeholders(code: CodeType) -> Val:
    """What a 3.11 comprehension returns when its own calls may be deferred: a list,
    set or dict that may hold placeholders (so calls receiving it search it)."""
    kind = NOTDICT | OTHER if code.co_name == "<listcomp>" else NOTLIST | OTHER
    return Val(kind | LCT)


def _cell_name(instr: Instr) -> str | None:
    arg = instr.arg
    return getattr(arg, "name", None) if isinstance(arg, CellVar) else None


def _anchor(cfg: Cfg, index: int) -> int:
    """Where insertions for instruction ``index`` go: before a CALL's glued prefix
    (KW_NAMES, PRECALL), else at the instruction itself."""
    while index > 0 and cfg.instrs[index - 1].name in ops.CALL_PREFIX:
        index -= 1
    return index


def _resolve_at(depth: int, hook: Callable[[Any], Any], loc: Any) -> list[Instr]:
    """Replace the stack item at ``depth`` (1 = top) with ``hook(item)``."""
    applied: list[Instr] = ops.apply(hook, loc)
    if depth == 1:
        return applied
    return [Instr("COPY", depth, location=loc), *applied,
            Instr("SWAP", depth + 1, location=loc), Instr("POP_TOP", location=loc)]


def _barrier(hook: Callable[[Any], Any], loc: Any) -> list[Instr]:
    """Call ``hook(None)``: wait for every deferred call before a protected region."""
    return [Instr("LOAD_CONST", None, location=loc), *ops.apply(hook, loc),
            Instr("POP_TOP", location=loc)]


def _probe(call: CallSite, hook: Callable[..., Any], loc: Any) -> list[Instr]:
    """Call ``hook(callable, *values)`` with copies of a call's operands, then drop its result."""
    roles = call.roles
    n = len(roles)
    return _copy_call([n - k for k, role in enumerate(roles)
                       if role in ("callable", "arg", "star")
                       or (role == "kwstar" and not call.kwnull)], hook, loc)


def _guard_at(depth: int, guard: Callable[[Any], Any], loc: Any) -> list[Any]:
    """``guard(x)`` for the stack item x at ``depth``, skipped when x is an int, str or float.

    ``total += n`` in a loop is the common case, and on those types the guard
    does nothing.  ``type(x) is int`` compiles to a specialized one-argument
    ``type`` call and identity tests, a fraction of a Python function call, and
    runs no user code (a set lookup would hash the type, which a metaclass may
    define).
    """
    skip = Label()
    load_type = [Instr("LOAD_CONST", type, location=loc)]
    null = [Instr("PUSH_NULL", location=loc)]
    seq: list[Any] = [*(null + load_type if ops.SLOT_BELOW_CALLABLE else load_type + null),
                      Instr("COPY", depth + 2, location=loc), *ops.call(1, loc)]
    for kind in (int, str, float):
        seq += [Instr("COPY", 1, location=loc), Instr("LOAD_CONST", kind, location=loc),
                Instr("IS_OP", 0, location=loc), ops.jump_forward_if_true(skip, loc)]
    return [*seq, *_copy_call([depth + 1], guard, loc), skip, Instr("POP_TOP", location=loc)]


def _copy_call(depths: list[int], hook: Callable[..., Any], loc: Any) -> list[Instr]:
    """Call ``hook`` with copies of the stack items at ``depths`` (1 = top), drop its result."""
    seq: list[Instr] = [Instr("LOAD_CONST", hook, location=loc)]
    for pushed, depth in enumerate(depths):
        seq.append(Instr("COPY", depth + 1 + pushed, location=loc))
    seq += ops.call(len(depths) - 1, loc)
    seq.append(Instr("POP_TOP", location=loc))
    return seq


def _catch_all(items: list[Any], abort: Callable[[BaseException], BaseException],
               loc: Any) -> list[Any]:
    """Cover every instruction outside the body's own try regions with a handler
    that calls ``abort(exc)`` and re-raises what it returns (without adding a
    traceback entry, like a bare ``raise``)."""
    handler = Label()
    out: list[Any] = []
    active = False
    ours: TryBegin | None = None
    for item in items:
        if isinstance(item, TryBegin):
            if ours is not None:
                out.append(TryEnd(ours))
                ours = None
            active = True
            out.append(item)
        elif isinstance(item, TryEnd):
            active = False
            out.append(item)
        elif isinstance(item, Instr) and not active and ours is None:
            ours = TryBegin(handler, False, 0)
            out.append(ours)
            out.append(item)
        else:
            out.append(item)
    if ours is not None:
        out.append(TryEnd(ours))
    out.append(handler)
    out += ops.apply(abort, loc)
    out.append(Instr("RERAISE", 0, location=loc))
    return out


def _clone(items: Iterable[Any]) -> list[Any]:
    """A copy of a run of bytecode with fresh labels and try blocks."""
    labels: dict[Label, Label] = {}
    blocks: dict[int, TryBegin] = {}
    out: list[Any] = []
    for item in items:
        if isinstance(item, Label):
            out.append(labels.setdefault(item, Label()))
        elif isinstance(item, TryBegin):
            block = TryBegin(labels.setdefault(item.target, Label()), item.push_lasti,
                             item.stack_depth)
            blocks[id(item)] = block
            out.append(block)
        elif isinstance(item, TryEnd):
            out.append(TryEnd(blocks[id(item.entry)]))
        elif isinstance(item, Instr):
            if isinstance(item.arg, Label):
                out.append(Instr(item.name, labels.setdefault(item.arg, Label()),
                                 location=item.location))
            else:
                out.append(item.copy())
        else:
            out.append(item)
    return out


def _assemble(model: Bytecode, items: list[Any]) -> CodeType:
    """Assemble ``items`` into a code object with ``model``'s name, flags and arguments."""
    result = model.copy()
    result.clear()
    result.extend(items)
    # The handlers' depths were kept from the original code and the rewrite
    # only adds stack-neutral sequences, so they are still right; recomputing
    # them changes a few percent of code objects even on a plain round trip.
    return result.to_code(compute_exception_stack_depths=False)
