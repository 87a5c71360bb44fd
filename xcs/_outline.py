"""Outlining: a ``try`` statement that only computes one value becomes one call.

``try: v = json.loads(llm(d)) except ValueError: v = None`` stores one value into one
place (a local, or an ``append`` to a list the function built), whatever happens: the
value of the expression, or the value its ``except`` clause gives.  Such a statement
is the function ``safe(d)`` the user would otherwise write by hand::

    def <f>(d):                      # named like the function, in its file, at its lines
        try:
            return json.loads(llm(d))
        except ValueError:
            return None

so the trace and replay bodies call that helper in its place (``v = <f>(d)``), and a
replay defers the call whole like any slow call: the ``try`` runs inside it exactly as
written, the handler on the very exception object, at the moment plain runs it in
the call's own order.  The plain body is untouched.  A traceback through the helper
shows the function's frame at the helper's line instead (``_codes.fold_helper``).

What qualifies (anything else stays as written, with the reason in ``explain()``):
one statement in the ``try`` (``NAME = EXPR`` or ``LIST.append(EXPR)``, where LIST
is a local the function only ever binds to a list display), ``except`` clauses with
a type, each storing a value into the same place (an expression under EXPR's rules:
a constant, the exception, a retry), no ``else``/``finally``, not inside another
``try``/``with``; EXPR makes a call and has no jumps, nested scopes, ``await``/``yield`` or frame
readers; the locals it reads are bound before the ``try`` on every path (a
parameter, an enclosing ``for`` target, an earlier assignment in an enclosing
block) and never deleted.  Locals are passed as arguments; globals and builtins are
looked up in the helper, when plain looks them up.  The source must match the code:
the whole function's source must compile to its code, and the helper's instructions
for EXPR and the handlers must be the function's.
"""

from __future__ import annotations

import ast
import builtins
import copy
import dis
import inspect
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import CodeType, FunctionType
from typing import Any

from bytecode import Bytecode, Instr
from bytecode.instr import CellVar, InstrLocation, TryBegin, TryEnd

from xcs import _compat
from xcs._codes import HELPERS, fold_caught

ops: Any = _compat.ops

__all__ = ["Outline", "Outlined", "closure_cells", "comprehension_cells", "outline"]

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
# What a handler may give: values that cannot fail and run no user code.


@dataclass(frozen=True, slots=True)
class Outline:
    """One outlined ``try``: its line and the helper called in its place."""

    line: int
    helper: FunctionType
    params: tuple[tuple[str, str], ...]  # (name, scope): what the body passes it


@dataclass(frozen=True, slots=True)
class Outlined:
    """The function's code with its outlined ``try`` statements, and why others stay."""

    code: CodeType | None  # None: nothing outlined
    outlines: tuple[Outline, ...]
    notes: tuple[str, ...]


def outline(fn: FunctionType) -> Outlined:
    """The code of ``fn`` with every qualifying ``try`` (and filtering ``if``, see
    ``_filters``) replaced by a helper call."""
    code = fn.__code__
    if ops is None:
        return Outlined(None, (), ())
    bc = Bytecode.from_code(code, conserve_exception_block_stackdepth=True)
    tries = any(isinstance(x, TryBegin) for x in bc)
    if not tries and "append" not in code.co_names:
        return Outlined(None, (), ())
    tree = _function_tree(fn)
    if tree is None:
        return Outlined(None, (), ())
    if not _same_function(fn, tree):
        if not tries:
            return Outlined(None, (), ())
        return Outlined(None, (), ("its try statements run as written: the source found "
                                   "for it does not match its code",))
    done: list[Outline] = []
    notes: list[str] = []
    for node, path in _tries(tree) if tries else ():
        why = "it is inside another try or a with" if path is None else _shape(
            fn, tree, node, path)
        if isinstance(why, str):
            notes.append(f"the try at line {node.lineno} runs as written: {why}")
            continue
        expr, params = why
        try:
            helper = _helper(fn, node, expr, params)
            if not _same_source(code, helper.__code__, node, expr):
                notes.append(f"the try at line {node.lineno} runs as written: its source "
                             "does not match the function's code")
                continue
            if not _splice(bc, node, expr, helper, params):
                notes.append(f"the try at line {node.lineno} runs as written: its code "
                             "has an unexpected shape")
                continue
        except (SyntaxError, ValueError, TypeError) as exc:
            notes.append(f"the try at line {node.lineno} runs as written: {exc}")
            continue
        done.append(Outline(node.lineno, helper, params))
    from xcs._filters import filters  # (it builds on this module's rules)

    kept, filter_notes = filters(fn, tree, bc)
    done += [Outline(f.line, f.helper, f.params) for f in kept]
    notes += filter_notes
    if not done:
        return Outlined(None, (), tuple(notes))
    return Outlined(bc.to_code(compute_exception_stack_depths=False), tuple(done), tuple(notes))


# -- the source ------------------------------------------------------------------
def _function_tree(fn: FunctionType) -> ast.FunctionDef | None:
    """The function's definition, parsed with the file's line numbers and columns."""
    try:
        lines, start = inspect.getsourcelines(fn)
    except (OSError, TypeError):
        return None
    first = lines[0]
    indent = first[:len(first) - len(first.lstrip())]
    if any(line.strip() and not line.startswith(indent) for line in lines):
        return None
    try:
        module = ast.parse("".join(line[len(indent):] for line in lines))
    except SyntaxError:
        return None
    if len(module.body) != 1 or not isinstance(module.body[0], ast.FunctionDef):
        return None
    tree = module.body[0]
    if tree.name != fn.__code__.co_name:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt | ast.expr | ast.excepthandler | ast.arg | ast.keyword):
            node.lineno += start - 1
            node.end_lineno = (node.end_lineno or node.lineno) + start - 1
            node.col_offset += len(indent)
            node.end_col_offset = (node.end_col_offset or 0) + len(indent)
    return tree


_Path = tuple[tuple[list[ast.stmt], int, object], ...]


def _tries(tree: ast.FunctionDef) -> Iterator[tuple[ast.Try, _Path | None]]:
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


def _shape(fn: FunctionType, tree: ast.FunctionDef, node: ast.Try,
           path: _Path) -> str | tuple[ast.expr, tuple[tuple[str, str], ...]]:
    """Why ``node`` cannot be outlined, or (its value expression, the names it reads
    that the body loads for the helper: (name, "fast", "cell" or "global"))."""
    code = fn.__code__
    if node.orelse or node.finalbody:
        return "it has an else or finally clause"
    if len(node.body) != 1:
        return "its body has more than one statement"
    sink = _sink(node.body[0])
    if sink is None:
        return "its body is not 'name = value' or 'list.append(value)'"
    kind, target, expr = sink
    if not any(isinstance(n, ast.Call) for n in ast.walk(expr)):
        return "its body makes no call"
    bad = _bad_expression(expr)
    if bad:
        return bad
    for handler in node.handlers:
        if handler.type is None:
            return "a bare 'except:' catches everything, KeyboardInterrupt included"
        if len(handler.body) != 1:
            return f"the except clause at line {handler.lineno} does more than give a value"
        other = _sink(handler.body[0])
        if other is None or other[:2] != (kind, target):
            return (f"the except clause at line {handler.lineno} does more than give a "
                    "value to the same place")
        bad = _bad_expression(other[2])
        if bad:
            return f"the except clause at line {handler.lineno}: {bad}"
        bad = _bad_expression(handler.type) or _catches_interrupts(fn, handler.type)
        if bad:
            return bad
        if handler.name and _named_elsewhere(tree, node, handler.name):
            return (f"the except clause at line {handler.lineno} binds {handler.name!r},"
                    " which the function uses elsewhere (plain unbinds it)")
    locals_ = set(code.co_varnames)
    unsafe = _unbindable(tree)
    if kind == "append":
        if target in set(code.co_freevars) or target not in locals_:
            return f"{target!r} is not a list the function builds"
        if not _only_lists(tree, target) or target in unsafe:
            return f"{target!r} is not a list the function builds"
        if not _bound_before(tree, path, target):
            return f"{target!r} may be unbound at the try"
    # A cell that only 3.11's comprehensions read runs no code later: a local here.
    cells = comprehension_cells(code)
    closure = (set(code.co_cellvars) - cells) | set(code.co_freevars)
    params: list[tuple[str, str]] = []
    for name in _loaded_names(node, expr):
        if name in closure:  # another function may rebind it while the helper runs
            return f"it reads {name!r}, a variable shared with another function"
        if name in locals_ or name in cells:
            if name in unsafe or not _bound_before(tree, path, name):
                return f"{name!r} may be unbound at the try"
            scope = "cell" if name in cells else "fast"
        elif name in fn.__globals__:
            scope = "global"
        elif hasattr(builtins, name):
            continue  # a builtin: the helper looks it up as plain does
        else:
            return f"{name!r} is not defined when the function is first called"
        if (name, scope) not in params:
            params.append((name, scope))
    return expr, tuple(params)


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


def _sink(stmt: ast.stmt) -> tuple[str, str, ast.expr] | None:
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


def _bad_expression(expr: ast.expr) -> str | None:
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
        value = _sink(handler.body[0])
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


def _unbindable(tree: ast.FunctionDef) -> set[str]:
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


def _only_lists(tree: ast.FunctionDef, name: str) -> bool:
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


def _bound_before(tree: ast.FunctionDef, path: _Path, name: str) -> bool:
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


# -- the helper ------------------------------------------------------------------
def _helper(fn: FunctionType, node: ast.Try, expr: ast.expr,
            params: tuple[tuple[str, str], ...]) -> FunctionType:
    """Compile the helper from the statement's own nodes (their positions kept)."""

    def at(n: Any, like: ast.AST) -> Any:
        # The helper's own nodes sit at column 0 of the line: outside every span
        # that ``_same_source`` compares (the statement's code is indented).
        line = like.lineno  # type: ignore[attr-defined]
        n.lineno, n.col_offset, n.end_lineno, n.end_col_offset = line, 0, line, 0
        return n

    inner_handlers = []
    for handler in node.handlers:
        value = _sink(handler.body[0])
        assert value is not None
        body: list[ast.stmt] = [at(ast.Return(copy.deepcopy(value[2])), handler.body[0])]
        if handler.name:  # the exception is kept: its traceback as plain's (fold_caught)
            tb = [at(ast.Attribute(at(ast.Name(handler.name, ast.Load()), handler),
                                   "__traceback__", ctx), handler)
                  for ctx in (ast.Store(), ast.Load())]
            body.insert(0, at(ast.Assign(targets=[tb[0]], value=at(ast.Call(
                at(ast.Name(_FOLD, ast.Load()), handler), [tb[1]], []), handler)), handler))
        inner_handlers.append(at(ast.ExceptHandler(
            type=copy.deepcopy(handler.type), name=handler.name, body=body), handler))
    inner = at(ast.Try(body=[at(ast.Return(copy.deepcopy(expr)), node.body[0])],
                       handlers=inner_handlers, orelse=[], finalbody=[]), node)
    arguments = ast.arguments(posonlyargs=[ast.arg(p) for p, _ in params], args=[],
                              kwonlyargs=[ast.arg(_FOLD)], kw_defaults=[ast.Constant(None)],
                              defaults=[])
    name = fn.__code__.co_name
    fields: dict[str, Any] = {"type_params": []} if "type_params" in ast.FunctionDef._fields else {}
    definition = at(ast.FunctionDef(name=name, args=arguments, body=[inner],
                                    decorator_list=[], returns=None, **fields), node)
    module = ast.Module(body=[definition], type_ignores=[])
    ast.fix_missing_locations(module)
    flags = fn.__code__.co_flags & _FUTURE_FLAGS
    compiled = compile(module, fn.__code__.co_filename, "exec", flags=flags, dont_inherit=True)
    code = next(c for c in compiled.co_consts if isinstance(c, CodeType))
    code = code.replace(co_qualname=fn.__code__.co_qualname)
    helper = FunctionType(code, fn.__globals__, name)
    helper.__kwdefaults__ = {_FOLD: fold_caught}
    # What the trial checks before calling it (``_trace.helper_stays``): its parameters,
    # and the calls it makes directly, as (root name, attributes).
    helper.__xcs_calls__ = (tuple(p for p, _ in params), _direct_calls(node, expr))  # type: ignore[attr-defined]
    helper.__qualname__ = f"{fn.__qualname__}.<try at line {node.lineno}>"
    helper.__module__ = fn.__module__
    HELPERS.add(code)
    return helper


def _direct_calls(node: ast.Try, expr: ast.expr) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The statement's calls of a name or of an attribute chain on a name."""
    values = [expr] + [v[2] for h in node.handlers if (v := _sink(h.body[0])) is not None]
    return _direct_calls_of(values)


def _direct_calls_of(values: list[Any]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    out = []
    for value in values:
        for n in ast.walk(value):
            if isinstance(n, ast.Call):
                chain: list[str] = []
                func = n.func
                while isinstance(func, ast.Attribute):
                    chain.append(func.attr)
                    func = func.value
                if isinstance(func, ast.Name):
                    out.append((func.id, tuple(reversed(chain))))
    return tuple(out)


_FOLD = "__xcs_fold_caught"  # the helper's keyword-only parameter: ``fold_caught``

_FUTURE_FLAGS = 0
for _feature in ("annotations", "generator_stop", "barry_as_FLUFL"):
    _FUTURE_FLAGS |= getattr(__import__("__future__"), _feature).compiler_flag


def _same_source(code: CodeType, helper: CodeType, node: ast.Try, expr: ast.expr) -> bool:
    """Do the function and the helper compute the same thing for the statement's
    expression and handlers?  Compared instruction by instruction within each span,
    with loads of names compared by name (a local and a parameter load alike)."""
    spans = [_span(expr)]
    for handler in node.handlers:
        assert handler.type is not None
        value = _sink(handler.body[0])
        assert value is not None
        spans += [_span(handler.type), _span(value[2])]
    return all(_fingerprint(code, s) == _fingerprint(helper, s) != [] for s in spans)


def _same_function(fn: FunctionType, tree: ast.FunctionDef) -> bool:
    """Does the source compile to the function's code?  Every instruction and its line
    are compared, loads and stores of names by name (a free variable of the function
    compiles to a global at the top level), jumps by kind: an edited file fails."""
    bare = copy.deepcopy(tree)
    bare.decorator_list = []
    try:
        module = compile(ast.Module(body=[bare], type_ignores=[]), fn.__code__.co_filename,
                         "exec", flags=fn.__code__.co_flags & _FUTURE_FLAGS, dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    compiled = next((c for c in module.co_consts if isinstance(c, CodeType)), None)
    return compiled is not None and _listing(compiled) == _listing(fn.__code__)


def _listing(code: CodeType) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for ins in dis.get_instructions(code):
        name = ins.opname
        if name in _NOISE:
            continue
        line = ins.positions.lineno if ins.positions is not None else None
        if name in ("LOAD_ATTR", "LOAD_METHOD"):
            out.append((line, "ATTR", ins.argval))
        elif (name.startswith(("LOAD_", "STORE_", "DELETE_")) and name != "LOAD_CONST"
              and isinstance(ins.argval, str | tuple)):
            kind = name.split("_", 1)[0]
            vals = ins.argval if isinstance(ins.argval, tuple) else (ins.argval,)
            out += [(line, kind, v) for v in vals if isinstance(v, str)]
        elif ins.opcode in dis.hasjrel or ins.opcode in dis.hasjabs:
            out.append((line, name))
        else:
            out.append((line, name, _constant(ins.argval)))
    return out


def _constant(value: Any) -> Any:
    """A key that tells constants apart as plain does (``1``, ``1.0`` and ``True``
    differ; tuples by their items); a code object by its name."""
    if isinstance(value, CodeType):
        return ("code", value.co_name)
    if isinstance(value, tuple | frozenset):
        return (type(value).__name__, tuple(sorted(map(repr, map(_constant, value))))
                if isinstance(value, frozenset) else tuple(map(_constant, value)))
    return (type(value).__name__, repr(value))


# Instructions whose presence depends on where the code was compiled, not what it does.
_NOISE = frozenset({"CACHE", "EXTENDED_ARG", "NOP", "PUSH_NULL", "COPY_FREE_VARS",
                    "MAKE_CELL", "RESUME", "NOT_TAKEN"})


def _span(n: ast.AST) -> tuple[int, int, int, int]:
    return (n.lineno, n.col_offset, n.end_lineno or n.lineno,  # type: ignore[attr-defined]
            n.end_col_offset or 0)  # type: ignore[attr-defined]


def _inside(pos: Any, span: tuple[int, int, int, int]) -> bool:
    if pos is None or pos.lineno is None or pos.col_offset is None:
        return False
    line, col, end_line, end_col = span
    end = (pos.end_lineno or pos.lineno, pos.end_col_offset or 0)
    return (line, col) <= (pos.lineno, pos.col_offset) and end <= (end_line, end_col)


def _fingerprint(code: CodeType, span: tuple[int, int, int, int]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for ins in dis.get_instructions(code):
        if not _inside(ins.positions, span) or ins.opname in ("CACHE", "NOT_TAKEN", "EXTENDED_ARG"):
            continue
        name = ins.opname
        if name in ("LOAD_ATTR", "LOAD_METHOD"):  # 3.11 picks either for ``m.f(x)``
            out.append(("ATTR", ins.argval))
        elif name.startswith("LOAD_") and (isinstance(ins.argval, str | tuple)
                                         and name not in ("LOAD_CONST", "LOAD_ATTR",
                                                          "LOAD_METHOD", "LOAD_SUPER_ATTR")):
            vals = ins.argval if isinstance(ins.argval, tuple) else (ins.argval,)
            out += [("LOAD", v) for v in vals if isinstance(v, str)]
        elif name in ("PUSH_NULL", "POP_EXCEPT", "RETURN_VALUE", "SWAP", "POP_TOP"):
            continue  # the call protocol's slot; the helper's ``return`` from a handler
        elif name == "RETURN_CONST":
            out.append(("LOAD_CONST", _constant(ins.argval)))
        else:
            out.append((name, _constant(ins.argval)))
    return out


# -- the splice ------------------------------------------------------------------
def _splice(bc: Bytecode, node: ast.Try, expr: ast.expr, helper: FunctionType,
            params: tuple[tuple[str, str], ...]) -> bool:
    """Replace the statement's protected region in ``bc`` by the helper call, in place.

    The region (a TryBegin ... TryEnd pair) holds the sink's own instructions around
    the contiguous run that computes ``expr``; the run becomes the call and the pair
    goes, so the handlers are left unreachable and the sink is plain code.
    """
    items = list(bc)
    span = _span(expr)
    body_line = node.body[0].lineno
    for start, item in enumerate(items):
        if not isinstance(item, TryBegin):
            continue
        first = next((x for x in items[start + 1:] if isinstance(x, Instr)), None)
        if first is None or first.location is None or first.location.lineno != body_line:
            continue
        end = next((j for j, x in enumerate(items)
                    if j > start and isinstance(x, TryEnd) and x.entry is item), None)
        if end is None:
            return False
        region = [x for x in items[start + 1:end] if isinstance(x, Instr)]
        if len(region) != end - start - 1:
            return False  # a label, a nested try or a line marker inside: not ours
        inside = [i for i, x in enumerate(region) if _inside(x.location, span)]
        if not inside or inside != list(range(inside[0], inside[-1] + 1)):
            return False
        pre, post = region[:inside[0]], region[inside[-1] + 1:]
        if not _sink_code(pre, post):
            return False
        loc = region[inside[0]].location
        loc = InstrLocation(span[0], span[2], span[1], span[3]) if loc is not None else loc
        call = _call(helper, params, loc)
        bc[:] = [*items[:start], *pre, *call, *post, *items[end + 1:]]
        return True
    return False


def _sink_code(pre: list[Instr], post: list[Instr]) -> bool:
    """Are the instructions around the value only a store, or ``list.append`` and POP_TOP?"""
    if not pre:
        return len(post) == 1 and post[0].name in ("STORE_FAST", "STORE_DEREF",
                                                   "STORE_GLOBAL", "STORE_NAME")
    names = [x.name for x in pre]
    return (len(pre) == 2 and names[0] in ops.LOAD_FAST_OPS | {"LOAD_DEREF"}
            and ops.method_name(pre[1]) == "append"
            and post[-1].name == "POP_TOP"
            and all(x.name in ops.CALL_PREFIX | {"CALL", "PRECALL", "POP_TOP"} for x in post))


def _call(helper: FunctionType, params: tuple[tuple[str, str], ...],
          loc: Any) -> list[Instr]:
    """``helper(*params)``: the locals and globals the statement reads, loaded where
    plain starts to evaluate it."""
    return [*_callable(helper, loc), *_loads(params, loc), *ops.call(len(params), loc)]


def _callable(helper: FunctionType, loc: Any) -> list[Instr]:
    """The two stack slots of a call of ``helper``: the function and the NULL."""
    fn = [Instr("LOAD_CONST", helper, location=loc)]
    null = [Instr("PUSH_NULL", location=loc)]
    return null + fn if ops.SLOT_BELOW_CALLABLE else fn + null


def _loads(params: tuple[tuple[str, str], ...], loc: Any) -> list[Instr]:
    return [Instr(ops.CHECKED_LOAD_FAST, name, location=loc) if scope == "fast" else
            Instr("LOAD_DEREF", CellVar(name), location=loc) if scope == "cell" else
            Instr("LOAD_GLOBAL", (False, name), location=loc) for name, scope in params]


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
