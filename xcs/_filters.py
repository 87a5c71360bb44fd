"""Outlining an ``if`` that only filters into a list the function builds.

Mixture-of-Agents' reference loop keeps what its proposers return, unless they
declined::

    for m in proposers:
        r = propose(m, question)
        if r is not None:          # a branch on each result: the body would wait
            refs.append(r)

The statement reads values and appends one of them, or nothing, to a list the
function built; nothing else sees what it does.  So xcs writes the helper a user
would write (named like the function, in its file, at the statement's lines)::

    def <f>(r, refs):
        if r is not None:
            refs.append(r)

and the trace and replay bodies call it in the statement's place (the plain body
keeps the statement).  That call is an ordinary fast call on a result: a replay
makes it a continuation, which runs when ``r`` arrives, in program order with the
other continuations that run Python code, and owns ``refs`` meanwhile: the body
waits for it before it reads ``refs`` (``len(refs)``, a loop over it), and a
deferred call that receives ``refs`` starts after it (``_replay``).

What qualifies: no ``elif``/``else``; one statement ``lst.append(EXPR)`` where
``lst`` is only ever bound to a list display; a test and a value without jumps
(one comparison at most: ``r is not None``, ``r``, ``len(r) > 3``), nested scopes,
suspension points or calls that must stay in the body; not inside a ``try`` or a
``with``; every local it reads bound on every path to it; no closure variable.
The source must match the code, as for an outlined ``try`` (``_outline``).
"""

from __future__ import annotations

import ast
import copy
from types import CodeType, FunctionType
from typing import Any

from bytecode import Bytecode, Instr, Label
from bytecode.instr import InstrLocation, TryBegin, TryEnd

from xcs import _compat, _try_helper  # the source rules and the splice's pieces
from xcs._codes import HELPERS, WRITERS
from xcs._filter_shapes import ITEMS, Params, filter_sink, loop_sink, shape, statements

__all__ = ["Filter", "filters"]


ops = _compat.required()



class Filter:
    """One outlined ``if``: its line and the helper called in its place."""

    __slots__ = ("helper", "line", "params")

    def __init__(self, line: int, helper: FunctionType, params: Params) -> None:
        self.line = line
        self.helper = helper
        self.params = params


def filters(fn: FunctionType, tree: ast.FunctionDef, bc: Bytecode,
            ) -> tuple[list[Filter], list[str]]:
    """Outline each qualifying ``if`` (and ``for`` loop, see ``loop_sink``) of ``fn`` in
    ``bc`` (in place); also return why one shaped like a filter stays as written."""
    done: list[Filter] = []
    notes: list[str] = []
    code = fn.__code__
    outlined: set[int] = set()  # the loops outlined: the ifs inside them went with them
    for node, path in statements(tree):
        if any(id(owner) in outlined for _, _, owner in path):
            continue
        loop = isinstance(node, ast.For)
        sink = loop_sink(node) if isinstance(node, ast.For) else filter_sink(node)
        if sink is None:
            continue  # not a filter: no note
        target, test, expr = sink
        what = f"the {'loop' if loop else 'if'} at line {node.lineno} runs as written"
        why = shape(fn, tree, node, path, target, test, expr)
        if isinstance(why, str):
            if not (loop and why.startswith("it calls")):  # (a loop of calls: deferred)
                notes.append(f"{what}: {why}")
            continue
        try:
            helper = _helper(fn, node, why)
            same = all(_steps(code, e) == _steps(helper.__code__, e) != []
                       for e in (test, expr) if e is not None)
            if not same:
                notes.append(f"{what}: its source does not match the function's code")
                continue
            if not _splice(bc, node, helper, why):
                notes.append(f"{what}: its code has an unexpected shape")
                continue
        except (SyntaxError, ValueError, TypeError) as exc:
            notes.append(f"{what}: {exc}")
            continue
        if loop:
            outlined.add(id(node))
        done.append(Filter(node.lineno, helper, why))
    return done, notes


def _steps(code: CodeType, expr: ast.expr) -> list[tuple[str, Any]]:
    """``_try_helper.fingerprint`` of an expression's span without its jumps and None
    constants: where a test jumps to, and the helper's implicit ``return None``
    placed at the test, depend on the code around it."""
    return [step for step in _try_helper.fingerprint(code, _try_helper.span_of(expr))
            if "JUMP" not in step[0] and step[1] != ("NoneType", "None")]


def _helper(fn: FunctionType, node: ast.If | ast.For, params: Params) -> FunctionType:
    """Compile the helper from the statement's own nodes (their positions kept)."""

    def at(n: Any) -> Any:  # the helper's own nodes: column 0, outside every span
        n.lineno, n.col_offset, n.end_lineno, n.end_col_offset = node.lineno, 0, node.lineno, 0
        return n

    statement = copy.deepcopy(node)
    if isinstance(statement, ast.For) and isinstance(node, ast.For):  # iterates what the
        # body computed, at its place
        statement.iter = ast.copy_location(ast.Name(id=ITEMS, ctx=ast.Load()), node.iter)
    arguments = ast.arguments(posonlyargs=[ast.arg(p) for p, _ in params], args=[],
                              kwonlyargs=[], kw_defaults=[], defaults=[])
    name = fn.__code__.co_name
    fields: dict[str, Any] = {"type_params": []} if "type_params" in ast.FunctionDef._fields else {}
    definition = at(ast.FunctionDef(name=name, args=arguments, body=[statement],
                                    decorator_list=[], returns=None, **fields))
    module = ast.Module(body=[definition], type_ignores=[])
    ast.fix_missing_locations(module)
    flags = fn.__code__.co_flags & _try_helper.FUTURE_FLAGS
    compiled = compile(module, fn.__code__.co_filename, "exec", flags=flags, dont_inherit=True)
    code = next(c for c in compiled.co_consts if isinstance(c, CodeType))
    code = code.replace(co_qualname=fn.__code__.co_qualname)
    helper = FunctionType(code, fn.__globals__, name)
    calls = _try_helper.direct_calls_of([node.body[0]] if isinstance(node, ast.For)
                               else [node.test, node.body[0]])
    helper.__xcs_calls__ = (tuple(p for p, _ in params), calls)  # type: ignore[attr-defined]
    kind = "for" if isinstance(node, ast.For) else "if"
    helper.__qualname__ = f"{fn.__qualname__}.<{kind} at line {node.lineno}>"
    if isinstance(node, ast.For):  # the parameter it iterates (``_values.helper_stays``)
        helper.__xcs_iterates__ = 1  # type: ignore[attr-defined]
    helper.__module__ = fn.__module__
    HELPERS.add(code)
    WRITERS.add(code)
    return helper


def _splice(bc: Bytecode, node: ast.If | ast.For, helper: FunctionType, params: Params) -> bool:
    """Replace the statement's instructions in ``bc`` by the helper call, in place.

    They are the contiguous run located inside the statement; every way out of it
    (a jump to a label outside it, or falling off its end) must lead to one place,
    where the call then continues (the compiler may have copied a loop's jump back
    into both branches).
    """
    items = list(bc)
    span = _try_helper.span_of(node)
    inside = [i for i, x in enumerate(items)
              if isinstance(x, Instr) and _try_helper.located_in(x.location, span)]
    if not inside:
        return False
    first, last = inside[0], inside[-1]
    run = items[first:last + 1]
    if any(isinstance(x, TryBegin | TryEnd) for x in run):
        return False
    if any(isinstance(x, Instr) and not _try_helper.located_in(x.location, span)
           and not (x.location is None or x.location.lineno is None) for x in run):
        return False  # (3.11 gives a loop's jump back no position)
    own = {id(x) for x in run if isinstance(x, Label)}
    for i, x in enumerate(items):  # labels of the run are reached from the run only
        if isinstance(x, Instr) and isinstance(x.arg, Label) and id(x.arg) in own and not (
                first <= i <= last):
            return False
    exits: set[int] = set()
    after: Any = items[last + 1] if last + 1 < len(items) else None
    for x in run:
        if isinstance(x, Instr) and isinstance(x.arg, Label) and id(x.arg) not in own:
            exits.add(id(x.arg))
    tail = run[-1]
    if not (isinstance(tail, Instr) and tail.is_final()):  # a jump, return or raise
        if after is None:
            return False
        exits.add(id(after))
    if len(exits) != 1:
        return False
    (exit_id,) = exits
    target = next((x for x in items if id(x) == exit_id), None)
    if target is None:
        return False
    loc = run[0].location if isinstance(run[0], Instr) else None
    loc = InstrLocation(span[0], span[2], span[1], span[3]) if loc is not None else loc
    if isinstance(node, ast.For):
        # The loop's own GET_ITER, FOR_ITER come last of the instructions computing what
        # it iterates (those may hold a comprehension's loop, its body cannot): that
        # prefix stays, evaluated where plain evaluates it, as the helper's 2nd argument.
        loops = [k for k, x in enumerate(run) if isinstance(x, Instr) and x.name == "FOR_ITER"]
        if not loops or loops[-1] < 1:
            return False
        k = loops[-1] - 1
        while k > 0 and isinstance(run[k], Label):  # the loop's head
            k -= 1
        prefix, get_iter = run[:k], run[k]
        if not (isinstance(get_iter, Instr) and get_iter.name == "GET_ITER") or any(
                isinstance(x, Instr)
                and not _try_helper.located_in(x.location, _try_helper.span_of(node.iter))
                for x in prefix):
            return False
        inner = {id(x) for x in prefix if isinstance(x, Label)}
        if any(isinstance(x, Instr) and isinstance(x.arg, Label) and id(x.arg) not in inner
               for x in prefix):
            return False  # it jumps out of what it computes (it cannot, but say so)
        call = [*_try_helper.helper_callable(helper, loc), *_try_helper.load_params(params[:1], loc), *prefix,
                *_try_helper.load_params(params[2:], loc), *ops.call(len(params), loc),
                Instr("POP_TOP", location=loc)]
    else:
        call = [*_try_helper.helper_call(helper, params, loc), Instr("POP_TOP", location=loc)]
    if target is not after:
        if not isinstance(target, Label):
            return False
        backward = items.index(target) < first
        call.append(Instr("JUMP_BACKWARD" if backward else "JUMP_FORWARD", target, location=loc))
    bc[:] = [*items[:first], *call, *items[last + 1:]]
    return True
