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
import builtins
import copy
import types
from collections.abc import Iterator
from types import CodeType, FunctionType
from typing import Any

from bytecode import Bytecode, Instr, Label
from bytecode.instr import InstrLocation, TryBegin, TryEnd

from xcs import _compat
from xcs import _outline as o  # the source rules and the splice's pieces
from xcs._codes import HELPERS, WRITERS

ops: Any = _compat.ops

__all__ = ["Filter", "filters"]

_Params = tuple[tuple[str, str], ...]


class Filter:
    """One outlined ``if``: its line and the helper called in its place."""

    __slots__ = ("helper", "line", "params")

    def __init__(self, line: int, helper: FunctionType, params: _Params) -> None:
        self.line = line
        self.helper = helper
        self.params = params


def filters(fn: FunctionType, tree: ast.FunctionDef, bc: Bytecode,
            ) -> tuple[list[Filter], list[str]]:
    """Outline each qualifying ``if`` (and ``for`` loop, see ``_loop_sink``) of ``fn`` in
    ``bc`` (in place); also return why one shaped like a filter stays as written."""
    done: list[Filter] = []
    notes: list[str] = []
    code = fn.__code__
    outlined: set[int] = set()  # the loops outlined: the ifs inside them went with them
    for node, path in _statements(tree):
        if any(id(owner) in outlined for _, _, owner in path):
            continue
        loop = isinstance(node, ast.For)
        sink = _loop_sink(node) if isinstance(node, ast.For) else _filter_sink(node)
        if sink is None:
            continue  # not a filter: no note
        target, test, expr = sink
        what = f"the {'loop' if loop else 'if'} at line {node.lineno} runs as written"
        why = _shape(fn, tree, node, path, target, test, expr)
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
    """``_outline._fingerprint`` of an expression's span without its jumps and None
    constants: where a test jumps to, and the helper's implicit ``return None``
    placed at the test, depend on the code around it."""
    return [step for step in o._fingerprint(code, o._span(expr))
            if "JUMP" not in step[0] and step[1] != ("NoneType", "None")]


def _statements(tree: ast.FunctionDef) -> Iterator[tuple[ast.If | ast.For, Any]]:
    """The function's own ``if`` and ``for`` statements outside every ``try`` and
    ``with``, outermost first, each with its path (statement list, index, owner) from the
    function body down."""

    def walk(body: list[ast.stmt], owner: object,
             path: Any) -> Iterator[tuple[ast.If | ast.For, Any]]:
        for i, stmt in enumerate(body):
            here = (*path, (body, i, owner))
            if isinstance(stmt, ast.If):
                yield stmt, here
                yield from walk(stmt.body, stmt.body, here)
                yield from walk(stmt.orelse, stmt.orelse, here)
            elif isinstance(stmt, ast.For | ast.While):
                if isinstance(stmt, ast.For):
                    yield stmt, here
                yield from walk(stmt.body, stmt, here)
                yield from walk(stmt.orelse, stmt.orelse, here)
            elif isinstance(stmt, ast.Match):
                for case in stmt.cases:
                    yield from walk(case.body, case, here)

    yield from walk(tree.body, tree, ())


def _filter_sink(node: ast.If) -> tuple[str, ast.expr, ast.expr] | None:
    """(list, test, value) of ``if test: list.append(value)``, else None."""
    if node.orelse or len(node.body) != 1:
        return None
    sink = _append(node.body[0])
    return None if sink is None else (sink[0], node.test, sink[1])


def _loop_sink(node: ast.For) -> tuple[str, ast.expr | None, ast.expr] | None:
    """(list, test or None, value) of ``for NAME in ITER: [if test:] list.append(value)``.

    ToT's ``for thought in propose(...): candidates.append(state + thought)``, a
    multi-hop ``for passage in search(q): if passage not in context: context.append(...)``:
    the body would wait for the result to iterate it, and the next call (the next
    state's proposal, the next query's search) would start only then.  The helper
    takes the iterable: ``ITER`` is evaluated in the body, where it was (its calls are
    deferred as usual), and the helper is a continuation on its value.
    """
    if node.orelse or len(node.body) != 1 or not isinstance(node.target, ast.Name):
        return None
    stmt = node.body[0]
    if isinstance(stmt, ast.If):
        return _filter_sink(stmt)
    sink = _append(stmt)
    return None if sink is None else (sink[0], None, sink[1])


def _append(stmt: ast.stmt) -> tuple[str, ast.expr] | None:
    """(list, value) of the statement ``list.append(value)``, else None."""
    if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
        return None
    call = stmt.value
    if (isinstance(call.func, ast.Attribute) and call.func.attr == "append"
            and isinstance(call.func.value, ast.Name) and len(call.args) == 1
            and not call.keywords and not isinstance(call.args[0], ast.Starred)):
        return call.func.value.id, call.args[0]
    return None


def _bad_test(test: ast.expr) -> str | None:
    """A test is an expression (``_outline``'s rules) or one comparison of two."""
    if isinstance(test, ast.Compare):
        if len(test.ops) != 1:
            return "its test chains comparisons (jumps)"
        return o._bad_expression(test.left) or o._bad_expression(test.comparators[0])
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return _bad_test(test.operand)
    return o._bad_expression(test)


def _shape(fn: FunctionType, tree: ast.FunctionDef, node: ast.If | ast.For, path: Any,
           target: str, test: ast.expr | None, expr: ast.expr) -> str | _Params:
    """Why the filter cannot be outlined, or the names the helper receives (in order: the
    list, for a loop the value it iterates, then the names its test and value read)."""
    code = fn.__code__
    bad = (test is not None and _bad_test(test)) or o._bad_expression(expr)
    if bad:
        return bad
    read = [e for e in (test, expr) if e is not None]
    for n in (m for e in read for m in ast.walk(e)):
        if (isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                and (n.func.id not in _FAST_BUILTINS or n.func.id in fn.__globals__
                     or n.func.id in code.co_varnames)):
            # ``if judge(r):`` may be a slow call of its own: deferred in the body as
            # written, it overlaps; inside the filter it would run in order.
            return f"it calls {n.func.id}(), which may be slow"
    var = None
    if isinstance(node, ast.For):
        var = node.target.id  # type: ignore[attr-defined]
        for n in (m for e in read for m in ast.walk(e)):
            # A loop's own methods of what it iterates (``p.strip()``) run on its items;
            # ``out.append(client.ask(d))`` over plain items is the map shape: each call
            # is deferred in the body and overlaps, in the helper they would run in turn.
            root = n.func if isinstance(n, ast.Call) else None
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and not (
                    isinstance(root, ast.Name) and root.id == var):
                return f"it calls .{n.func.attr}() of something else than its items"
        why = _bad_loop(code, tree, node, target)
        if why:
            return why
    # 3.11: a variable that only the function's comprehensions read is a cell, which
    # the flow tracks like a local (``_outline.comprehension_cells``): so may a filter.
    cells = o.comprehension_cells(code)
    locals_ = set(code.co_varnames) | cells
    unsafe = o._unbindable(tree)
    if (target not in locals_ or not o._only_lists(tree, target) or target in unsafe
            or not o._bound_before(tree, path, target)):
        return f"{target!r} is not a list the function builds"
    shared = (set(code.co_cellvars) | set(code.co_freevars)) - cells
    params: list[tuple[str, str]] = [(target, "cell" if target in cells else "fast")]
    if var is not None:
        params.append((_ITEMS, "stack"))
    for name in [n.id for e in read for n in ast.walk(e) if isinstance(n, ast.Name)]:
        if name == var:
            continue  # bound by the helper's own loop
        if name in shared:
            return f"it reads {name!r}, a variable shared with another function"
        if name in locals_:
            if name in unsafe or not o._bound_before(tree, path, name):
                return f"{name!r} may be unbound at the if"
            scope = "cell" if name in cells else "fast"
        elif name in fn.__globals__:
            if not isinstance(fn.__globals__[name], _FIXED):
                # Read when the filter runs, after the body went on: another function
                # the body calls may change it meanwhile (``CONFIG["k"] = ...``).
                return f"it reads the global {name!r}, which may change before it runs"
            scope = "global"
        elif hasattr(builtins, name):
            continue  # a builtin: the helper looks it up as plain does
        else:
            return f"{name!r} is not defined when the function is first called"
        if (name, scope) not in params:
            params.append((name, scope))
    return tuple(params)


# The helper's parameter for the value a loop iterates (``_bad_loop``: the function
# has no name like it).
_ITEMS = "xcs_items_"
_NOT_IN_ITER = (ast.NamedExpr, ast.Yield, ast.YieldFrom, ast.Await)


def _bad_loop(code: CodeType, tree: ast.FunctionDef, node: ast.For, target: str) -> str | None:
    """Why a loop that only filters into a list cannot be outlined, else None."""
    var = node.target.id  # type: ignore[attr-defined]
    if var not in code.co_varnames or var in code.co_cellvars:
        return f"its variable {var!r} is not a plain local"
    if var == target:
        return "it appends to its own loop variable"
    if _used_outside(tree, node, var):
        return f"the function uses {var!r} outside the loop too"
    for n in ast.walk(node.iter):
        if isinstance(n, _NOT_IN_ITER):
            return f"what it iterates has a {type(n).__name__}"
        if isinstance(n, ast.Name) and n.id == target:
            return f"it iterates {target!r}, the list it fills"
    if _ITEMS in code.co_varnames or _ITEMS in code.co_names:
        return f"the function has a name {_ITEMS!r}"
    return None


def _used_outside(tree: ast.FunctionDef, loop: ast.For, var: str) -> bool:
    """Does the function name ``var`` outside ``loop``?  Not counted: a comprehension,
    lambda or function of its own that binds the name (``for h, s in zip(...)`` of a
    generator expression is another ``h``)."""
    stack: list[ast.AST] = list(tree.body)
    while stack:
        n = stack.pop()
        if n is loop:  # what it iterates is evaluated before the loop binds the name
            stack.append(loop.iter)
            continue
        if isinstance(n, ast.Name) and n.id == var:
            return True
        if isinstance(n, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp) and any(
                isinstance(t, ast.Name) and t.id == var
                for g in n.generators for t in ast.walk(g.target)):
            stack.append(n.generators[0].iter)  # evaluated in the function's scope
            continue
        if isinstance(n, ast.Lambda | ast.FunctionDef | ast.AsyncFunctionDef) and var in {
                a.arg for a in ast.walk(n.args) if isinstance(a, ast.arg)}:
            continue
        stack.extend(ast.iter_child_nodes(n))
    return False


def _helper(fn: FunctionType, node: ast.If | ast.For, params: _Params) -> FunctionType:
    """Compile the helper from the statement's own nodes (their positions kept)."""

    def at(n: Any) -> Any:  # the helper's own nodes: column 0, outside every span
        n.lineno, n.col_offset, n.end_lineno, n.end_col_offset = node.lineno, 0, node.lineno, 0
        return n

    statement = copy.deepcopy(node)
    if isinstance(statement, ast.For) and isinstance(node, ast.For):  # iterates what the
        # body computed, at its place
        statement.iter = ast.copy_location(ast.Name(id=_ITEMS, ctx=ast.Load()), node.iter)
    arguments = ast.arguments(posonlyargs=[ast.arg(p) for p, _ in params], args=[],
                              kwonlyargs=[], kw_defaults=[], defaults=[])
    name = fn.__code__.co_name
    fields: dict[str, Any] = {"type_params": []} if "type_params" in ast.FunctionDef._fields else {}
    definition = at(ast.FunctionDef(name=name, args=arguments, body=[statement],
                                    decorator_list=[], returns=None, **fields))
    module = ast.Module(body=[definition], type_ignores=[])
    ast.fix_missing_locations(module)
    flags = fn.__code__.co_flags & o._FUTURE_FLAGS
    compiled = compile(module, fn.__code__.co_filename, "exec", flags=flags, dont_inherit=True)
    code = next(c for c in compiled.co_consts if isinstance(c, CodeType))
    code = code.replace(co_qualname=fn.__code__.co_qualname)
    helper = FunctionType(code, fn.__globals__, name)
    calls = o._direct_calls_of([node.body[0]] if isinstance(node, ast.For)
                               else [node.test, node.body[0]])
    helper.__xcs_calls__ = (tuple(p for p, _ in params), calls)  # type: ignore[attr-defined]
    kind = "for" if isinstance(node, ast.For) else "if"
    helper.__qualname__ = f"{fn.__qualname__}.<{kind} at line {node.lineno}>"
    if isinstance(node, ast.For):  # the parameter it iterates (``_trace.helper_stays``)
        helper.__xcs_iterates__ = 1  # type: ignore[attr-defined]
    helper.__module__ = fn.__module__
    HELPERS.add(code)
    WRITERS.add(code)
    return helper


# Globals a filter may read: what their contents are cannot change (a module's or a
# class's attributes are looked up as in plain, at the filter's time: like a callee's).
_FIXED = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type, int, float,
          complex, str, bytes, bool, type(None), frozenset, range)

# Builtins a filter's test or value may call (fast, and they run no code of the body's).
_FAST_BUILTINS = frozenset({"len", "str", "int", "float", "bool", "repr", "abs", "round",
                            "isinstance", "hasattr", "type", "min", "max", "sum", "sorted",
                            "tuple", "list", "set", "frozenset", "dict"})

_JUMPS = frozenset({"JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT", "JUMP",
                    "JUMP_NO_INTERRUPT"})
_ENDS = _JUMPS | {"RETURN_VALUE", "RETURN_CONST", "RAISE_VARARGS", "RERAISE"}


def _splice(bc: Bytecode, node: ast.If | ast.For, helper: FunctionType, params: _Params) -> bool:
    """Replace the statement's instructions in ``bc`` by the helper call, in place.

    They are the contiguous run located inside the statement; every way out of it
    (a jump to a label outside it, or falling off its end) must lead to one place,
    where the call then continues (the compiler may have copied a loop's jump back
    into both branches).
    """
    items = list(bc)
    span = o._span(node)
    inside = [i for i, x in enumerate(items) if isinstance(x, Instr) and o._inside(x.location, span)]
    if not inside:
        return False
    first, last = inside[0], inside[-1]
    run = items[first:last + 1]
    if any(isinstance(x, TryBegin | TryEnd) for x in run):
        return False
    if any(isinstance(x, Instr) and not o._inside(x.location, span)
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
    if not (isinstance(tail, Instr) and tail.name in _ENDS):
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
                isinstance(x, Instr) and not o._inside(x.location, o._span(node.iter))
                for x in prefix):
            return False
        inner = {id(x) for x in prefix if isinstance(x, Label)}
        if any(isinstance(x, Instr) and isinstance(x.arg, Label) and id(x.arg) not in inner
               for x in prefix):
            return False  # it jumps out of what it computes (it cannot, but say so)
        call = [*o._callable(helper, loc), *o._loads(params[:1], loc), *prefix,
                *o._loads(params[2:], loc), *ops.call(len(params), loc),
                Instr("POP_TOP", location=loc)]
    else:
        call = [*o._call(helper, params, loc), Instr("POP_TOP", location=loc)]
    if target is not after:
        if not isinstance(target, Label):
            return False
        backward = items.index(target) < first
        call.append(Instr("JUMP_BACKWARD" if backward else "JUMP_FORWARD", target, location=loc))
    bc[:] = [*items[:first], *call, *items[last + 1:]]
    return True
