"""What xcs may do with a callee or a value, decided from the object alone.

A callee may have to run in the body's thread, in program order (``stays_here``:
it reads the caller's frame, prints, or blocks; ``helper_stays`` for an outlined
try's helper; ``shares_state`` for a closure over the body's changing state); a
builtin may consume an iterable whole (``drains``); a value may be an immutable
builtin whose operators run no user code (``pure_value``).  The trace, the hooks
and the replay ask the same questions, so they ask them here.
"""

from __future__ import annotations

import builtins
import inspect
import logging
import os
import queue
import select
import sys
import threading
import time
import warnings
from concurrent import futures
from types import BuiltinFunctionType, FunctionType, ModuleType
from typing import Any

__all__ = ["BLOCKS", "FRAME", "PURE_TYPES", "SHARES", "STAYS_HERE", "drains", "helper_stays", "pure_value",
           "shares_state", "stays_here"]

# Callees whose behaviour depends on the calling frame or thread, or whose
# order is visible (output): deferring them would change what the program does.
_FRAME_SENSITIVE = frozenset(map(id, (
    super, locals, vars, globals, eval, exec, dir, print, input, breakpoint,
    sys._getframe, inspect.currentframe, inspect.stack, warnings.warn,
    # the root logger's functions, like a logger's methods: the record names the caller
    logging.debug, logging.info, logging.warning, logging.error, logging.exception,
    logging.critical, logging.log,
)))


# Calls made for their delay or to block: deferring ``time.sleep`` between two
# requests (a rate limit) would drop the delay, deferring ``q.get()`` would let
# the body run ahead of what it waits for.  Functions, and the types any of whose
# methods (acquire, wait, get, put, join, result, ...) block.
_BLOCKING = frozenset(map(id, (
    time.sleep, select.select, futures.wait, futures.as_completed,
    *(getattr(os, name) for name in ("wait", "waitpid", "wait3", "wait4", "waitid")
      if hasattr(os, name)),
)))
# The ids of both: a plain function with no closure and not among them stays in
# the body for no reason (``stays_here``); the deferring hook asks this first (``_call_hooks``).
STAYS_HERE = _FRAME_SENSITIVE | _BLOCKING
_BLOCKING_TYPES = (type(threading.Lock()), type(threading.RLock()), threading.Semaphore,
                   threading.Condition, threading.Event, threading.Barrier, threading.Thread,
                   queue.Queue, queue.SimpleQueue, futures.Future)
_BLOCKING_MODULES = ("multiprocessing", "subprocess", "asyncio", "selectors")
FRAME = "the callee depends on its caller's frame or thread (or prints)"
SHARES = ("the callee is a function defined in the body that shares its changing state "
          "(a list, dict or object in its closure): calls of it run in order")
BLOCKS = "the call blocks or waits (a sleep, a lock, an event, a queue, a future, a thread)"


def shares_state(fn: Any, local_prefix: str) -> bool:
    """Is ``fn`` a closure made by the body whose cells hold more than immutable values?

    Two such calls may change the body's own list in turn (``out.append(llm(x));
    return len(out)``): run concurrently they could see each other's changes in
    another order.
    """
    if type(fn) is not FunctionType or not fn.__closure__:
        return False
    if not fn.__qualname__.startswith(local_prefix):
        return False
    for cell in fn.__closure__:
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if not (pure_value(value) or type(value) in _SHARED_OK):
            return True
    return False


# Builtins that consume an iterable whole before returning (``any``, ``all`` and
# ``next`` stop early: they are not among them).
_DRAINERS = frozenset(map(id, (sum, list, tuple, set, frozenset, sorted, min, max, dict)))


def drains(fn: Any) -> bool:
    """Does ``fn(iterable, ...)`` consume the whole iterable (``"".join``, ``sum`` ...)?"""
    if id(fn) in _DRAINERS:
        return True
    return (type(fn) is BuiltinFunctionType and fn.__name__ == "join"
            and type(fn.__self__) in (str, bytes))


def stays_here(fn: Any) -> str | None:
    """Why ``fn`` must run in the body's thread, in program order (None: it need not).

    Calling it from another thread would change what it does (``super``,
    ``warnings.warn``, a logger, ``print``), or its purpose is to block.
    """
    key = id(fn)
    if key in _FRAME_SENSITIVE:
        return FRAME
    if key in _BLOCKING:
        return BLOCKS
    owner = getattr(fn, "__self__", None)
    return None if owner is None else _owner_stays(owner)


def _owner_stays(owner: Any) -> str | None:
    """Why any method of ``owner`` must run in the body's thread (None: it need not)."""
    if isinstance(owner, (logging.Logger, logging.LoggerAdapter)):
        return FRAME
    if isinstance(owner, _BLOCKING_TYPES):
        return BLOCKS
    module = getattr(type(owner), "__module__", "") or ""
    if module.split(".")[0] in _BLOCKING_MODULES:  # their queues, locks, processes
        return BLOCKS
    return None


# What an outlined loop may iterate in a continuation: builtin containers, whose
# iteration runs no Python code.
_ITERATED = frozenset({list, tuple, dict, set, frozenset, str, bytes, range})


def helper_stays(fn: FunctionType, operands: tuple[Any, ...]) -> str | None:
    """Why an outlined try's helper must run in the body's thread: one of the calls it
    makes directly is of a function that must (``print`` by another name, ``sleep``,
    a queue's or a lock's method, a logger's).  Its callees are found from the values
    the body passes it and from globals and modules, without running any code."""
    params, calls = fn.__xcs_calls__  # type: ignore[attr-defined]
    values = dict(zip(params, operands))
    iterates = getattr(fn, "__xcs_iterates__", None)  # an outlined loop (``_filters``)
    if iterates is not None and iterates < len(operands) and (
            type(operands[iterates]) not in _ITERATED):
        # Iterating it runs code of its own (a generator, a file, a user's iterator):
        # in plain it runs here, at this point of the body.
        return (f"its loop iterates a {type(operands[iterates]).__name__}, whose own code "
                "would run elsewhere")
    for root, chain in calls:
        if root in values:
            obj = values[root]
        elif root in fn.__globals__:
            obj = fn.__globals__[root]
        else:
            obj = getattr(builtins, root, None)
        rest = list(chain)
        while rest and isinstance(obj, ModuleType):  # a module's attribute runs no code
            obj = getattr(obj, rest.pop(0), None)
        why = stays_here(obj) if not rest else _owner_stays(obj)  # a method of obj
        if why:
            return f"its try calls {'.'.join((root, *chain))}: {why}"
    return None


PURE_TYPES = frozenset({str, int, float, complex, bool, bytes, type(None)})
_SHARED_OK = (FunctionType, ModuleType, type, BuiltinFunctionType)  # cells nobody changes


def pure_value(value: Any) -> bool:
    """Builtin immutable values whose operators and formatting run no user code."""
    kind = type(value)
    if kind in PURE_TYPES:
        return True
    return kind is tuple and len(value) <= 64 and all(type(v) in PURE_TYPES for v in value)
