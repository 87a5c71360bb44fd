"""The instruction sequences the rewrite inserts around the body's own.

Each is stack-neutral where it is placed: it calls a hook with copies of stack
items (``copy_call``, ``probe``), replaces one with what a hook returns
(``resolve_at``), waits (``barrier``, ``guard_at``), or covers a body with a
handler (``catch_all``); ``clone`` and ``assemble`` copy and build the code.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterable
from types import CodeType
from typing import Any

from bytecode import Bytecode, Instr, Label
from bytecode.instr import CellVar, TryBegin, TryEnd

from xcs import _compat
from xcs._abstract import CallSite
from xcs._cfg import Cfg

# This CPython's bytecode (see _compat); the rewrite stage is only used where it exists.
ops = _compat.required()

__all__ = ["CellHook", "Exposure", "anchor", "assemble", "barrier", "catch_all", "cell_name",
           "clone", "copy_call", "guard_at", "location", "probe", "resolve_at"]

def location(items: list[Any]) -> Any:
    for item in reversed(items):
        if isinstance(item, Instr):
            return item.location
    return None


class CellHook:
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


class Exposure:
    """The run-time check of a closure cell (``Placement.exposures``).

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


def cell_name(instr: Instr) -> str | None:
    arg = instr.arg
    return getattr(arg, "name", None) if isinstance(arg, CellVar) else None


def anchor(cfg: Cfg, index: int) -> int:
    """Where insertions for instruction ``index`` go: before a CALL's glued prefix
    (``ops.CALL_PREFIX``), else at the instruction itself."""
    while index > 0 and cfg.instrs[index - 1].name in ops.CALL_PREFIX:
        index -= 1
    return index


def resolve_at(depth: int, hook: Callable[[Any], Any], loc: Any) -> list[Instr]:
    """Replace the stack item at ``depth`` (1 = top) with ``hook(item)``."""
    applied: list[Instr] = ops.apply(hook, loc)
    if depth == 1:
        return applied
    return [Instr("COPY", depth, location=loc), *applied,
            Instr("SWAP", depth + 1, location=loc), Instr("POP_TOP", location=loc)]


def barrier(hook: Callable[[Any], Any], loc: Any) -> list[Instr]:
    """Call ``hook(None)``: wait for every deferred call before a protected region."""
    return [Instr("LOAD_CONST", None, location=loc), *ops.apply(hook, loc),
            Instr("POP_TOP", location=loc)]


def probe(call: CallSite, hook: Callable[..., Any], loc: Any) -> list[Instr]:
    """Call ``hook(callable, *values)`` with copies of a call's operands, then drop its result."""
    roles = call.roles
    n = len(roles)
    return copy_call([n - k for k, role in enumerate(roles)
                       if role in ("callable", "arg", "star")
                       or (role == "kwstar" and not call.kwnull)], hook, loc)


def guard_at(depth: int, guard: Callable[[Any], Any], loc: Any) -> list[Any]:
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
    return [*seq, *copy_call([depth + 1], guard, loc), skip, Instr("POP_TOP", location=loc)]


def copy_call(depths: list[int], hook: Callable[..., Any], loc: Any) -> list[Instr]:
    """Call ``hook`` with copies of the stack items at ``depths`` (1 = top), drop its result."""
    seq: list[Instr] = [Instr("LOAD_CONST", hook, location=loc)]
    for pushed, depth in enumerate(depths):
        seq.append(Instr("COPY", depth + 1 + pushed, location=loc))
    seq += ops.call(len(depths) - 1, loc)
    seq.append(Instr("POP_TOP", location=loc))
    return seq


def catch_all(items: list[Any], abort: Callable[[BaseException], BaseException],
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


def clone(items: Iterable[Any]) -> list[Any]:
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


def assemble(model: Bytecode, items: list[Any]) -> CodeType:
    """Assemble ``items`` into a code object with ``model``'s name, flags and arguments."""
    result = model.copy()
    result.clear()
    result.extend(items)
    # The handlers' depths were kept from the original code and the rewrite
    # only adds stack-neutral sequences, so they are still right; recomputing
    # them changes a few percent of code objects even on a plain round trip.
    return result.to_code(compute_exception_stack_depths=False)
