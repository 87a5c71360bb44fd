"""Which ``if`` and ``for`` statements only fill a list the body built (``_filters``):
the statement's shape, its test, what its loop iterates, and whether its names
are used where a helper could not see them.  Each check that fails says why."""

from __future__ import annotations

import ast
import types
from collections.abc import Iterator
from types import CodeType, FunctionType
from typing import Any

from xcs import _cells, _compat, _try_shapes  # the source rules and the splice's pieces

ops = _compat.required()


Params = tuple[tuple[str, str], ...]

# Globals a filter may read: what their contents are cannot change (a module's or a
# class's attributes are looked up as in plain, at the filter's time: like a callee's).
FIXED = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type, int, float,
          complex, str, bytes, bool, type(None), frozenset, range)

# Builtins a filter's test or value may call (fast, and they run no code of the body's).
FAST_BUILTINS = frozenset({"len", "str", "int", "float", "bool", "repr", "abs", "round",
                            "isinstance", "hasattr", "type", "min", "max", "sum", "sorted",
                            "tuple", "list", "set", "frozenset", "dict"})


def statements(tree: ast.FunctionDef) -> Iterator[tuple[ast.If | ast.For, Any]]:
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


def filter_sink(node: ast.If) -> tuple[str, ast.expr, ast.expr] | None:
    """(list, test, value) of ``if test: list.append(value)``, else None."""
    if node.orelse or len(node.body) != 1:
        return None
    sink = _append(node.body[0])
    return None if sink is None else (sink[0], node.test, sink[1])


def loop_sink(node: ast.For) -> tuple[str, ast.expr | None, ast.expr] | None:
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
        return filter_sink(stmt)
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
        return _try_shapes.bad_expression(test.left) or _try_shapes.bad_expression(test.comparators[0])
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return _bad_test(test.operand)
    return _try_shapes.bad_expression(test)


def shape(fn: FunctionType, tree: ast.FunctionDef, node: ast.If | ast.For, path: Any,
           target: str, test: ast.expr | None, expr: ast.expr) -> str | Params:
    """Why the filter cannot be outlined, or the names the helper receives (in order: the
    list, for a loop the value it iterates, then the names its test and value read)."""
    code = fn.__code__
    bad = (test is not None and _bad_test(test)) or _try_shapes.bad_expression(expr)
    if bad:
        return bad
    read = [e for e in (test, expr) if e is not None]
    for n in (m for e in read for m in ast.walk(e)):
        if (isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                and (n.func.id not in FAST_BUILTINS or n.func.id in fn.__globals__
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
    # the flow tracks like a local (``_cells.comprehension_cells``): so may a filter.
    cells = _cells.comprehension_cells(code)
    locals_ = set(code.co_varnames) | cells
    unsafe = _try_shapes.unbindable(tree)
    if (target not in locals_ or not _try_shapes.only_lists(tree, target) or target in unsafe
            or not _try_shapes.bound_before(tree, path, target)):
        return f"{target!r} is not a list the function builds"
    params: list[tuple[str, str]] = [(target, "cell" if target in cells else "fast")]
    if var is not None:
        params.append((ITEMS, "stack"))
    names = [n.id for e in read for n in ast.walk(e) if isinstance(n, ast.Name) and n.id != var]
    why = _try_shapes.add_params(params, names, fn, tree, path, locals_, cells, unsafe, "if",
                                 lambda value: not isinstance(value, FIXED))
    return why or tuple(params)


# The helper's parameter for the value a loop iterates (``_bad_loop``: the function
# has no name like it).
ITEMS = "xcs_items_"


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
    if ITEMS in code.co_varnames or ITEMS in code.co_names:
        return f"the function has a name {ITEMS!r}"
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
