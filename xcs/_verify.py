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

import collections
import dis
import functools
import hashlib
import inspect
import os
import pickle
import re
import sys
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import CodeType, FrameType, FunctionType, MethodType, ModuleType
from typing import Any, ParamSpec

from xcs import _replay
from xcs._codes import HELPERS
from xcs._errors import XcsTypeError, XcsWarning

__all__ = ["VerifyError", "verify"]

_P = ParamSpec("_P")

RUNS = 4  # calls of the jitted copy: a trial, and replays (a thin trial may be repeated)
_HERE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_CALLS = frozenset(op for name, op in dis.opmap.items()
                   if name in ("CALL", "CALL_KW", "CALL_FUNCTION_EX", "PRECALL"))
_CACHE = dis.opmap.get("CACHE", 0)
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_REPR_LIMIT = 300


class VerifyError(AssertionError):
    """A jitted run of the function differed from the plain one (see ``verify``)."""


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
    cached = _cached_codes(plain)
    run_args, run_kwargs = arguments.fresh()
    outcome, expected_calls = _observe(plain, run_args, run_kwargs,
                                       _Watch(_codes(plain), skip=cached))
    # What plain returned, as it was: a later run may change the very object (a global
    # list the function returns, ``self``).
    expected = _snapshot(outcome)
    expected_left = arguments.left(run_args, run_kwargs)
    # The pool's threads carry the profile function from their start, whichever run
    # starts them (a first call defers calls too, unwatched: see below); it counts
    # nothing outside a watched run.
    saved_threads = threading.getprofile()
    threading.setprofile(_profile)
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
            trial = _status(state) in (None, "new")
            # A trial installs the replay's code: take the function's code anew each run.
            watch = None if trial else _Watch(_codes(plain) | _codes(jitted), state.trampolines,
                                              pool, cached)
            run_args, run_kwargs = arguments.fresh()
            got, calls = _observe(jitted, run_args, run_kwargs, watch)
            kind = "a replay" if _replays(state) > before else "the first call" if trial else "a call"
            replayed += kind == "a replay"
            _compare(name, kind, expected, got, expected_calls, calls)
            _compare_left(name, kind, expected_left, arguments.left(run_args, run_kwargs))
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
        return (tuple(_copy(a, memo) for a in self.args),
                {k: _copy(v, memo) for k, v in self.kwargs.items()})

    def left(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[str, Any]]:
        """The copied arguments, by name, after a run."""
        given = [*zip(self.names, self.args, args),
                 *((k, self.kwargs[k], v) for k, v in kwargs.items())]
        return [(name, copied) for name, original, copied in given if copied is not original]


_COPIED = (list, dict, set, bytearray, collections.deque, tuple)


def _snapshot(outcome: tuple[str, Any]) -> tuple[str, Any, bytes | None]:
    """``(how, value, pickle)``: the value with its builtin containers copied, and pickled
    if it can be (for an object that a later run returns again, changed)."""
    how, value = outcome
    try:
        pickled = pickle.dumps(value) if how == "returned" else None
    except Exception:
        pickled = None
    return how, _copy(value, {}), pickled


def _cached_codes(fn: Any) -> set[CodeType]:
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


def _copy(value: Any, memo: dict[int, Any]) -> Any:
    """``value`` with its builtin containers copied (exact types only: a subclass may hold
    more than its items); a tuple only if something in it was."""
    kind = type(value)
    if kind not in _COPIED:
        return value
    if id(value) in memo:
        return memo[id(value)]
    if kind is tuple:
        items = tuple(_copy(v, memo) for v in value)
        copied = items if any(a is not b for a, b in zip(items, value)) else value
    elif kind is dict:
        copied = memo[id(value)] = {}
        copied.update((k, _copy(v, memo)) for k, v in value.items())
    elif kind is bytearray:
        copied = bytearray(value)
    elif kind is collections.deque:
        copied = memo[id(value)] = collections.deque(maxlen=value.maxlen)
        copied.extend(_copy(v, memo) for v in value)
    elif kind is set:
        copied = set(value)  # its items are hashable: kept
    else:
        copied = memo[id(value)] = []
        copied.extend(_copy(v, memo) for v in value)
    memo[id(value)] = copied
    return copied


def _compare_left(name: str, run: str, expected: list[tuple[str, Any]],
                  got: list[tuple[str, Any]]) -> None:
    for (argument, value), (_, got_value) in zip(expected, got):
        if not _same(value, got_value):
            raise VerifyError(f"{run} of {name}() differs from the plain call: plain left its "
                              f"argument {argument} as {_short(value)}, {run} left it as "
                              f"{_short(got_value)}")


_one_at_a_time = threading.Lock()


def _warn(message: str) -> None:
    warnings.warn(XcsWarning(message), stacklevel=4)


def _state(jitted: Any) -> Any:
    """The ``_Function`` behind what ``jit`` returned (a function, a method, a partial)."""
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


class _Watch:
    """What a run's calls are: those made by the function's own code (``codes``), by the
    trampolines its deferred calls run under and by ``call_here`` for an invocation on
    ``pool`` (verify's own; another jitted function's, even the same function called
    recursively through its global name, are that function's calls, not these)."""

    __slots__ = ("codes", "pool", "skip", "trampolines")

    def __init__(self, codes: set[CodeType], trampolines: dict[int, CodeType] | None = None,
                 pool: Any = None, skip: set[CodeType] | None = None) -> None:
        self.codes = codes
        self.skip = skip or set()  # callees whose calls are not counted (``_cached_codes``)
        self.trampolines = trampolines if trampolines is not None else {}  # by id (see _jit)
        self.pool = pool if pool is not None else object()


def _observe(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
             watch: _Watch | None) -> tuple[tuple[str, Any], Counter[str] | None]:
    """Call ``fn`` and count the calls its code makes, on this thread and on new threads
    (unless ``watch`` is None: then only call it)."""
    if watch is None:
        try:
            return ("returned", fn(*args, **kwargs)), None
        except Exception as exc:
            return ("raised", exc), None
    calls: Counter[str] = Counter()
    _watched.append(watch)
    counting.append(calls)
    saved, saved_threads = sys.getprofile(), threading.getprofile()
    threading.setprofile(_profile)  # the pool's threads start after this, with it
    sys.setprofile(_profile)
    try:
        outcome: tuple[str, Any] = ("returned", fn(*args, **kwargs))
    except Exception as exc:
        outcome = ("raised", exc)
    finally:
        sys.setprofile(saved)
        threading.setprofile(saved_threads)  # type: ignore[arg-type,unused-ignore]
        counting.pop()
        _watched.pop()
    return outcome, calls


# What the profile function counts into (a pool thread keeps the profile function it
# started with: it must find the current run's counter), and what it watches.
counting: list[Counter[str]] = []
_watched: list[_Watch] = []
_lock = threading.Lock()


def _profile(frame: FrameType, event: str, arg: Any) -> None:
    if not counting:
        return
    watch = _watched[-1]
    if event == "call":
        caller = frame.f_back
        code = frame.f_code
        if (caller is None or code.co_filename.startswith(_HERE) or code.co_name.startswith("<")
                or id(code) in HELPERS or code in watch.skip or not _calling(caller, watch)):
            return  # xcs's own hooks; a comprehension or generator expression is no call
        key = f"{code.co_qualname}({_arguments(frame)})"
    elif event == "c_call":
        if not _calling(frame, watch):
            return
        key = f"{_c_name(arg)}()"
    else:
        return
    with _lock:
        if counting:
            counting[-1][key] += 1


def _calling(frame: FrameType, watch: _Watch) -> bool:
    """Whether ``frame`` is the function's (or a trampoline running its deferred call)
    and is at a call instruction (not a property read or an operator's dunder)."""
    code = frame.f_code
    relay = code in _RELAYS
    if relay:
        if getattr(frame.f_locals.get("self"), "executor", None) is not watch.pool:
            return False  # another jitted function's invocation
    elif code not in watch.codes and id(code) not in watch.trampolines:
        return False
    raw, lasti = code.co_code, frame.f_lasti
    if not 0 <= lasti < len(raw):
        return False
    while lasti > 0 and raw[lasti] == _CACHE:  # a Python callee's caller stands in its caches
        lasti -= 2
    if relay:
        return lasti in _RELAYS[code]
    return raw[lasti] in _CALLS


def _relays() -> dict[CodeType, frozenset[int]]:
    """xcs's functions that make a call of the body for it (``call_here``: a continuation
    whose inputs are known, a call kept in the body's thread), and where they make it."""
    code = _replay.Invocation.call_here.__code__
    return {code: frozenset(i.offset for i in dis.get_instructions(code)
                            if i.opname == "CALL_FUNCTION_EX")}


_RELAYS = _relays()


def _arguments(frame: FrameType) -> str:
    code = frame.f_code
    n = code.co_argcount + code.co_kwonlyargcount
    n += bool(code.co_flags & 0x04) + bool(code.co_flags & 0x08)  # *args, **kwargs
    values = frame.f_locals
    return ", ".join(_short(values.get(name)) for name in code.co_varnames[:n]
                     if name != "self")


def _c_name(fn: Any) -> str:
    owner = getattr(fn, "__self__", None)
    name = str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", repr(fn)))
    if (owner is not None and not isinstance(owner, type | ModuleType) and "." not in name):
        name = f"{type(owner).__qualname__}.{name}"
    return name


def _short(value: Any) -> str:
    """The repr for a message or a call's key: a long one is cut, with a digest of all
    of it (two arguments that differ past the cut still differ)."""
    text = _full(value)
    if len(text) <= _REPR_LIMIT:
        return text
    digest = hashlib.sha1(text.encode(errors="replace")).hexdigest()[:12]
    return f"{text[:_REPR_LIMIT]}... ({len(text)} chars, sha1 {digest})"


def _same(a: Any, b: Any) -> bool:
    """Equal as values: ``==`` if it says True; else the same pickle (NaN, objects
    without ``__eq__``, numpy arrays in containers); else the same full repr."""
    try:
        equal = a == b
        if isinstance(equal, bool) and equal:
            return True
        if not isinstance(equal, bool) and hasattr(equal, "all"):  # numpy: elementwise
            return bool(equal.all()) and getattr(a, "shape", None) == getattr(b, "shape", None)
    except Exception:
        pass
    try:
        return pickle.dumps(a) == pickle.dumps(b)
    except Exception:
        return _full(a) == _full(b)


def _pickled(value: Any) -> bytes | None:
    try:
        return pickle.dumps(value)
    except Exception:
        return None


def _full(value: Any) -> str:
    try:
        return _ADDRESS.sub("", repr(value))
    except Exception as exc:
        return f"<unrepresentable {type(value).__qualname__}: {type(exc).__name__}>"


def _compare(name: str, run: str, expected: tuple[str, Any, bytes | None], got: tuple[str, Any],
             expected_calls: Counter[str] | None, calls: Counter[str] | None) -> None:
    (how, value, pickled), (got_how, got_value) = expected, got
    where = f"{run} of {name}() differs from the plain call"
    if how != got_how:
        raise VerifyError(f"{where}: plain {how} {_outcome(how, value)}, "
                          f"{run} {got_how} {_outcome(got_how, got_value)}")
    if how == "raised":
        if type(value) is not type(got_value) or not _same(value.args, got_value.args):
            raise VerifyError(f"{where}: plain raised {_outcome(how, value)}, "
                              f"{run} raised {_outcome(got_how, got_value)}")
    elif not _same(value, got_value) or (value is got_value and pickled is not None
                                         and _pickled(got_value) != pickled):
        raise VerifyError(f"{where}: plain returned {_short(value)}, {run} returned "
                          f"{_short(got_value)}")
    if expected_calls is None or calls is None:
        return
    missing, extra = expected_calls - calls, calls - expected_calls
    if missing or extra:
        key, (n, m) = next((k, (expected_calls[k], calls[k])) for k in [*missing, *extra])
        raise VerifyError(f"{where}: plain called {key} {_times(n)}, {run} {_times(m)}")


def _outcome(how: str, value: Any) -> str:
    if how == "raised":
        return f"{type(value).__qualname__}: {value}"
    return _short(value)


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times" if n else "never"
