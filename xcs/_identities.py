"""The trial's bookkeeping of values: which call made each object the body holds.

Every result is kept alive for the length of the trial, so an ``id()`` seen among
a later call's operands (or inside a list, tuple or dict operand, or as ``self``
of a bound method) names the call that produced it; what an operator made of
results remembers the calls it came from (``derived``).  ``use`` records when
the body first needed a result.  ``_trace.Recorder`` builds on this.
"""

from __future__ import annotations

import sys
import time
from types import (
    AsyncGeneratorType,
    CoroutineType,
    FunctionType,
    GeneratorType,
)
from typing import Any

from xcs._events import OpenCall

__all__ = ["Identities"]

MAX_CALLS = 200_000  # a longer trial stops recording (and is not optimized)
FLAT_BUDGET = 256  # container elements looked at per call
# Objects CPython shares among all who make them (small ints, the empty and the
# one-character strings, the empty tuple): their identity names no call.
SINGLETONS = frozenset(map(id, (None, True, False, Ellipsis, NotImplemented, (), "",
                                 *range(-5, 257), *map(chr, range(256)))))
CONTAINERS = (list, tuple, dict, set, frozenset)
OPAQUE = (GeneratorType, CoroutineType, AsyncGeneratorType)
OPAQUE_TYPES = frozenset(OPAQUE)
SLOW_CALL = 100e-6  # a site whose calls take this long keeps having its CPU time read
MUTE_AFTER = 64  # fast calls in a row after which a site is only timed, not recorded
MAX_SOURCES = 16  # calls an operator's result remembers coming from (the latest ones)
NO_SOURCES: frozenset[int] = frozenset()
_clock = time.perf_counter
_cpu = time.thread_time


class Identities:
    """The state of one trial's recording, and the values it has seen."""

    def __init__(self, local_prefix: str, deferring: Any = None) -> None:
        self.local_prefix = local_prefix  # qualname prefix of closures made by the body
        # A first call (see ``_function``): the invocation that defers some of its calls,
        # whose placeholders (``deferring.placeholder``) reach the hooks.
        self.deferring = deferring
        self.placeholder = None if deferring is None else deferring.placeholder
        self.later: list[tuple[int, Any]] = []  # (op site, placeholder it combined)
        # A first call's time in xcs's own work the plain function does not do (making a
        # deferred call: a trampoline, the executor starting a thread; learning a callee):
        # (start, end) spans taken out of its trace as waits are (``_as_if_plain``).
        self.spent: list[tuple[float, float]] = []
        self.spent_cpu = 0.0  # and the CPU time of the body's thread in them
        self.defers_now = False  # the first call's current call is deferred (``wrap_first``)
        self.failure: str | None = None  # why the trace is not to be trusted (``failed``)
        self.context: Any = None  # the front's: what to restore when the trial ends
        self.events: list[OpenCall] = []
        self.open: list[OpenCall] = []
        self.results: dict[int, int] = {}
        self.derived: dict[int, frozenset[int]] = {}  # operator results -> calls they came from
        self.op_pure: dict[int, bool] = {}
        self.op_quiet: dict[int, int] = {}  # op site -> probes in a row with no recorded source
        self._op_sources: set[int] | frozenset[int] = NO_SOURCES
        self._op_shared: frozenset[int] | None = None  # an operand's sources, for op_after
        self._marked: set[tuple[int | None, int]] = set()  # (op, id of a derived set) marked
        self.cpu_budget: dict[int, int] = {}  # site -> CPU readings left while it stays fast
        self.fast: dict[int, int] = {}  # site -> how many of its calls in a row were fast
        self.muted: dict[int, float] = {}  # sites no longer recorded -> start of the current call
        self.quiet: dict[int, int] = {}  # site -> calls in a row with no input from a recorded call
        # A first call's ``_switches.Switches``, while its sites may run as written: a
        # site muted with quiet inputs, or an operator muted, is switched off there.
        self.switches: Any = None
        self.keep: list[Any] = []
        self.helper_stays: dict[int, str] = {}  # id of a helper -> what it calls that stays
        self.drains: list[tuple[int, int]] = []  # (site, first event) of builtins draining
        self.drain_sites: set[int] = set()
        self._frame: Any = None  # the body's frame at the current ``use``
        self.truncated = False
        self.opened = -1  # the site of the last ``before``
        self.wall0 = time.time()
        self.cpu0 = _cpu()
        self.t0 = _clock()

    def _sources(self, value: Any, into: set[int]) -> None:
        index = self.results.get(id(value))
        if index is not None:
            into.add(index)
        derived = self.derived.get(id(value))
        if derived:
            into.update(derived)

    def _flatten(self, value: Any, into: set[int], budget: list[int], depth: int) -> None:
        self._sources(value, into)
        if depth and type(value) in CONTAINERS and budget[0] > 0:
            items: Any = value
            if type(value) is dict:
                items = [*value.keys(), *value.values()]
            for item in items:
                budget[0] -= 1
                if budget[0] <= 0:
                    return
                self._flatten(item, into, budget, depth - 1)

    def _produced(self, index: int, result: Any) -> None:
        self.keep.append(result)
        if id(result) not in SINGLETONS:
            self.results[id(result)] = index
        else:
            self.events[index].shared_result = True
        if type(result) in (tuple, list, dict):
            items = result.values() if type(result) is dict else result
            for k, item in enumerate(items):
                if k >= FLAT_BUDGET:
                    break
                if id(item) not in SINGLETONS:
                    self.results[id(item)] = index

    def _is_opaque(self, value: Any) -> bool:
        if isinstance(value, OPAQUE):
            return True
        if type(value) is FunctionType:
            return value.__qualname__.startswith(self.local_prefix)
        if type(value) in (list, tuple):
            return any(isinstance(v, OPAQUE) for v in value[:8])
        return False

    def alias(self, placeholder: Any, value: Any) -> None:
        """The body resolved ``placeholder`` to ``value``: it came from the same calls."""
        index = self.results.get(id(placeholder))
        if index is not None:
            self._produced(index, value)
        sources = self.derived.get(id(placeholder))
        if sources and id(value) not in SINGLETONS:
            self.keep.append(value)
            self.derived[id(value)] = sources

    def _used(self, value: Any, op: int | None, now: float) -> None:
        index = self.results.get(id(value))
        if index is not None:
            self._mark(self.events[index], op, now)
        sources = self.derived.get(id(value))
        if sources:
            self._mark_set(sources, op, now)

    def _mark(self, ev: OpenCall, op: int | None, now: float) -> None:
        if op is None:
            if ev.first_use is None:
                ev.first_use = now
                frame = self._frame
                if frame is not None:  # described after the trial (see ``finish``)
                    ev.used_at = (frame.f_code, frame.f_lasti, frame.f_lineno)
        else:
            if ev.op_uses is None:
                ev.op_uses = {}
            ev.op_uses.setdefault(op, now)

    def _mark_set(self, sources: frozenset[int], op: int | None, now: float) -> None:
        # Only a first use counts, so a set of sources marked once for this ``op``
        # needs no second pass: ``acc = acc + x`` in a loop reads the same (shared)
        # set every iteration.
        key = (op, id(sources))
        if key not in self._marked:
            self._marked.add(key)
            self.keep.append(sources)  # its id must not be reused
            events = self.events
            for i in sources:
                self._mark(events[i], op, now)

    def failed(self, exc: Exception) -> None:
        """A hook of this trial failed: the trial goes on plain, and its trace is
        discarded (a bug of xcs's never breaks the user's call)."""
        self.failure = f"tracing failed: {type(exc).__name__}: {exc}"

    def use(self, value: Any, op: int | None = None) -> None:
        """The body observed ``value`` (through operator site ``op``, if given)."""
        now = _clock()
        self._frame = sys._getframe(2) if op is None else None  # use <- hook <- body
        self._used(value, op, now)
        if type(value) in CONTAINERS:
            items = value.values() if type(value) is dict else value
            for k, item in enumerate(items):
                if k >= FLAT_BUDGET:
                    break
                self._used(item, op, now)
        self._frame = None


def is_ancestor(candidate: Any, frame: Any, limit: int = 64) -> bool:
    f = frame.f_back
    while f is not None and limit:
        if f is candidate:
            return True
        f = f.f_back
        limit -= 1
    return False


def name_of(fn: Any) -> str:
    try:
        name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
        if name is None:
            name = type(fn).__qualname__ + " object"
        return str(name)
    except Exception:
        return "?"
