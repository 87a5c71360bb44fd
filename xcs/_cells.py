"""Cells a rewrite may track like fast locals: those only comprehensions read (3.11),
and those closures only read (their closures are checked at run time)."""

from __future__ import annotations

import sys
from types import CodeType

from bytecode import Bytecode, Instr
from bytecode.instr import CellVar

from xcs import _compat

ops = _compat.required()


def comprehension_cells(code: CodeType) -> frozenset[str]:
    """The cells of ``code`` that only its 3.11 comprehensions read.

    Such a cell never leaves the frame's dynamic extent (a comprehension runs
    at once and is not kept), so it can be tracked like a fast local, which
    lets it hold placeholders: ``a = m(1)`` must not wait just because a later
    ``[a + x for x in xs]`` reads ``a``.  A cell that any other nested code
    (a lambda, an inner function, a generator expression) reads may be read
    later, from anywhere, and stays outside state.
    """
    if not ops.COMPREHENSIONS or not code.co_cellvars:
        return frozenset()
    cells = set(code.co_cellvars)

    def visit(parent: CodeType) -> None:
        for const in parent.co_consts:
            if isinstance(const, CodeType):
                if const.co_name not in ops.COMPREHENSIONS:
                    cells.difference_update(const.co_freevars)
                visit(const)

    visit(code)
    return frozenset(cells)


def closure_cells(code: CodeType) -> frozenset[str]:
    """The cells of ``code`` that its closures (lambdas, inner functions, generator
    expressions) read and never rebind, and that ``code`` itself only reads,
    rebinds and loads as a cell to build a closure.

    While no closure holding such a cell is alive, nobody but the frame can see
    what it holds: the flow tracks it like a fast local (``values.append(r)``
    need not wait for ``r`` just because a later ``sorted(key=lambda i:
    values[i])`` reads ``values``).  The replay keeps it sound at run time: what
    it holds is resolved before a closure is built over it (what it held is then
    seen by others), and after each instruction that may put a placeholder in
    it, if a closure holding the cell is alive (``_rewrite``'s exposure check).
    """
    if not code.co_cellvars or not getattr(sys, "_is_gil_enabled", lambda: True)():
        return frozenset()  # (a free-threaded build counts references differently)
    cells = set(code.co_cellvars) - comprehension_cells(code)

    def visit(parent: CodeType, main: bool) -> None:
        for instr in Bytecode.from_code(parent):
            if not isinstance(instr, Instr):
                continue
            arg = instr.arg
            names = [getattr(a, "name", a) for a in (arg if isinstance(arg, tuple) else (arg,))]
            if main and isinstance(arg, CellVar):
                if instr.name not in ("LOAD_DEREF", "STORE_DEREF", "DELETE_DEREF", "MAKE_CELL",
                                      *ops.CELL_LOADS):
                    cells.discard(arg.name)  # a cell moved around (a 3.12 inlined comprehension)
            elif main and isinstance(arg, tuple) and any(isinstance(a, CellVar) for a in arg):
                cells.difference_update(names)  # a superinstruction on a cell: keep it simple
            elif not main and instr.name in ("STORE_DEREF", "DELETE_DEREF"):
                cells.difference_update(names)  # a closure rebinds it
        for const in parent.co_consts:
            if isinstance(const, CodeType):
                visit(const, False)

    visit(code, True)
    return frozenset(cells)
