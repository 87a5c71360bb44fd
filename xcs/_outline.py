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
import inspect
from dataclasses import dataclass
from types import CodeType, FunctionType

from bytecode import Bytecode
from bytecode.instr import TryBegin

from xcs import _compat
from xcs._try_helper import make_helper, same_function, same_source, splice
from xcs._try_shapes import shape, try_statements

__all__ = ["Outline", "Outlined", "outline"]


ops = _compat.required()


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
    bc = Bytecode.from_code(code, conserve_exception_block_stackdepth=True)
    tries = any(isinstance(x, TryBegin) for x in bc)
    if not tries and "append" not in code.co_names:
        return Outlined(None, (), ())
    tree = _function_tree(fn)
    if tree is None:
        return Outlined(None, (), ())
    if not same_function(fn, tree):
        if not tries:
            return Outlined(None, (), ())
        return Outlined(None, (), ("its try statements run as written: the source found "
                                   "for it does not match its code",))
    done: list[Outline] = []
    notes: list[str] = []
    for node, path in try_statements(tree) if tries else ():
        why = "it is inside another try or a with" if path is None else shape(
            fn, tree, node, path)
        if isinstance(why, str):
            notes.append(f"the try at line {node.lineno} runs as written: {why}")
            continue
        expr, params = why
        try:
            helper = make_helper(fn, node, expr, params)
            if not same_source(code, helper.__code__, node, expr):
                notes.append(f"the try at line {node.lineno} runs as written: its source "
                             "does not match the function's code")
                continue
            if not splice(bc, node, expr, helper, params):
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
