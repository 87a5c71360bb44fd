"""Which objects deferred calls own, and which of them the body is about to read.

An object handed to a deferred call (an argument, an item of a container
argument, the ``self`` of a bound method, the arguments of a partial) belongs
to that call until it finishes: the body must neither change nor read it
meanwhile, by any route.  Rather than guessing from method names which calls
change what, the replay tracks the objects themselves, by identity:

* ``own`` registers, when a call is deferred, every object it can reach
  through builtin containers (immutable builtins aside: nobody can change a
  str or an int);
* the rewritten body calls ``touch`` before each instruction that reads an
  object which may be owned (an attribute, a subscript, an iteration, an
  operator, a call that receives it), and waits for the owning calls.

``OWNED`` is one table for the process so that the rewritten code can test it
inline (``if OWNED:``, two instructions) and call a hook only while some
deferred call owns something.  Objects stay alive while owned (the task holds
its arguments), so their ids cannot be reused meanwhile.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections import deque
from types import BuiltinFunctionType, CodeType, FunctionType, MethodType, ModuleType
from typing import Any

__all__ = ["ALL", "CHECKED_GENERATORS", "MUTATORS", "OWNED", "clear", "disown", "keys_of", "own",
           "owners"]

# id -> the unfinished tasks that received that object.  Key 0 (never an object's
# id) lists the tasks that received more than BUDGET objects: they own everything.
class _Table(dict[int, list[Any]]):
    """A dict that hashes by identity: it sits in rewritten code's constants, and a
    code object's hash is that of its constants (tracebacks hash frames' code)."""

    __slots__ = ()
    __hash__ = object.__hash__  # type: ignore[assignment]


OWNED = _Table()
_lock = threading.Lock()
# Objects looked at per deferred call or per touch before giving up on precision
# (about 1.5 ms): past it a call owns everything, and the body waits for it before
# it reads any object that is not an immutable builtin (or the iterator of one of
# its loops); a touch waits for every owner.
BUDGET = 10_000

# Nobody can change these (a function or a module can be, but owning the callee
# of every call would stop the body at its next call of anything); the replay
# adds its placeholders.
NEVER_OWNED = set({str, int, float, complex, bool, bytes, type(None), type(Ellipsis),
                          type(NotImplemented), range, slice, type, FunctionType,
                          ModuleType})  # and the replay's placeholders
_SCANNED = frozenset({list, tuple, dict, set, frozenset, deque})
# Bound methods of every kind (a builtin function's __self__ is its module): made
# anew at each attribute load, so what counts is the object they are bound to.
BOUND = frozenset({MethodType, BuiltinFunctionType, type((1).__add__)})
# Builtins that look at their arguments, not inside them (``len(docs)`` reads docs,
# not the documents): their arguments are checked like an attribute's owner.
_SHALLOW_CALLEES = frozenset(map(id, (len, isinstance, issubclass, id, type, iter, next,
                                      enumerate, zip, range, reversed, list, tuple, dict, set,
                                      frozenset, getattr, hasattr, callable, bool)))
# The replay codes of the body's generator expressions: they check their own reads
# (touches, like the body's), and calling one runs none of its code (it makes the
# generator), so the call reads neither its closure's cells nor its iterator.
CHECKED_GENERATORS: weakref.WeakSet[CodeType] = weakref.WeakSet()
# Methods that change the builtin container they are called on.
MUTATORS = frozenset({"append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse",
                      "update", "setdefault", "popitem", "add", "discard", "appendleft",
                      "extendleft", "popleft", "rotate", "__setitem__", "__delitem__"})
ALL = object()  # ``owners`` when the objects reach too far: wait for every owner
# The builtin iterators a loop advances on every iteration: a call that owns
# everything does not stop ``for i in range(n)``.  (An iterator handed to a call
# as such is owned by identity like any object.)
_LOOP_ITERATORS = frozenset(map(type, (iter([]), iter(()), iter(""), iter(b""), iter(range(0)),
                                        iter({}), iter(set()), iter({}.values()),
                                        iter({}.items()), enumerate(()), zip(), map(id, ()),
                                        filter(None, ()), reversed([]))))


def _contents(cells: tuple[Any, ...]) -> list[Any]:
    out = []
    for cell in cells:
        try:
            out.append(cell.cell_contents)
        except ValueError:  # an empty cell
            pass
    return out


def reach(values: Any, deep: bool, budget: int = BUDGET) -> tuple[list[Any], bool]:
    """The objects ``values`` hold that a call could change or read, and whether the
    budget ran out first.  With ``deep``, items of builtin containers, the ``self``
    of bound methods and the parts of partials count too."""
    found: list[Any] = []
    stack = list(values)
    seen: set[int] = set()
    while stack:
        value = stack.pop()
        budget -= 1
        if budget < 0:
            return found, True
        kind = type(value)
        if kind in NEVER_OWNED:
            if deep and kind is FunctionType and value.__closure__ and id(value) not in seen:
                # A closure reads what its cells hold when it is called: a callee that
                # receives ``lambda i: out[i]`` reads ``out``.
                seen.add(id(value))
                stack.extend(_contents(value.__closure__))
            continue
        if id(value) in seen:
            continue
        seen.add(id(value))
        if kind in BOUND:
            owner = getattr(value, "__self__", None)
            if type(owner) in _SCANNED:
                # A builtin container's own method (``cache.get``, ``xs.append``)
                # works on the container, not inside its items.
                if id(owner) not in seen:
                    seen.add(id(owner))
                    found.append(owner)
            elif owner is not None and type(owner) is not ModuleType:
                stack.append(owner)
            continue
        if kind not in (tuple, frozenset):  # immutable shells: only their items count
            found.append(value)
        if not deep:
            continue
        if kind in _SCANNED:
            if len(value) * (2 if kind is dict else 1) > budget:  # not worth copying
                return found, True
            stack.extend(value.values() if kind is dict else value)
            if kind is dict:
                stack.extend(value)
        elif kind is functools.partial:
            stack += [value.func, *value.args, *value.keywords.values()]
    return found, False


def keys_of(values: Any) -> list[int]:
    """The keys under which a call that received ``values`` owns them."""
    for value in values:  # the common case first: ``llm(prompt)``, ``fetch(i)``
        kind = type(value)
        if kind not in NEVER_OWNED or (kind is FunctionType and value.__closure__):
            break
    else:
        return []
    objs, overflow = reach(values, deep=True)
    return [0] if overflow else [id(v) for v in objs]


def own(task: Any, values: Any = (), keys: list[int] | None = None) -> None:
    """Register what the deferred call ``task`` received (its ``owns`` list is set)."""
    if keys is None:
        keys = keys_of(values)
    if not keys:
        return
    with _lock:
        for key in keys:
            holders = OWNED.get(key)
            if holders is None:
                OWNED[key] = [task]
            else:
                holders.append(task)
    task.owns = keys if task.owns is None else task.owns + keys


def disown(task: Any) -> None:
    """``task`` finished (or will never run): its objects are free again."""
    keys, task.owns = task.owns, None
    if not keys:
        return
    with _lock:
        for key in keys:
            holders = OWNED.get(key)
            if holders is not None:
                try:
                    holders.remove(task)
                except ValueError:
                    pass
                if not holders:
                    del OWNED[key]


def clear(values: tuple[Any, ...], mode: int) -> bool:
    """A quick test: True when none of ``values`` can reach an owned object.

    Most reads meet strings, numbers, functions and objects nobody owns; only a
    container (in a deep read or a call), a closure or a partial (as a callee),
    an owned object, or a call that owns everything need ``owners``.
    """
    owned = OWNED
    if 0 in owned:
        return False
    never = NEVER_OWNED
    for value in values:
        kind = type(value)
        if kind in never:
            if mode == 2 and kind is FunctionType and value.__closure__:
                # A generator expression that checks its own reads: its iterator is its
                # only argument, read when it runs.
                return value.__code__ in CHECKED_GENERATORS
            continue
        if id(value) in owned:
            return False
        if kind in BOUND:
            owner = value.__self__
            if owner is not None and id(owner) in owned:
                return False
        elif mode and (kind in _SCANNED or kind is functools.partial):
            return False
    return True


def owners(values: tuple[Any, ...], mode: int, inv: Any) -> Any:
    """The unfinished tasks of ``inv`` owning something the body is about to read.

    ``mode``: 0 the objects themselves (an attribute's owner, a subscripted
    container, an iterator); 1 also what they hold (an operator, a format); 2 a
    call: its callable (with the ``self`` of a bound method, the parts of a
    partial, the cells of a closure) and its arguments with what they hold,
    unless the callee is a builtin that only looks at them.
    Returns a list, or ``ALL`` when the objects reach further than the budget.
    """
    if mode == 2:
        fn, args = values[0], values[1:]
        if type(fn) is FunctionType and fn.__code__ in CHECKED_GENERATORS:
            return []
        parts = [fn]
        if type(fn) is functools.partial:
            parts += [fn.func, *fn.args, *fn.keywords.values()]
        elif type(fn) is FunctionType and fn.__closure__:
            for cell in fn.__closure__:
                try:
                    parts.append(cell.cell_contents)
                except ValueError:  # an empty cell
                    pass
        objs, overflow = reach(parts, deep=len(parts) > 1)
        if not overflow:
            more, overflow = reach(args, deep=id(fn) not in _SHALLOW_CALLEES)
            objs += more
    else:
        objs, overflow = reach(values, deep=mode == 1)
    greedy = OWNED.get(0)
    if overflow:
        return ALL
    found = []
    if greedy and any(type(obj) not in _LOOP_ITERATORS for obj in objs):
        found += [t for t in tuple(greedy) if t.inv is inv]
    for obj in objs:
        holders = OWNED.get(id(obj))
        if holders:
            found += [t for t in tuple(holders) if t.inv is inv]  # a snapshot: workers add too
    return found
