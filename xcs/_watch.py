"""How ``verify`` counts the calls a run makes: a profile function on the calling
thread and on verify's own pool, counting each call made by the function's own code
(or by the trampolines and relays its deferred calls run under) with its callee."""

from __future__ import annotations

import dis
import sys
import threading
from collections import Counter
from types import CodeType, FrameType, ModuleType
from typing import Any

from xcs import _replay
from xcs._codes import HELPERS
from xcs._compare import short
from xcs._compat import ops
from xcs._frames import HERE

_CALLS = frozenset(dis.opmap[name] for name in (ops.CALLS if ops is not None else ()))


_CACHE = dis.opmap.get("CACHE", 0)


class Watch:
    """What a run's calls are: those made by the function's own code (``codes``), by the
    trampolines its deferred calls run under and by ``call_here`` for an invocation on
    ``pool`` (verify's own; another jitted function's, even the same function called
    recursively through its global name, are that function's calls, not these)."""

    __slots__ = ("codes", "pool", "skip", "trampolines")

    def __init__(self, codes: set[CodeType], trampolines: dict[int, CodeType] | None = None,
                 pool: Any = None, skip: set[CodeType] | None = None) -> None:
        self.codes = codes
        self.skip = skip or set()  # callees whose calls are not counted (``cached_codes``)
        self.trampolines = trampolines if trampolines is not None else {}  # by id (see _function)
        self.pool = pool if pool is not None else object()


def observe(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
             watch: Watch | None) -> tuple[tuple[str, Any], Counter[str] | None]:
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
    threading.setprofile(profile)  # the pool's threads start after this, with it
    sys.setprofile(profile)
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


_watched: list[Watch] = []


_lock = threading.Lock()


def profile(frame: FrameType, event: str, arg: Any) -> None:
    if not counting:
        return
    watch = _watched[-1]
    if event == "call":
        caller = frame.f_back
        code = frame.f_code
        if (caller is None or code.co_filename.startswith(HERE) or code.co_name.startswith("<")
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


def _calling(frame: FrameType, watch: Watch) -> bool:
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
    return ", ".join(short(values.get(name)) for name in code.co_varnames[:n]
                     if name != "self")


def _c_name(fn: Any) -> str:
    owner = getattr(fn, "__self__", None)
    name = str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", repr(fn)))
    if (owner is not None and not isinstance(owner, type | ModuleType) and "." not in name):
        name = f"{type(owner).__qualname__}.{name}"
    return name
