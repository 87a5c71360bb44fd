"""Which ``try`` statements only compute a value (``_outline``): the shape of the
statement and its handlers, what they call, and whether the locals they read are
bound on every path.  Each check that fails says why, for ``explain()``."""

from __future__ import annotations

import ast
import builtins
from collections.abc import Callable, Iterable, Iterator
from types import FunctionType

from xcs import _compat
from xcs._cells import comprehension_cells

ops = _compat.required()


# Calls that must stay in the body's thread, in order: a try that makes one directly
# stays as written (a deferred helper would make it on a worker).
_STAYS = frozenset({"print", "input", "breakpoint", "super", "locals", "vars", "dir",
                    "eval", "exec", "globals", "__import__", "open", "sleep"})


_STAYS_METHODS = frozenset({"debug", "info", "warning", "warn", "error", "exception",
                            "critical", "log", "acquire", "release", "wait", "sleep",
                            "join", "notify", "notify_all", "set", "clear"})


# Expressions without jumps, nested scopes or suspension points.
_EXPR_NODES = (ast.Call, ast.Name, ast.Attribute, ast.Subscript, ast.Slice, ast.Constant,
               ast.BinOp, ast.UnaryOp, ast.Tuple, ast.List, ast.Dict, ast.Set,
               ast.JoinedStr, ast.FormattedValue, ast.Starred, ast.keyword,
               ast.expr_context, ast.operator, ast.unaryop)


_Path = tuple[tuple[list[ast.stmt], int, object], ...]


def try_statements(tree: ast.FunctionDef) -> Iterator[tuple[ast.Try, _Path | None]]:
    """The function's own ``try`` statements, each with its path: (statement list,
    index, owner) from the function body down; None for a try that another try or a
    ``with`` encloses (it keeps its protection)."""

    def walk(body: list[ast.stmt], owner: object, path: _Path | None,
             ) -> Iterator[tuple[ast.Try, _Path | None]]:
        for i, stmt in enumerate(body):
            here = None if path is None else (*path, (body, i, owner))
            if isinstance(stmt, ast.Try):
                yield stmt, here
                for inner in (stmt.body, *(h.body for h in stmt.handlers), stmt.orelse,
                              stmt.finalbody):
                    yield from walk(inner, inner, None)
            elif isinstance(stmt, ast.With):
                yield from walk(stmt.body, stmt.body, None)
            elif isinstance(stmt, ast.For | ast.While):
                yield from walk(stmt.body, stmt, here)
                yield from walk(stmt.orelse, stmt.orelse, here)
            elif isinstance(stmt, ast.If):
                yield from walk(stmt.body, stmt.body, here)
                yield from walk(stmt.orelse, stmt.orelse, here)
            elif isinstance(stmt, ast.Match):
                for case in stmt.cases:
                    yield from walk(case.body, case, here)

    yield from walk(tree.body, tree, ())


def shape(fn: FunctionType, tree: ast.FunctionDef, node: ast.Try,
           path: _Path) -> str | tuple[ast.expr, tuple[tuple[str, str], ...]]:
    """Why ``node`` cannot be outlined, or (its value expression, the names it reads
    that the body loads for the helper: (name, "fast", "cell" or "global"))."""
    code = fn.__code__
    if node.orelse or node.finalbody:
        return "it has an else or finally clause"
    if len(node.body) != 1:
        return "its body has more than one statement"
    sink = sink_of(node.body[0])
    if sink is None:
        return "its body is not 'name = value' or 'list.append(value)'"
    kind, target, expr = sink
    if not any(isinstance(n, ast.Call) for n in ast.walk(expr)):
        return "its body makes no call"
    bad = bad_expression(expr)
    if bad:
        return bad
    for handler in node.handlers:
        if handler.type is None:
            return "a bare 'except:' catches everything, KeyboardInterrupt included"
        if len(handler.body) != 1:
            return f"the except clause at line {handler.lineno} does more than give a value"
        other = sink_of(handler.body[0])
        if other is None or other[:2] != (kind, target):
            return (f"the except clause at line {handler.lineno} does more than give a "
                    "value to the same place")
        bad = bad_expression(other[2])
        if bad:
            return f"the except clause at line {handler.lineno}: {bad}"
        bad = bad_expression(handler.type) or _catches_interrupts(fn, handler.type)
        if bad:
            return bad
        if handler.name and _named_elsewhere(tree, node, handler.name):
            return (f"the except clause at line {handler.lineno} binds {handler.name!r},"
                    " which the function uses elsewhere (plain unbinds it)")
    locals_ = set(code.co_varnames)
    unsafe = unbindable(tree)
    if kind == "append":
        if target in set(code.co_freevars) or target not in locals_:
            return f"{target!r} is not a list the function builds"
        if not only_lists(tree, target) or target in unsafe:
            return f"{target!r} is not a list the function builds"
        if not bound_before(tree, path, target):
            return f"{target!r} may be unbound at the try"
    # A cell that only 3.11's comprehensions read runs no code later: a local here.
    cells = comprehension_cells(code)
    params: list[tuple[str, str]] = []
    why = add_params(params, _loaded_names(node, expr), fn, tree, path, locals_ | cells, cells,
                     unsafe, "try")
    return why or (expr, tuple(params))


def add_params(params: list[tuple[str, str]], names: Iterable[str], fn: FunctionType,
               tree: ast.FunctionDef, path: _Path, locals_: set[str] | frozenset[str],
               cells: set[str] | frozenset[str], unsafe: set[str], statement: str,
               changing: Callable[[object], bool] | None = None) -> str | None:
    """Add to ``params`` the ``(name, scope)`` a helper needs for each of the ``names``
    its statement reads (a builtin needs none); or say why one cannot be passed.

    ``cells`` are the locals kept in cells only comprehensions read; a global
    whose value ``changing`` accepts may change before the helper runs.
    """
    code = fn.__code__
    shared = (set(code.co_cellvars) | set(code.co_freevars)) - cells
    for name in names:
        if name in shared:  # another function may rebind it while the helper runs
            return f"it reads {name!r}, a variable shared with another function"
        if name in locals_:
            if name in unsafe or not bound_before(tree, path, name):
                return f"{name!r} may be unbound at the {statement}"
            scope = "cell" if name in cells else "fast"
        elif name in fn.__globals__:
            if changing is not None and changing(fn.__globals__[name]):
                # Read when the helper runs, after the body went on: another function
                # the body calls may change it meanwhile (``CONFIG["k"] = ...``).
                return f"it reads the global {name!r}, which may change before it runs"
            scope = "global"
        elif hasattr(builtins, name):
            continue  # a builtin: the helper looks it up as plain does
        else:
            return f"{name!r} is not defined when the function is first called"
        if (name, scope) not in params:
            params.append((name, scope))
    return None


def _catches_interrupts(fn: FunctionType, types: ast.expr) -> str | None:
    """Does the clause catch KeyboardInterrupt or SystemExit, which only the body's
    thread receives?  Its type is looked up now: a name or attribute of a global."""
    for part in types.elts if isinstance(types, ast.Tuple) else [types]:
        chain: list[str] = []
        while isinstance(part, ast.Attribute):
            chain.append(part.attr)
            part = part.value
        if not isinstance(part, ast.Name):
            return "its except clause's type is not a name"
        if part.id in fn.__code__.co_varnames:
            continue  # self.Error: an exception class of the user's own
        value = fn.__globals__.get(part.id, getattr(builtins, part.id, None))
        for attr in reversed(chain):
            value = getattr(value, attr, None)
        if not (isinstance(value, type) and issubclass(value, Exception)):
            return (f"its except clause catches {ast.unparse(types)}, not only Exception "
                    "subclasses (KeyboardInterrupt reaches only the body's thread)")
    return None


def _named_elsewhere(tree: ast.FunctionDef, node: ast.Try, name: str) -> bool:
    """Is ``name`` used in the function outside the except clauses that bind it
    (``except E as name``: inside one, the name is that clause's own)?"""
    inside = {id(n) for h in _scope_nodes(tree) if isinstance(h, ast.ExceptHandler)
              and h.name == name for n in ast.walk(h)}
    return any(isinstance(n, ast.Name) and n.id == name and id(n) not in inside
               for n in _scope_nodes(tree)) or name in {
        a.arg for a in ast.walk(tree.args) if isinstance(a, ast.arg)}


def sink_of(stmt: ast.stmt) -> tuple[str, str, ast.expr] | None:
    """('store', name, value) for ``name = value``; ('append', list, value) for
    ``list.append(value)``; None otherwise."""
    if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)):
        return "store", stmt.targets[0].id, stmt.value
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        call = stmt.value
        if (isinstance(call.func, ast.Attribute) and call.func.attr == "append"
                and isinstance(call.func.value, ast.Name) and len(call.args) == 1
                and not call.keywords and not isinstance(call.args[0], ast.Starred)):
            return "append", call.func.value.id, call.args[0]
    return None


def bad_expression(expr: ast.expr) -> str | None:
    for n in ast.walk(expr):
        if not isinstance(n, _EXPR_NODES):
            return f"its expression has a {type(n).__name__} (jumps, scopes or suspension)"
        if isinstance(n, ast.Name) and n.id in _STAYS | {"__class__"}:
            return f"it uses {n.id!r}, which stays in the function's frame"
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and (
                n.func.attr in _STAYS_METHODS):
            return f"it calls .{n.func.attr}(), which may have to stay in the body"
    return None


def _loaded_names(node: ast.Try, expr: ast.expr) -> list[str]:
    """The names the statement reads, in order (the handlers' own names excluded)."""
    names = [n.id for n in ast.walk(expr) if isinstance(n, ast.Name)]
    for handler in node.handlers:
        assert handler.type is not None
        names += [n.id for n in ast.walk(handler.type) if isinstance(n, ast.Name)]
        value = sink_of(handler.body[0])
        assert value is not None
        names += [n.id for n in ast.walk(value[2])
                  if isinstance(n, ast.Name) and n.id != handler.name]
    return names


def _scope_nodes(tree: ast.FunctionDef) -> Iterator[ast.AST]:
    """The nodes of the function's own scope (not of functions, lambdas, classes or
    comprehensions inside it)."""
    stack: list[ast.AST] = list(tree.body)
    while stack:
        n = stack.pop()
        yield n
        for child in ast.iter_child_nodes(n):
            if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
                              | ast.ClassDef | ast.ListComp | ast.SetComp | ast.DictComp
                              | ast.GeneratorExp):
                stack.append(child)


def unbindable(tree: ast.FunctionDef) -> set[str]:
    """Names the function may unbind or share: deleted, an ``except ... as`` name,
    declared global or nonlocal."""
    out: set[str] = set()
    for n in _scope_nodes(tree):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Del):
            out.add(n.id)
        elif isinstance(n, ast.ExceptHandler) and n.name:
            out.add(n.name)
        elif isinstance(n, ast.Global | ast.Nonlocal):
            out.update(n.names)
    return out


def only_lists(tree: ast.FunctionDef, name: str) -> bool:
    """Is every binding of ``name`` in the function ``name = [...]``?"""
    args = tree.args
    if name in {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)} | {
            a.arg for a in (args.vararg, args.kwarg) if a is not None}:
        return False
    allowed: set[int] = set()
    nodes = list(_scope_nodes(tree))
    for n in nodes:
        if (isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.value, ast.List)
                and isinstance(n.targets[0], ast.Name) and n.targets[0].id == name):
            allowed.add(id(n.targets[0]))
    for n in nodes:
        if (isinstance(n, ast.Name) and n.id == name and not isinstance(n.ctx, ast.Load)
                and id(n) not in allowed):
            return False  # bound some other way: a for target, unpacking, walrus, +=, del
        if isinstance(n, ast.alias) and (n.asname or n.name) == name:
            return False
    return True


def _binds(stmt: ast.stmt, name: str) -> bool:
    """Does ``stmt`` (run to completion) certainly leave ``name`` bound?"""
    if isinstance(stmt, ast.Assign):
        return any(_target_binds(t, name) for t in stmt.targets)
    if isinstance(stmt, ast.AnnAssign):
        return stmt.value is not None and _target_binds(stmt.target, name)
    if isinstance(stmt, ast.AugAssign):
        return _target_binds(stmt.target, name)
    return False


def _target_binds(target: ast.expr, name: str) -> bool:
    if isinstance(target, ast.Name):
        return target.id == name
    if isinstance(target, ast.Tuple | ast.List):
        return any(_target_binds(t, name) for t in target.elts)
    if isinstance(target, ast.Starred):
        return _target_binds(target.value, name)
    return False


def bound_before(tree: ast.FunctionDef, path: _Path, name: str) -> bool:
    """Is ``name`` bound on every path to the end of ``path``: a parameter, the target
    of an enclosing ``for`` (inside its body), or assigned by an earlier statement of an
    enclosing statement list?"""
    args = tree.args
    if name in {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)} | {
            a.arg for a in (args.vararg, args.kwarg) if a is not None}:
        return True
    for body, index, owner in path:
        if isinstance(owner, ast.For) and body is owner.body and _target_binds(owner.target, name):
            return True
        if any(_binds(stmt, name) for stmt in body[:index]):
            return True
    return False
