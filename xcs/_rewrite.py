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

Hooks are passed in by the later stages (``Hooks``).  This module analyses the
function (its sites and code units, ``_sites``) and assembles the code; where the
hooks go in each copy is ``_placement``'s, writing a copy ``_emit``'s.  Everything
version-specific comes from ``xcs._compat.ops``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import CodeType, FunctionType
from typing import Any

from bytecode import Instr, Label
from bytecode.instr import CellVar, InstrLocation

from xcs import _compat
from xcs._abstract import LCT, NOTDICT, NOTLIST, OTHER, Val
from xcs._cells import closure_cells as _closure_cells
from xcs._cells import comprehension_cells as _comprehension_cells
from xcs._cfg import Cfg
from xcs._codes import WRITERS
from xcs._emit import emit
from xcs._errors import RewriteError
from xcs._flow import simulate
from xcs._listing import NamedHooks, listing
from xcs._opcodes import arg
from xcs._outline import Outlined, outline
from xcs._provenance import fed_by as _fed_by
from xcs._sequences import assemble, catch_all, clone, location
from xcs._sites import (
    FRAME_READERS,
    IN_PLACE,
    RUN_IN_PLACE,
    Hooks,
    OpSite,
    Site,
    Unit,
    Variant,
    load,
    op_text,
)

# This CPython's bytecode (see _compat); the rewrite stage is only used where it exists.
ops = _compat.required()

__all__ = ["FRAME_READERS", "IN_PLACE", "Hooks", "OpSite", "Program", "RewriteError", "Site",
           "Variant"]


class Program:
    """A function's code, analysed once, from which body copies are built."""

    def __init__(self, fn: FunctionType) -> None:
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
        self._plain_items = list(load(fn.__code__)) if outlined.code is not None else None
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
    def _analyse(self, code: CodeType, kind: str, protected: bool) -> Unit:
        bc = load(code)
        cfg = Cfg(bc)
        cells = _comprehension_cells(code) if kind == "main" else frozenset()
        closure = _closure_cells(code) if kind == "main" else frozenset()
        flow = simulate(cfg, ops, returns_to_caller=kind in RUN_IN_PLACE, cells=cells,
                        closure_cells=closure)
        unit = Unit(code, kind, bc, cfg, flow, cells=cells, closure_cells=closure)
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
                reach = simulate(cfg, ops, deferred, returns_to_caller=kind in RUN_IN_PLACE,
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
                            op_text(instr) if op_kind == "access" else
                            str(getattr(instr.arg, "name", instr.name)).lower(),
                            op_kind, arg(instr) if op_kind == "unpack" else 0,
                            kind in RUN_IN_PLACE)
                unit.op_ids[index] = op.id
                self.op_sites.append(op)
                fn = ops.lazy_op(instr)
                if fn is None:  # (the analysis only makes lazy what has a function)
                    raise RewriteError(f"no function computes {instr.name}")
                self._op_fns.append(fn)
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
            items = emit(self.sites, self.main, body, variant, NamedHooks(), self._prefix_len)
            lines.append(f"{variant.mode} body:")
            lines += listing(items)
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
        loc = location(prefix)
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
        out += clone(plain)
        for start, variant in zip(starts, variants):
            out.append(start)
            copy = [Instr("POP_TOP", location=nowhere)]
            copy += emit(self.sites, main, body, variant, hooks, offset=self._prefix_len)
            out += catch_all(copy, hooks.abort, loc)
        return assemble(main.bytecode, out)

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


def _may_hold_placeholders(code: CodeType) -> Val:
    """What a 3.11 comprehension returns when its own calls may be deferred: a list,
    set or dict that may hold placeholders (so calls receiving it search it)."""
    kind = NOTDICT | OTHER if code.co_name == "<listcomp>" else NOTLIST | OTHER
    return Val(kind | LCT)
