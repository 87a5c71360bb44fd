"""``verify``: run a function plain, as a trial and as a replay, and compare what each did.

For users' own test suites, with their own fake models: a function is safe to
jit when every way xcs runs it returns (or raises) what the plain function
does and makes the same calls.  The calls are observed with a profile
function on the calling thread and on a thread pool of verify's own (so that
it sees the deferred calls too): each call made by a call site of the
function's own code (its comprehensions, generator expressions and nested
functions included) is counted with its callee and, for a Python callee, its
arguments.
"""

from __future__ import annotations

import functools
import inspect
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import CodeType, FunctionType, MethodType
from typing import Any, ParamSpec

from xcs._codes import HELPERS
from xcs._compare import compare, compare_left, copy, snapshot
from xcs._errors import VerifyError, XcsTypeError, XcsWarning
from xcs._introspect import Status
from xcs._watch import Watch, observe, profile

__all__ = ["VerifyError", "verify"]


_P = ParamSpec("_P")


RUNS = 4  # calls of the jitted copy: a trial, and replays (a thin trial may be repeated)


def verify(fn: Callable[_P, Any], /, *args: _P.args, **kwargs: _P.kwargs) -> None:
    """Check that jitting ``fn`` changes nothing for these arguments.

    Runs ``fn(*args, **kwargs)`` plain, then a fresh jitted copy of it on the
    same arguments: its trial and its replays (the deferred calls overlapping
    on a thread pool of verify's own).  Each run must return an equal value (or
    raise an exception of the same type with equal arguments) and make the same
    multiset of calls as the plain run.  Use it in your tests with your own
    fake models: a callee with hidden shared state (a read-modify-write of a
    global by concurrent calls) shows up as a difference.

    The function runs ``1 + RUNS`` times, so its callees must give the same
    answers to the same questions (a fake model, a recorded fixture).  Each run
    gets its own copy of the lists, dicts, sets, deques and bytearrays among the
    arguments (at any depth), and what it leaves in them must equal what the
    plain run left; the caller's own are not changed.  Other arguments (a
    client, a fake model) are shared by the runs as they are.

    Args:
        fn: a function, jitted or not (a method, a ``functools.partial``).
        *args: its positional arguments.
        **kwargs: its keyword arguments.

    Raises:
        VerifyError: names the run and the first difference: in the return
            value, in the exception, in what it left in an argument, or a call one
            run made and the other did not.
        TypeError: ``fn`` is not callable.
    """
    if not callable(fn):
        raise XcsTypeError(f"verify() needs a callable, not {type(fn).__name__}: {fn!r}")
    with _one_at_a_time:  # the profile functions are process-wide
        _verify(fn, args, kwargs)


def _verify(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    plain = _unjitted(fn)
    name = str(getattr(plain, "__qualname__", None) or getattr(
        getattr(plain, "func", None), "__qualname__", repr(plain)))
    arguments = _Arguments(name, plain, args, kwargs)
    cached = cached_codes(plain)
    run_args, run_kwargs = arguments.fresh()
    outcome, expected_calls = observe(plain, run_args, run_kwargs,
                                       Watch(_codes(plain), skip=cached))
    # What plain returned, as it was: a later run may change the very object (a global
    # list the function returns, ``self``).
    expected = snapshot(outcome)
    expected_left = arguments.left(run_args, run_kwargs)
    # The pool's threads carry the profile function from their start, whichever run
    # starts them (a first call defers calls too, unwatched: see below); it counts
    # nothing outside a watched run.
    saved_threads = threading.getprofile()
    threading.setprofile(profile)
    try:
        _runs(name, plain, arguments, expected, expected_calls, expected_left, cached)
    finally:
        threading.setprofile(saved_threads)  # type: ignore[arg-type,unused-ignore]


def _runs(name: str, plain: Any, arguments: _Arguments, expected: Any,
          expected_calls: Counter[str] | None, expected_left: list[tuple[str, Any]],
          cached: set[CodeType]) -> None:
    """The jitted runs of ``_verify``, each compared with plain's."""
    from xcs._jit import jit

    with ThreadPoolExecutor(thread_name_prefix="xcs-verify") as pool:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", XcsWarning)  # said below, once
            jitted = jit(plain, executor=pool)
        state = _state(jitted)
        if state is None or state.program is None:
            reason = state.reason if state is not None else "xcs cannot rewrite it"
            _warn(f"verify({name}): xcs runs it plain ({reason}): nothing to compare")
            return
        state.tracer_ok = True  # replay under coverage or a debugger too: this is a test
        replayed = 0
        for _ in range(RUNS):
            before = _replays(state)
            # A first call is not watched: the profile function would slow the callees'
            # own Python code (an HTTP client's) and make the trial it is measure them
            # CPU-bound.  What it returns is compared; the replays' calls are too.
            trial = _status(state) in (None, Status.NEW)
            # A trial installs the replay's code: take the function's code anew each run.
            watch = None if trial else Watch(_codes(plain) | _codes(jitted), state.trampolines,
                                              pool, cached)
            run_args, run_kwargs = arguments.fresh()
            got, calls = observe(jitted, run_args, run_kwargs, watch)
            kind = "a replay" if _replays(state) > before else "the first call" if trial else "a call"
            replayed += kind == "a replay"
            compare(name, kind, expected, got, expected_calls, calls)
            compare_left(name, kind, expected_left, arguments.left(run_args, run_kwargs))
    if not replayed:
        reasons = {s.reason for s in state.stats().signatures if s.reason}
        _warn(f"verify({name}): no replay ran, so no deferred call was checked"
              + (f" ({'; '.join(sorted(reasons))})" if reasons else "")
              + ": a fake model must be slow enough to be deferred (100 us or more)")


class _Arguments:
    """The arguments of ``verify``'s runs.  Each run gets its own copy of the builtin
    containers among them, at any depth (lists, dicts, sets, deques, bytearrays and the
    tuples holding them), so that a function that fills one (``history.append(...)``)
    starts every run from what the caller gave, the caller's are left as they were, and
    what each run left in them is compared.  Every other object (a client, a fake model,
    a user's record) is shared by the runs as it is: copying it could open a connection
    or reset a fake's state, and concurrent calls may leave it in another order (a fake
    logging its calls) without any difference in what the function computes."""

    def __init__(self, name: str, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.args, self.kwargs = args, kwargs
        try:
            names = list(inspect.signature(fn).bind(*args, **kwargs).arguments)
        except (TypeError, ValueError):  # plain will raise the TypeError itself
            names = []
        self.names = [names[i] if i < len(names) and not names[i].startswith("*") else f"#{i}"
                      for i in range(len(args))]
        for argument, value in [*zip(self.names, args), *kwargs.items()]:
            if isinstance(value, Iterator):
                raise XcsTypeError(
                    f"verify({name}): its argument {argument} is an iterator "
                    f"({type(value).__name__}), which the plain run would use up before the "
                    f"{RUNS} jitted runs: pass a list (or a tuple) of its items")

    def fresh(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        memo: dict[int, Any] = {}  # shared: two arguments holding one list still do
        return (tuple(copy(a, memo) for a in self.args),
                {k: copy(v, memo) for k, v in self.kwargs.items()})

    def left(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[str, Any]]:
        """The copied arguments, by name, after a run."""
        given = [*zip(self.names, self.args, args),
                 *((k, self.kwargs[k], v) for k, v in kwargs.items())]
        return [(name, copied) for name, original, copied in given if copied is not original]


def cached_codes(fn: Any) -> set[CodeType]:
    """The code of the functions behind ``functools.lru_cache``/``cache`` that ``fn``'s
    code names (globals, closure variables): their calls are not counted.  The plain
    run fills the cache, so later runs enter them less, as a second plain call would."""
    while isinstance(fn, MethodType | functools.partial):
        fn = fn.__func__ if isinstance(fn, MethodType) else fn.func
    if not isinstance(fn, FunctionType):
        return set()
    names = {n for code in _codes(fn) for n in code.co_names}
    candidates = [fn.__globals__.get(n) for n in names]
    candidates += [cell.cell_contents for cell in fn.__closure__ or ()
                   if cell.cell_contents is not None]  # (an empty cell reads as ValueError)
    return {inner.__code__ for c in candidates
            if hasattr(c, "cache_info") and isinstance(inner := getattr(c, "__wrapped__", None),
                                                       FunctionType)}


_one_at_a_time = threading.Lock()


def _warn(message: str) -> None:
    warnings.warn(XcsWarning(message), stacklevel=4)


def _state(jitted: Any) -> Any:
    """The ``Function`` behind what ``jit`` returned (a function, a method, a partial)."""
    while isinstance(jitted, MethodType | functools.partial):
        jitted = jitted.__func__ if isinstance(jitted, MethodType) else jitted.func
    return getattr(jitted, "__xcs__", None)


def _unjitted(fn: Any) -> Any:
    """The plain function behind a jitted one (the same call, without xcs)."""
    if isinstance(fn, MethodType):
        return MethodType(_unjitted(fn.__func__), fn.__self__)
    if isinstance(fn, functools.partial):
        return functools.partial(_unjitted(fn.func), *fn.args, **fn.keywords)
    state = getattr(fn, "__xcs__", None)
    return state.fn if state is not None and hasattr(state, "fn") else fn


def _status(state: Any) -> str | None:
    """The status of the signature verify calls it with (None before the first call)."""
    signatures = state.stats().signatures
    return signatures[-1].status if signatures else None


def _replays(state: Any) -> int:
    return sum(s.replays for s in state.stats().signatures)


def _codes(fn: Any) -> set[CodeType]:
    """The code objects of ``fn`` and of everything defined inside it."""
    while isinstance(fn, MethodType | functools.partial):
        fn = fn.__func__ if isinstance(fn, MethodType) else fn.func
    if not isinstance(fn, FunctionType):
        call = getattr(type(fn), "__call__", None)  # noqa: B004
        if not isinstance(call, FunctionType):
            return set()
        fn = call
    found: set[CodeType] = set()
    stack = [fn.__code__]
    while stack:
        code = stack.pop()
        if code not in found:
            found.add(code)
            stack.extend(c for c in code.co_consts if isinstance(c, CodeType))
            stack.extend(c.__code__ for c in code.co_consts  # an outlined try's helper
                         if isinstance(c, FunctionType) and id(c.__code__) in HELPERS)
    return found
