"""How ``verify`` compares two runs: outcomes (a value, or an exception's type and
message) and what the arguments held afterwards, by equality or, failing that, by
their pickles and reprs; and how it names a difference."""

from __future__ import annotations

import collections
import hashlib
import pickle
import re
from collections import Counter
from typing import Any

from xcs._errors import VerifyError

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


_REPR_LIMIT = 300


_COPIED = (list, dict, set, bytearray, collections.deque, tuple)


def snapshot(outcome: tuple[str, Any]) -> tuple[str, Any, bytes | None]:
    """``(how, value, pickle)``: the value with its builtin containers copied, and pickled
    if it can be (for an object that a later run returns again, changed)."""
    how, value = outcome
    try:
        pickled = pickle.dumps(value) if how == "returned" else None
    except Exception:
        pickled = None
    return how, copy(value, {}), pickled


def copy(value: Any, memo: dict[int, Any]) -> Any:
    """``value`` with its builtin containers copied (exact types only: a subclass may hold
    more than its items); a tuple only if something in it was."""
    kind = type(value)
    if kind not in _COPIED:
        return value
    if id(value) in memo:
        return memo[id(value)]
    if kind is tuple:
        items = tuple(copy(v, memo) for v in value)
        copied = items if any(a is not b for a, b in zip(items, value)) else value
    elif kind is dict:
        copied = memo[id(value)] = {}
        copied.update((k, copy(v, memo)) for k, v in value.items())
    elif kind is bytearray:
        copied = bytearray(value)
    elif kind is collections.deque:
        copied = memo[id(value)] = collections.deque(maxlen=value.maxlen)
        copied.extend(copy(v, memo) for v in value)
    elif kind is set:
        copied = set(value)  # its items are hashable: kept
    else:
        copied = memo[id(value)] = []
        copied.extend(copy(v, memo) for v in value)
    memo[id(value)] = copied
    return copied


def compare_left(name: str, run: str, expected: list[tuple[str, Any]],
                  got: list[tuple[str, Any]]) -> None:
    for (argument, value), (_, got_value) in zip(expected, got):
        if not _same(value, got_value):
            raise VerifyError(f"{run} of {name}() differs from the plain call: plain left its "
                              f"argument {argument} as {short(value)}, {run} left it as "
                              f"{short(got_value)}")


def short(value: Any) -> str:
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


def compare(name: str, run: str, expected: tuple[str, Any, bytes | None], got: tuple[str, Any],
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
        raise VerifyError(f"{where}: plain returned {short(value)}, {run} returned "
                          f"{short(got_value)}")
    if expected_calls is None or calls is None:
        return
    missing, extra = expected_calls - calls, calls - expected_calls
    if missing or extra:
        key, (n, m) = next((k, (expected_calls[k], calls[k])) for k in [*missing, *extra])
        raise VerifyError(f"{where}: plain called {key} {_times(n)}, {run} {_times(m)}")


def _outcome(how: str, value: Any) -> str:
    if how == "raised":
        return f"{type(value).__qualname__}: {value}"
    return short(value)


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times" if n else "never"
