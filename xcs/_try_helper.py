"""An outlined ``try``'s helper, compiled from the function's source and checked
against its code (the same instructions for the expression and the handlers), and
the splice that calls it in the statement's place (``_outline``)."""

from __future__ import annotations

import ast
import copy
import dis
from types import CodeType, FunctionType
from typing import Any

from bytecode import Bytecode, Instr
from bytecode.instr import CellVar, InstrLocation, TryBegin, TryEnd

from xcs import _compat
from xcs._codes import HELPERS, fold_caught
from xcs._try_shapes import sink_of

ops = _compat.required()


# -- the helper ------------------------------------------------------------------
def make_helper(fn: FunctionType, node: ast.Try, expr: ast.expr,
            params: tuple[tuple[str, str], ...]) -> FunctionType:
    """Compile the helper from the statement's own nodes (their positions kept)."""

    def at(n: Any, like: ast.AST) -> Any:
        # The helper's own nodes sit at column 0 of the line: outside every span
        # that ``same_source`` compares (the statement's code is indented).
        line = like.lineno  # type: ignore[attr-defined]
        n.lineno, n.col_offset, n.end_lineno, n.end_col_offset = line, 0, line, 0
        return n

    inner_handlers = []
    for handler in node.handlers:
        value = sink_of(handler.body[0])
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
    flags = fn.__code__.co_flags & FUTURE_FLAGS
    compiled = compile(module, fn.__code__.co_filename, "exec", flags=flags, dont_inherit=True)
    code = next(c for c in compiled.co_consts if isinstance(c, CodeType))
    code = code.replace(co_qualname=fn.__code__.co_qualname)
    helper = FunctionType(code, fn.__globals__, name)
    helper.__kwdefaults__ = {_FOLD: fold_caught}
    # What the trial checks before calling it (``_values.helper_stays``): its parameters,
    # and the calls it makes directly, as (root name, attributes).
    helper.__xcs_calls__ = (tuple(p for p, _ in params), _direct_calls(node, expr))  # type: ignore[attr-defined]
    helper.__qualname__ = f"{fn.__qualname__}.<try at line {node.lineno}>"
    helper.__module__ = fn.__module__
    HELPERS.add(code)
    return helper


def _direct_calls(node: ast.Try, expr: ast.expr) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The statement's calls of a name or of an attribute chain on a name."""
    values = [expr] + [v[2] for h in node.handlers if (v := sink_of(h.body[0])) is not None]
    return direct_calls_of(values)


def direct_calls_of(values: list[Any]) -> tuple[tuple[str, tuple[str, ...]], ...]:
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


FUTURE_FLAGS = 0
for _feature in ("annotations", "generator_stop", "barry_as_FLUFL"):
    FUTURE_FLAGS |= getattr(__import__("__future__"), _feature).compiler_flag


def same_source(code: CodeType, helper: CodeType, node: ast.Try, expr: ast.expr) -> bool:
    """Do the function and the helper compute the same thing for the statement's
    expression and handlers?  Compared instruction by instruction within each span,
    with loads of names compared by name (a local and a parameter load alike)."""
    spans = [span_of(expr)]
    for handler in node.handlers:
        assert handler.type is not None
        value = sink_of(handler.body[0])
        assert value is not None
        spans += [span_of(handler.type), span_of(value[2])]
    return all(fingerprint(code, s) == fingerprint(helper, s) != [] for s in spans)


def same_function(fn: FunctionType, tree: ast.FunctionDef) -> bool:
    """Does the source compile to the function's code?  Every instruction and its line
    are compared, loads and stores of names by name (a free variable of the function
    compiles to a global at the top level), jumps by kind: an edited file fails."""
    bare = copy.deepcopy(tree)
    bare.decorator_list = []
    try:
        module = compile(ast.Module(body=[bare], type_ignores=[]), fn.__code__.co_filename,
                         "exec", flags=fn.__code__.co_flags & FUTURE_FLAGS, dont_inherit=True)
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
        if name in ops.ATTRIBUTE_LOADS:
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
                    "MAKE_CELL", "RESUME"}) | ops.MARKERS


def span_of(n: ast.AST) -> tuple[int, int, int, int]:
    return (n.lineno, n.col_offset, n.end_lineno or n.lineno,  # type: ignore[attr-defined]
            n.end_col_offset or 0)  # type: ignore[attr-defined]


def located_in(pos: Any, span: tuple[int, int, int, int]) -> bool:
    if pos is None or pos.lineno is None or pos.col_offset is None:
        return False
    line, col, end_line, end_col = span
    end = (pos.end_lineno or pos.lineno, pos.end_col_offset or 0)
    return (line, col) <= (pos.lineno, pos.col_offset) and end <= (end_line, end_col)


_SKIPPED = frozenset({"CACHE", "EXTENDED_ARG"}) | ops.MARKERS


def fingerprint(code: CodeType, span: tuple[int, int, int, int]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for ins in dis.get_instructions(code):
        if not located_in(ins.positions, span) or ins.opname in _SKIPPED:
            continue
        name = ins.opname
        if name in ops.ATTRIBUTE_LOADS:  # (3.11 picks either of two for ``m.f(x)``)
            out.append(("ATTR", ins.argval))
        elif (name.startswith("LOAD_") and isinstance(ins.argval, str | tuple)
              and name != "LOAD_CONST" and not name.endswith("_ATTR")):  # a variable's load
            vals = ins.argval if isinstance(ins.argval, tuple) else (ins.argval,)
            out += [("LOAD", v) for v in vals if isinstance(v, str)]
        elif name in ("PUSH_NULL", "POP_EXCEPT", "RETURN_VALUE", "SWAP", "POP_TOP"):
            continue  # the call protocol's slot; the helper's ``return`` from a handler
        elif name in ops.RETURNS_CONST:
            out.append(("LOAD_CONST", _constant(ins.argval)))
        else:
            out.append((name, _constant(ins.argval)))
    return out


# -- the splice ------------------------------------------------------------------
def splice(bc: Bytecode, node: ast.Try, expr: ast.expr, helper: FunctionType,
            params: tuple[tuple[str, str], ...]) -> bool:
    """Replace the statement's protected region in ``bc`` by the helper call, in place.

    The region (a TryBegin ... TryEnd pair) holds the sink's own instructions around
    the contiguous run that computes ``expr``; the run becomes the call and the pair
    goes, so the handlers are left unreachable and the sink is plain code.
    """
    items = list(bc)
    span = span_of(expr)
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
        inside = [i for i, x in enumerate(region) if located_in(x.location, span)]
        if not inside or inside != list(range(inside[0], inside[-1] + 1)):
            return False
        pre, post = region[:inside[0]], region[inside[-1] + 1:]
        if not _sink_code(pre, post):
            return False
        loc = region[inside[0]].location
        loc = InstrLocation(span[0], span[2], span[1], span[3]) if loc is not None else loc
        call = helper_call(helper, params, loc)
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
            and all(x.name in _APPEND_CALL for x in post))


# The instructions after ``xs.append(value)``'s value: the call, and dropping its None.
_APPEND_CALL = ops.CALL_PREFIX | {x.name for x in ops.call(1)} | {"POP_TOP"}


def helper_call(helper: FunctionType, params: tuple[tuple[str, str], ...],
          loc: Any) -> list[Instr]:
    """``helper(*params)``: the locals and globals the statement reads, loaded where
    plain starts to evaluate it."""
    return [*helper_callable(helper, loc), *load_params(params, loc), *ops.call(len(params), loc)]


def helper_callable(helper: FunctionType, loc: Any) -> list[Instr]:
    """The two stack slots of a call of ``helper``: the function and the NULL."""
    fn = [Instr("LOAD_CONST", helper, location=loc)]
    null = [Instr("PUSH_NULL", location=loc)]
    return null + fn if ops.SLOT_BELOW_CALLABLE else fn + null


def load_params(params: tuple[tuple[str, str], ...], loc: Any) -> list[Instr]:
    return [Instr(ops.CHECKED_LOAD_FAST, name, location=loc) if scope == "fast" else
            Instr("LOAD_DEREF", CellVar(name), location=loc) if scope == "cell" else
            Instr("LOAD_GLOBAL", (False, name), location=loc) for name, scope in params]
