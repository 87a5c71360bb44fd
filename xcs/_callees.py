"""What this process has learned about callees: which ones are slow.

A trial times every call it makes.  A callee whose call took longer than a
trip to a worker costs (``MIN_DURATION``), without burning the calling
thread's CPU, is remembered here; the first call of any jitted function then
defers the later calls of that callee at once (see ``_call_hooks``, the ``first``
body), instead of waiting for a whole sequential trial to learn it again.

What is remembered only decides what may overlap, never what is computed: a
deferred call still obeys every rule of a replay.  The table is bounded
(least recently learned first out) and keyed on what identifies a callee
across call sites without keeping it alive: the code object of a Python
function, and for a bound method or a callable object, its class with the
code of the method.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from types import FunctionType, MethodType
from typing import Any

__all__ = ["forget", "key_of", "learn", "lookup"]

MAX_CALLEES = 1024  # callees remembered per process
MIN_DURATION = 100e-6  # a call shorter than this is not worth a trip to a worker
# CPU time / wall time above which a call is CPU-bound.  I/O-bound calls sit near
# 0.01; a CPU-bound call on a machine busy with other work gets well under a
# full core, so the bar is low.
CPU_BOUND = 0.2
_PURE = frozenset({str, int, float, complex, bool, bytes, type(None)})


class Callee:
    """What is known of one slow callee."""

    __slots__ = ("calls", "pure")

    def __init__(self, pure: bool) -> None:
        self.calls = 1  # slow calls seen
        self.pure = pure  # every result seen was an immutable builtin (str, int, ...)


_known: OrderedDict[Any, Callee] = OrderedDict()
_lock = threading.Lock()


def key_of(fn: Any) -> Any:
    """The key of ``fn`` in the table, or None for callees it never holds (builtins,
    C methods, classes: their calls are fast or block, and are not learned)."""
    kind = type(fn)
    if kind is FunctionType:
        return fn.__code__
    if kind is MethodType:
        func = fn.__func__
        if type(func) is FunctionType:
            return (type(fn.__self__), func.__code__)
        return None
    if kind is functools.partial:
        return key_of(fn.func)
    # An object with a Python ``__call__`` (a model client): looked up on its class.
    call = kind.__dict__.get("__call__") if kind is not type else None
    if call is None:
        call = next((c.__dict__["__call__"] for c in kind.__mro__ if "__call__" in c.__dict__),
                    None)
    if type(call) is FunctionType and not isinstance(fn, type):
        return (kind, call.__code__)
    return None


def lookup(fn: Any) -> Callee | None:
    key = key_of(fn)
    return None if key is None else _known.get(key)


def observed(fn: Any, duration: float, cpu: float, result: Any) -> None:
    """A call of ``fn`` made in the body took ``duration`` seconds of which ``cpu`` on
    this thread, and returned ``result``: remember ``fn`` if it is worth deferring."""
    if duration >= MIN_DURATION and cpu <= CPU_BOUND * duration:
        kind = type(result)
        learn(fn, kind in _PURE or (kind is tuple and all(type(v) in _PURE for v in result)))


def learn(fn: Any, pure: bool) -> None:
    """A call of ``fn`` run in the body was slow and did not burn this thread's CPU."""
    key = key_of(fn)
    if key is None:
        return
    with _lock:
        known = _known.get(key)
        if known is None:
            _known[key] = Callee(pure)
            while len(_known) > MAX_CALLEES:
                _known.popitem(last=False)
        else:
            known.calls += 1
            known.pure = known.pure and pure
            _known.move_to_end(key)


def forget(fn: Any) -> None:
    """A deferred call of ``fn`` turned out fast: later first calls make it in the body."""
    key = key_of(fn)
    if key is not None:
        with _lock:
            _known.pop(key, None)


def clear() -> None:
    """Forget every callee (tests start from a process that knows nothing)."""
    with _lock:
        _known.clear()
