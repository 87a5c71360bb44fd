"""The front: ``jit``, and what it returns.

A jitted function is a real Python function whose code holds the plain body
and its rewritten copies (see ``_rewrite``).  Each call first computes its
argument signature (the types of the bound parameters) and looks up what was
decided for it: the first call of a signature is the trial, later calls run
the plain body or replay the plan.  All of that happens in the function's own
frame, through the hooks ``Program.combine`` places in it (``_hooks``,
``_call_hooks``); the state behind it is ``_function.Function``'s.  Here:
``jit`` for functions, methods, static and class methods, and what a function
xcs cannot rewrite becomes (plain, with the reason).
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import warnings
from collections.abc import Callable
from concurrent.futures import Executor
from types import FunctionType, MethodType
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar, cast, overload

from xcs import _explain
from xcs._errors import XcsTypeError, XcsWarning
from xcs._frames import outside_xcs
from xcs._function import Function
from xcs._introspect import SignatureStats, Stats, check_format, no_events, saved

if TYPE_CHECKING:
    pass

__all__ = ["Jitted", "SignatureStats", "Stats", "jit"]

log = logging.getLogger("xcs")
log.addHandler(logging.NullHandler())  # a library logs; it never prints by itself


_P = ParamSpec("_P")
_Q = ParamSpec("_Q")
_R = TypeVar("_R")
_R_co = TypeVar("_R_co", covariant=True)
_S = TypeVar("_S")
_T = TypeVar("_T")


class Jitted(Protocol[_P, _R_co]):
    """What ``jit`` returns, to a type checker: the function's own signature, and the views.

    ``@jit def f(x: int) -> str`` is a ``Jitted[[int], str]``: ``f(1)`` is a
    ``str`` and ``f("a")`` is an error, as without ``@jit``.  ``__get__`` makes
    it bind like a function: read on an instance, a method loses its first
    parameter; read on the class it does not.  (Type checkers look through
    ``staticmethod``/``classmethod`` to this ``__get__``: mypy types a
    ``@staticmethod`` read on an instance, and both mypy and pyright a
    ``@classmethod`` read on the class, as if it were a plain method.)

    At run time ``jit`` returns a function (or a partial, bound method or
    descriptor of one) that has these methods.  ``Jitted`` is not
    ``runtime_checkable``: ``isinstance`` would only check that attributes of
    these names exist, so it would accept unrelated objects that have them, and
    reject a jitted ``partial`` before Python 3.14 (a partial has no ``__get__``).
    """

    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R_co: ...

    @property
    def __wrapped__(self) -> Callable[_P, _R_co]:
        """The function without xcs (``functools.wraps``); of a partial, its plain partial."""
        ...

    __name__: str
    __qualname__: str

    def stats(self) -> Stats:
        """The argument signatures seen so far and what was decided for each."""
        ...

    def explain(self, format: str = "text") -> str:
        """The recorded calls and the plan per signature, as text or as Graphviz DOT."""
        ...

    def timeline(self, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """The last replay (else the last trial) as Chrome/Perfetto trace-event JSON."""
        ...

    # Read on the class: unchanged.
    @overload
    def __get__(self, instance: None, owner: type[Any], /) -> Jitted[_P, _R_co]: ...
    # Read on an instance that can be the first argument: a bound method.
    @overload
    def __get__(self: Jitted[Concatenate[_S, _Q], _T], instance: _S,
                owner: type[Any] | None = None, /) -> Jitted[_Q, _T]: ...
    # The first parameter takes the instance's class: a classmethod read on an instance.
    @overload
    def __get__(self: Jitted[Concatenate[type[_S], _Q], _T], instance: _S,
                owner: type[Any] | None = None, /) -> Jitted[_Q, _T]: ...
    # Else (a staticmethod read on an instance): unchanged.
    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None, /) -> Jitted[_P, _R_co]: ...


@overload
def jit(fn: classmethod[_S, _P, _R], /, *,
        executor: Executor | None = None) -> classmethod[_S, _P, _R]: ...
@overload
def jit(fn: Callable[_P, _R], /, *, executor: Executor | None = None) -> Jitted[_P, _R]: ...
@overload
def jit(fn: None = None, /, *,
        executor: Executor | None = None) -> Callable[[Callable[_P, _R]], Jitted[_P, _R]]: ...
def jit(fn: Any = None, /, *, executor: Executor | None = None) -> Any:
    """Run the independent calls in ``fn`` concurrently, without changing what it does.

    Usable as ``@jit``, ``@jit()``, ``@jit(executor=pool)`` or ``jit(fn, executor=pool)``.

    Args:
        fn: the function to speed up.
        executor: where deferred calls run (any ``concurrent.futures.Executor``);
            by default a shared thread pool sized for I/O-bound calls.  Cap its
            workers to respect an API's rate limit; use a process pool for
            CPU-bound callees.

    Returns:
        A function with the same signature and metadata that returns, raises
        and calls exactly what ``fn`` would; ``f.stats()``, ``f.explain()``
        and ``f.timeline()`` show what xcs decided and what overlapped.  To a
        type checker it is a ``Jitted`` with ``fn``'s parameters and return type.

    Raises:
        TypeError: ``fn`` is not callable, is a generator or coroutine
            function, or ``executor`` is not an Executor.
    """
    if executor is not None and not isinstance(executor, Executor):
        raise XcsTypeError("jit() executor must be a concurrent.futures.Executor, "
                           f"not {type(executor).__name__}: {executor!r}")
    if fn is None:
        return functools.partial(jit, executor=executor)
    return _jit(fn, executor)


def _jit(fn: Any, executor: Executor | None) -> Any:
    state = getattr(fn, "__xcs__", None)
    if isinstance(state, Function):  # already jitted: jit the original again
        if state.executor is executor:
            return fn
        fn = state.fn
    if isinstance(fn, staticmethod):
        return _carrying(staticmethod(_jit(fn.__func__, executor)))
    if isinstance(fn, classmethod):
        return _carrying(classmethod(_jit(fn.__func__, executor)))
    if isinstance(fn, MethodType):  # a bound method forwards attribute reads to its function
        return MethodType(_jit(fn.__func__, executor), fn.__self__)
    if isinstance(fn, functools.partial):
        return _Partial(_jit(fn.func, executor), *fn.args, **fn.keywords)
    if isinstance(fn, FunctionType):
        name = fn.__qualname__
        for check, what in ((inspect.isasyncgenfunction, "async generator functions"),
                            (inspect.iscoroutinefunction, "coroutine functions"),
                            (inspect.isgeneratorfunction, "generator functions")):
            if check(fn):
                raise XcsTypeError(f"cannot jit {name!r}: {what} are not supported")
        return Function(fn, executor).jitted
    if not callable(fn):
        raise XcsTypeError(f"cannot jit {fn!r}: expected a function, not {type(fn).__name__}")
    call = getattr(type(fn), "__call__", None)  # noqa: B004  (the class's, to jit it)
    if isinstance(call, FunctionType):  # a callable object: jit its __call__, bound to it
        return MethodType(_jit(call, executor), fn)
    return _plain(fn, "not a Python function: there is no bytecode to rewrite")


_METHODS = ("stats", "explain", "timeline")


def _carrying(descriptor: staticmethod[Any, Any] | classmethod[Any, Any, Any]) -> Any:
    """A staticmethod or classmethod that also has its function's stats/explain/timeline.

    Read through the class or an instance, the descriptor gives the jitted
    function (or a method bound to it), which has them anyway; this is for the
    descriptor object itself.
    """
    for name in _METHODS:
        setattr(descriptor, name, getattr(descriptor.__func__, name))
    return descriptor


class _Partial(functools.partial[Any]):
    """``jit(partial(f, ...))``: a ``functools.partial`` of ``jit(f)`` with its methods.

    The methods are on the class, not in the instance's ``__dict__``: a
    partial pickles and copies its ``__dict__``, and xcs's per-function state
    cannot be pickled.
    """

    __slots__ = ()

    def stats(self) -> Stats:
        """``f.stats()`` of the jitted function."""
        return self._jitted().stats()

    def explain(self, format: str = "text") -> str:
        """``f.explain(format)`` of the jitted function."""
        return self._jitted().explain(format)

    def timeline(self, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """``f.timeline(path)`` of the jitted function."""
        return self._jitted().timeline(path)

    def _jitted(self) -> Jitted[..., Any]:
        return cast("Jitted[..., Any]", self.func)

    def __getattr__(self, name: str) -> Any:
        """What ``functools.wraps`` gives a jitted function: ``__wrapped__`` (the plain
        partial), and the name and qualified name of the function it calls."""
        if name == "__wrapped__":
            return functools.partial(self._jitted().__wrapped__, *self.args, **self.keywords)
        if name in ("__name__", "__qualname__"):
            return getattr(self.func, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class _Fallback:
    """The views of a callable that runs plain from the start: nothing is ever recorded."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    def stats(self) -> Stats:
        """No argument signatures, and the reason."""
        return Stats(self.name, self.reason, ())

    def explain(self, format: str = "text") -> str:
        """The reason as text, or an empty call graph (as for a jitted function not yet called)."""
        check_format(format)
        if format == "dot":
            return _explain.dot(self.name, [], {})
        return f"{self.name}: runs plain: {self.reason}"

    def timeline(self, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """An empty trace (as for a jitted function not yet called), also written to ``path``."""
        return saved(no_events(), path)


def _plain(fn: Any, reason: str) -> Any:
    """A thin wrapper for callables xcs cannot rewrite (builtins, C extensions)."""

    def plain(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    try:
        functools.update_wrapper(plain, fn)
    except (AttributeError, TypeError):
        plain.__wrapped__ = fn  # type: ignore[attr-defined]
    name = getattr(fn, "__qualname__", None) or repr(fn)
    views = _Fallback(name, reason)
    for method in _METHODS:
        setattr(plain, method, getattr(views, method))
    warnings.warn(XcsWarning(f"xcs runs {name!r} plain: {reason}"), stacklevel=outside_xcs())
    return plain
