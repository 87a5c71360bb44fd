"""Code objects that xcs compiles for a function, which its tracebacks, ``verify`` and
the trace treat as the function's own.

An outlined ``try`` (``_outline``) runs as a helper named like the function, at its
lines.  When an exception leaves the helper, the function's traceback keeps its own
frame, at the line plain shows (the helper's: the expression's, or the ``except``
clause's when the handler raised), and drops the helper's frame.
"""

from __future__ import annotations

import weakref
from types import CodeType, TracebackType

__all__ = ["HELPERS", "WRITERS", "CodeSet", "fold_caught", "fold_helper", "is_writer"]

class CodeSet(dict[int, "weakref.ref[CodeType]"]):
    """Code objects, held weakly and keyed by id: ask ``id(code) in codes``, one dict
    lookup (a ``WeakSet``'s ``in`` and ``len`` run Python code, and every deferred call
    asks).  A code object's entry goes when it dies, before its id can be reused."""

    def add(self, code: CodeType) -> None:
        key = id(code)
        self[key] = weakref.ref(code, lambda _, key=key: self.pop(key, None))  # type: ignore[misc]


HELPERS = CodeSet()
# Helpers that change a list they receive (an outlined ``if`` that filters into one,
# ``_filters``): a deferred call receiving that list starts after them.
WRITERS = CodeSet()


def is_writer(fn: object) -> bool:
    """Whether ``fn`` is such a helper (callers ask ``if WRITERS and is_writer(fn)``:
    nothing to ask while the process has none)."""
    return id(getattr(fn, "__code__", None)) in WRITERS


def fold_helper(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` with each helper frame folded into the function's frame above it."""
    head, prev = tb, None
    while tb is not None and tb.tb_next is not None:
        inner = tb.tb_next
        if id(inner.tb_frame.f_code) in HELPERS:
            if inner.tb_lineno == tb.tb_lineno:
                tb.tb_next = inner.tb_next
            else:  # the handler raised: the function's frame at the handler's line
                folded = TracebackType(inner.tb_next, tb.tb_frame, -1, inner.tb_lineno)
                if prev is None:
                    head = folded
                else:
                    prev.tb_next = folded
                tb = folded
        prev, tb = tb, tb.tb_next
    return head


def fold_caught(tb: TracebackType | None) -> TracebackType | None:
    """The traceback of an exception an outlined try caught and keeps (``except E as
    e: v = e``), as plain's: its first entry, the helper's, becomes the helper's
    caller's (the function's frame on a trial; on a worker, the stand-in named like it)."""
    if tb is None or id(tb.tb_frame.f_code) not in HELPERS:
        return tb
    caller = tb.tb_frame.f_back
    if caller is None:
        return tb.tb_next
    return TracebackType(tb.tb_next, caller, -1, tb.tb_lineno)
