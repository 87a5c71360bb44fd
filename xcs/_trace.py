"""Trace stage: the trial call records every call it makes.

The trial runs the trace copy of the body, in which each call site is
bracketed by two hooks that run *beside* the call, never between caller and
callee: ``before(site, callee, *operands)`` just before the CALL and
``after(site, result)`` just after it.  A third hook, ``use(value)``, sits
where a replay would have to resolve a placeholder and so tells when the
body first observed a result.

Dependencies are found by object identity while recording: every result is
kept alive for the length of the trial, so an ``id()`` seen among a later
call's arguments names the call that produced it.  Strings and ints count
like any other object (an LLM call returns a str).  Recording costs a fixed
amount per call and per use, so a trial is linear in the number of calls.
"""

from __future__ import annotations

import bisect
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
from dataclasses import dataclass, field
from types import (
    AsyncGeneratorType,
    BuiltinFunctionType,
    CoroutineType,
    FunctionType,
    GeneratorType,
    ModuleType,
)
from typing import Any, NamedTuple

from xcs import _callees
from xcs._codes import HELPERS

__all__ = ["Call", "Recorder", "Trace"]

MAX_CALLS = 200_000  # a longer trial stops recording (and is not optimized)
_FLAT_BUDGET = 256  # container elements looked at per call
# Objects CPython shares among all who make them (small ints, the empty and the
# one-character strings, the empty tuple): their identity names no call.
_SINGLETONS = frozenset(map(id, (None, True, False, Ellipsis, NotImplemented, (), "",
                                 *range(-5, 257), *map(chr, range(256)))))
_CONTAINERS = (list, tuple, dict, set, frozenset)
_OPAQUE = (GeneratorType, CoroutineType, AsyncGeneratorType)
_OPAQUE_TYPES = frozenset(_OPAQUE)
SLOW_CALL = 100e-6  # a site whose calls take this long keeps having its CPU time read
MUTE_AFTER = 64  # fast calls in a row after which a site is only timed, not recorded
MAX_SOURCES = 16  # calls an operator's result remembers coming from (the latest ones)
_NO_SOURCES: frozenset[int] = frozenset()
_clock = time.perf_counter
_cpu = time.thread_time

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
# the body for no reason (``stays_here``); the deferring hook asks this first (``_jit``).
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


class Call(NamedTuple):
    """One call recorded by a trial.

    A named tuple rather than a frozen dataclass: a trial can record 10^5
    calls, and a tuple is built several times faster.
    """

    seq: int  # position in the trial's calls
    site: int
    callee: str
    start: float  # seconds since the trial began
    end: float  # when it returned, or when the body went on after it raised
    cpu: float | None  # CPU seconds of the calling thread during the call (None: not read)
    deps: tuple[int, ...]  # earlier calls whose results were among its operands
    first_use: float | None  # when the body first observed its result (not via an operator)
    parent: int | None  # the call that was running when this one was made
    raised: bool
    opaque: bool  # a generator or a closure of the body among its arguments
    stays: str | None  # why the callee must run in the body's thread (see ``stays_here``)
    op_uses: tuple[tuple[int, float], ...] = ()  # (op site, time) an operator first read it
    drained: bool = False  # made by a generator expression while a builtin drained it
    used_at: str | None = None  # where the body first needed its result (see describe_use)
    # its result was an object CPython shares (``None``, a small int): its identity names
    # no call, so the calls it reached are found from the code (``Graph.from_trace``)
    shared_result: bool = False

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Trace:
    """What one trial call did."""

    calls: tuple[Call, ...]
    duration: float
    raised: bool
    truncated: bool
    op_pure: dict[int, bool] = field(default_factory=dict)  # op site -> builtin operands only
    cpu: float = 0.0  # CPU time of the body's thread during the trial
    drains: frozenset[int] = frozenset()  # sites of builtins that drained a generator expression

    def as_text(self) -> str:
        lines = [f"trial: {len(self.calls)} calls in {self.duration * 1e3:.3f} ms"
                 + (" (raised)" if self.raised else "")]
        for c in self.calls:
            deps = ",".join(map(str, c.deps)) or "-"
            lines.append(f"  #{c.seq} site {c.site} {c.callee} {c.duration * 1e3:.3f} ms"
                         f" deps {deps}" + ("" if c.parent is None else f" in #{c.parent}"))
        return "\n".join(lines)


class _Open:
    """A call being recorded (mutable until the trial ends)."""

    __slots__ = (
        "cpu",
        "cpu0",
        "deps",
        "drained",
        "end",
        "first_use",
        "fn",
        "frame",
        "helper_args",
        "index",
        "op_uses",
        "opaque",
        "parent",
        "raised",
        "shared_result",
        "site",
        "start",
        "task",
        "used_at",
        "waited0",
        "waited_cpu0",
    )
    index: int
    site: int
    fn: Any
    frame: Any
    start: float
    cpu0: float | None
    deps: tuple[int, ...]
    parent: int | None
    opaque: bool
    drained: bool

    def __init__(self) -> None:
        self.end: float | None = None
        self.cpu: float | None = None
        self.raised = False
        self.shared_result = False
        self.first_use: float | None = None
        self.used_at: Any = None  # where the body first needed the result: (code, lasti, line)
        self.op_uses: dict[int, float] | None = None
        self.task: Any = None  # a first call deferred it: the task that made it
        self.waited0 = self.waited_cpu0 = 0.0  # what a first call had waited for before it
        self.helper_args: tuple[Any, ...] | None = None  # an outlined helper's, pending


class Recorder:
    """Collects the call events of one trial call; not thread-safe (one thread)."""

    def __init__(self, local_prefix: str, deferring: Any = None) -> None:
        self.local_prefix = local_prefix  # qualname prefix of closures made by the body
        # A first call (see ``_jit``): the invocation that defers some of its calls,
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
        self.events: list[_Open] = []
        self.open: list[_Open] = []
        self.results: dict[int, int] = {}
        self.derived: dict[int, frozenset[int]] = {}  # operator results -> calls they came from
        self.op_pure: dict[int, bool] = {}
        self.op_quiet: dict[int, int] = {}  # op site -> probes in a row with no recorded source
        self._op_sources: set[int] | frozenset[int] = _NO_SOURCES
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

    # -- hooks ---------------------------------------------------------------
    def before(self, site: int, fn: Any, operands: tuple[Any, ...]) -> None:
        self.opened = site  # (see ``inputs_ready``)
        if site in self.muted:
            # A site whose last MUTE_AFTER calls were all fast is only timed: if
            # one turns out slow it is recorded again.  Its operands still count
            # as uses: a non-deferred call waits for its inputs.
            results, derived = self.results, self.derived
            self._frame = None  # a call's input: the call is where it was needed
            heard = False
            for value in operands:
                if id(value) in results or id(value) in derived:
                    self._used(value, None, _clock())
                    heard = True
            self.quiet[site] = 0 if heard else self.quiet.get(site, 0) + 1
            self.muted[site] = _clock()
            return
        if len(self.events) >= MAX_CALLS:
            self.truncated = True
            return
        if operands and type(operands[0]) is GeneratorType and drains(fn) and (
                operands[0].gi_code.co_qualname.startswith(self.local_prefix)):
            # ``"".join(f(x) for x in xs)``: not a call of its own; the generator's calls
            # are the body's (a replay defers them while the builtin drains it).
            self.drains.append((site, len(self.events)))
            self.drain_sites.add(site)
            return
        frame = sys._getframe(2)  # Recorder.before <- hook <- the calling code
        if self.open:
            self._close_stale(frame, _clock())
        ev = _Open()
        ev.index = len(self.events)
        ev.site = site
        ev.fn = fn
        ev.frame = frame
        ev.parent = self.open[-1].index if self.open else None
        results = self.results
        sources: set[int] = set()
        if results or self.derived:
            self._sources(fn, sources)
            owner = getattr(fn, "__self__", None)
            if owner is not None:
                self._sources(owner, sources)
        opaque = False
        for value in operands:
            kind = type(value)
            if kind in _CONTAINERS:
                opaque = opaque or self._is_opaque(value)
                self._flatten(value, sources, [_FLAT_BUDGET], 2)
            else:
                if kind in _OPAQUE_TYPES or kind is FunctionType:
                    opaque = opaque or self._is_opaque(value)
                if id(value) in results or id(value) in self.derived:
                    self._sources(value, sources)
        ev.deps = tuple(sorted(sources)) if sources else ()
        ev.opaque = opaque
        self.quiet[site] = 0 if sources or opaque else self.quiet.get(site, 0) + 1
        ev.drained = bool(self.drains)
        self.events.append(ev)
        self.open.append(ev)
        if type(fn) is FunctionType and id(fn.__code__) in HELPERS and id(fn) not in self.helper_stays:
            if self.placeholder is not None and any(type(v) is self.placeholder
                                                    for v in operands):
                ev.helper_args = operands  # looked at once they exist (``after``)
            else:
                self._helper(fn, operands)
        # CPU time costs a system call here (1-2 us): read it only where it can
        # matter, for a site's first calls and for the sites whose calls are slow.
        ev.cpu0 = _cpu() if self.cpu_budget.get(site, 2) > 0 else None
        if self.deferring is not None:
            ev.waited0 = self.deferring.waited
            ev.waited_cpu0 = self.deferring.waited_cpu
        ev.start = _clock()

    def after(self, site: int, result: Any) -> None:
        end = _clock()
        started = self.muted.get(site)
        if started is not None:
            if end - started >= SLOW_CALL:
                del self.muted[site]
                self.fast[site] = 0
                self.cpu_budget[site] = 2  # its next calls are timed in CPU too
            elif self.switches is not None and self.quiet.get(site, 0) >= MUTE_AFTER:
                self.switches.mute_site(site)  # switched on again (``_switches``): off
            return
        if self.truncated:
            return
        if self.drains and self.drains[-1][0] == site:  # the builtin that drained a genexpr
            _, first = self.drains.pop()
            made = [ev.index for ev in self.events[first:] if ev.parent is None]
            if made and id(result) not in _SINGLETONS:
                self.keep.append(result)
                self.derived[id(result)] = frozenset(made[-MAX_SOURCES:])
            return
        while self.open:
            ev = self.open.pop()
            if ev.site == site:
                ev.end = end
                if ev.task is not None:  # deferred: timed by its task (see ``finish``)
                    ev.frame = None
                    self._produced(ev.index, result)
                    return
                if ev.helper_args is not None:  # a first call resolved them for the call
                    self._helper(ev.fn, tuple(self.deferring.outcome(v)[1]
                                              if type(v) is self.placeholder else v
                                              for v in ev.helper_args))
                    ev.helper_args = None
                slow = end - ev.start >= SLOW_CALL
                if ev.cpu0 is not None:
                    ev.cpu = _cpu() - ev.cpu0
                    waited = 0.0
                    if self.deferring is not None:  # not what it waited for (its inputs)
                        waited = self.deferring.waited - ev.waited0
                        ev.cpu -= self.deferring.waited_cpu - ev.waited_cpu0
                    self.cpu_budget[site] = 2 if slow else self.cpu_budget.get(site, 2) - 1
                    if slow:
                        cpu = _cpu()
                        _callees.observed(ev.fn, end - ev.start - waited, ev.cpu, result)
                        if self.deferring is not None:
                            self.spent.append((end, _clock()))
                            self.spent_cpu += _cpu() - cpu
                elif slow:
                    self.cpu_budget[site] = 2  # its CPU time is read from its next call on
                fast = 0 if slow else self.fast.get(site, 0) + 1
                self.fast[site] = fast
                if fast >= MUTE_AFTER and ev.parent is None:
                    self.muted[site] = end
                    if self.switches is not None and self.quiet.get(site, 0) >= MUTE_AFTER:
                        self.switches.mute_site(site)  # its hooks are skipped from now on
                ev.frame = None
                self._produced(ev.index, result)
                return
            ev.raised = True  # an inner call raised and the body caught it
            ev.end = end
            ev.frame = None

    def use(self, value: Any, op: int | None = None) -> None:
        """The body observed ``value`` (through operator site ``op``, if given)."""
        now = _clock()
        self._frame = sys._getframe(2) if op is None else None  # use <- hook <- body
        self._used(value, op, now)
        if type(value) in _CONTAINERS:
            items = value.values() if type(value) is dict else value
            for k, item in enumerate(items):
                if k >= _FLAT_BUDGET:
                    break
                self._used(item, op, now)
        self._frame = None

    def _used(self, value: Any, op: int | None, now: float) -> None:
        index = self.results.get(id(value))
        if index is not None:
            self._mark(self.events[index], op, now)
        sources = self.derived.get(id(value))
        if sources:
            self._mark_set(sources, op, now)

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

    def _mark(self, ev: _Open, op: int | None, now: float) -> None:
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

    def op_before(self, op: int, operands: tuple[Any, ...], access: bool = False) -> None:
        """An operator is about to combine ``operands`` (or an access to read a part of
        one): note where they came from.  An access may always wait for nothing."""
        quiet = self.op_quiet.get(op, 0)
        if quiet >= MUTE_AFTER:  # its operands never came from a recorded call
            self._op_sources = _NO_SOURCES
            if self.switches is not None:
                self.switches.mute_op(op)  # its hooks are skipped from now on
            return
        # ``use`` and ``_sources`` for each operand, in one pass: this runs on
        # every iteration of a loop like ``acc += f(x)``.
        results, derived, events, mark = self.results, self.derived, self.events, self._mark
        hits: list[int] = []
        sets: list[frozenset[int]] = []
        now = 0.0
        for value in operands:
            index = results.get(id(value))
            if index is not None:
                now = now or _clock()
                mark(events[index], op, now)
                hits.append(index)
            fs = derived.get(id(value))
            if fs:
                now = now or _clock()
                self._mark_set(fs, op, now)
                sets.append(fs)
            if type(value) in _CONTAINERS:  # its items count as used, not as sources
                self.use(value, op)
        sources: set[int] | frozenset[int]
        if not hits and len(sets) == 1:  # ``acc + x``: acc's set, shared by the result
            sources = sets[0]
        else:
            sources = set(hits)
            for fs in sets:
                sources.update(fs)
        self._op_sources = sources
        self._op_shared = sets[0] if sets else None
        self.op_quiet[op] = 0 if sources else quiet + 1
        pure = self.op_pure.get(op, True) and all(map(pure_value, operands))
        if not pure and self.placeholder is not None and self.op_pure.get(op, True):
            pure = self._pure_later(op, operands)
        self.op_pure[op] = access or pure

    def _pure_later(self, op: int, operands: tuple[Any, ...]) -> bool:
        """Pure, unless a placeholder among ``operands`` turns out not to be: its value
        is known when the first call ends (``finish`` checks it then)."""
        for value in operands:
            if type(value) is self.placeholder:
                self.later.append((op, value))
            elif type(value) is tuple and len(value) <= 64:  # ``"%s|%d" % (r, n)``
                for item in value:
                    if type(item) is self.placeholder:
                        self.later.append((op, item))
                    elif type(item) not in _PURE_TYPES:
                        return False
            elif not pure_value(value):
                return False
        return True

    def _helper(self, fn: FunctionType, operands: tuple[Any, ...]) -> None:
        why = helper_stays(fn, operands)
        if why:
            self.helper_stays[id(fn)] = why

    def callee_is(self, site: int, fn: Any) -> None:
        """A first call resolved the callable of the call just opened at ``site`` (the
        method of a result, ``r.strip``): that is its callee, timed from now on."""
        ev = self.open[-1] if self.open else None
        if ev is not None and ev.site == site:
            ev.fn = fn
            self._restart(ev)

    def inputs_ready(self) -> None:
        """A first call resolved inputs of the call ``before`` opened last: it waited
        for them, resolved containers, aliased their items.  In plain they were there:
        the call is timed from now on (else a fast loop over results looks slow)."""
        site = self.opened
        if site in self.muted:
            self.muted[site] = _clock()
            return
        ev = self.open[-1] if self.open else None
        if ev is not None and ev.site == site and ev.task is None:
            self._restart(ev)

    def _restart(self, ev: _Open) -> None:
        if ev.cpu0 is not None:
            ev.cpu0 = _cpu()
        if self.deferring is not None:  # what it waited for so far is behind it
            ev.waited0 = self.deferring.waited
            ev.waited_cpu0 = self.deferring.waited_cpu
        ev.start = _clock()

    def alias(self, placeholder: Any, value: Any) -> None:
        """The body resolved ``placeholder`` to ``value``: it came from the same calls."""
        index = self.results.get(id(placeholder))
        if index is not None:
            self._produced(index, value)
        sources = self.derived.get(id(placeholder))
        if sources and id(value) not in _SINGLETONS:
            self.keep.append(value)
            self.derived[id(value)] = sources

    def op_after(self, op: int, result: Any) -> None:
        """The operator's result carries its operands' sources to later calls."""
        sources = self._op_sources
        if sources and id(result) not in _SINGLETONS:
            if len(sources) > MAX_SOURCES:  # acc = acc + x in a loop: keep the latest
                sources = set(sorted(sources)[-MAX_SOURCES:])
            shared = self._op_shared  # an operand's set: share it when it is the same
            self.keep.append(result)
            self.derived[id(result)] = (shared if shared is not None and (
                shared is sources or shared == sources) else frozenset(sources))

    # -- bookkeeping ---------------------------------------------------------
    def _close_stale(self, frame: Any, now: float) -> None:
        """Close calls that raised: those made by ``frame`` itself or by frames gone."""
        while self.open:
            top = self.open[-1]
            if top.frame is not frame and _is_ancestor(top.frame, frame):
                return
            self.open.pop()
            top.raised = True
            top.end = now
            top.frame = None

    def _produced(self, index: int, result: Any) -> None:
        self.keep.append(result)
        if id(result) not in _SINGLETONS:
            self.results[id(result)] = index
        else:
            self.events[index].shared_result = True
        if type(result) in (tuple, list, dict):
            items = result.values() if type(result) is dict else result
            for k, item in enumerate(items):
                if k >= _FLAT_BUDGET:
                    break
                if id(item) not in _SINGLETONS:
                    self.results[id(item)] = index

    def _sources(self, value: Any, into: set[int]) -> None:
        index = self.results.get(id(value))
        if index is not None:
            into.add(index)
        derived = self.derived.get(id(value))
        if derived:
            into.update(derived)

    def _flatten(self, value: Any, into: set[int], budget: list[int], depth: int) -> None:
        self._sources(value, into)
        if depth and type(value) in _CONTAINERS and budget[0] > 0:
            items: Any = value
            if type(value) is dict:
                items = [*value.keys(), *value.values()]
            for item in items:
                budget[0] -= 1
                if budget[0] <= 0:
                    return
                self._flatten(item, into, budget, depth - 1)

    def _is_opaque(self, value: Any) -> bool:
        if isinstance(value, _OPAQUE):
            return True
        if type(value) is FunctionType:
            return value.__qualname__.startswith(self.local_prefix)
        if type(value) in (list, tuple):
            return any(isinstance(v, _OPAQUE) for v in value[:8])
        return False

    def _as_if_plain(self, end: float) -> float:
        """Move a first call's times to where the plain function would have had them:
        each deferred call takes its own duration where the body made it, and the
        body never waits for one.  The analysis then reads the trace as a trial's.
        Returns ``end`` moved."""
        inv = self.deferring
        made: list[float] = []  # when the body made each deferred call, in order
        grown = [0.0]  # their durations summed
        took_by: dict[int, float] = {}
        for ev in self.events:
            task = ev.task
            if task is not None:
                took = max(0.0, task.ended - task.started) if task.ended else 0.0
                if task.ended and took < _callees.MIN_DURATION:
                    _callees.forget(ev.fn)  # it was slow once, not now: back to the body
                made.append(ev.start)
                grown.append(grown[-1] + took)
                took_by[ev.index] = took
        waits = sorted([(a, b) for a, b, *_ in inv.waits] + self.spent)
        starts = [a for a, _ in waits]
        waited = [0.0]
        for a, b in waits:
            waited.append(waited[-1] + (b - a))

        def moved(t: float) -> float:
            k = bisect.bisect_right(starts, t)  # waits begun by t
            lost = waited[k]
            if k and waits[k - 1][1] > t:  # inside the k-th wait: only its part so far
                lost -= waits[k - 1][1] - t
            return t + grown[bisect.bisect_left(made, t)] - lost

        for ev in self.events:
            start = moved(ev.start)
            if ev.task is not None:
                ev.end = start + took_by[ev.index]
            elif ev.end is not None:
                ev.end = moved(ev.end)
            ev.start = start
            if ev.first_use is not None:
                ev.first_use = moved(ev.first_use)
            if ev.op_uses:
                ev.op_uses = {op: moved(t) for op, t in ev.op_uses.items()}
        for op, value in self.later:  # what the placeholders an operator combined held
            if self.op_pure.get(op):
                done, got = inv.outcome(value)
                self.op_pure[op] = done and pure_value(got)
        return moved(end)

    # -- result ----------------------------------------------------------------
    def finish(self, raised: bool) -> Trace:
        """The trace of the trial; drops the references kept while recording."""
        end = _clock() if self.deferring is None else self.deferring.body_end or _clock()
        cpu = _cpu() - self.cpu0 - self.spent_cpu
        if self.deferring is not None:
            end = self._as_if_plain(end)
        for ev in self.open:
            ev.raised = raised or ev.raised
            ev.end = end
            ev.frame = None
        t0 = self.t0
        names: dict[int, tuple[str, str | None]] = {}  # per callee: its name, stays_here
        for ev in self.events:
            if id(ev.fn) not in names:
                names[id(ev.fn)] = (_name(ev.fn), self.helper_stays.get(id(ev.fn)) or stays_here(ev.fn) or (
                    SHARES if shares_state(ev.fn, self.local_prefix) else None))
        calls = tuple(
            Call(ev.index, ev.site, names[id(ev.fn)][0], ev.start - t0,
                 (ev.end if ev.end is not None else end) - t0, ev.cpu, ev.deps,
                 None if ev.first_use is None else ev.first_use - t0,
                 ev.parent, ev.raised, ev.opaque, names[id(ev.fn)][1],
                 tuple((op, t - t0) for op, t in ev.op_uses.items()) if ev.op_uses else (),
                 ev.drained, described_use(ev.used_at), ev.shared_result)
            for ev in self.events)
        self.keep.clear()
        self.results.clear()
        self.derived.clear()
        self._marked.clear()
        self._op_shared = None
        self.events.clear()
        self.open.clear()
        return Trace(calls, end - t0, raised, self.truncated, dict(self.op_pure), cpu,
                     frozenset(self.drain_sites))


_PURE_TYPES = frozenset({str, int, float, complex, bool, bytes, type(None)})
_SHARED_OK = (FunctionType, ModuleType, type, BuiltinFunctionType)  # cells nobody changes


def pure_value(value: Any) -> bool:
    """Builtin immutable values whose operators and formatting run no user code."""
    kind = type(value)
    if kind in _PURE_TYPES:
        return True
    return kind is tuple and len(value) <= 64 and all(type(v) in _PURE_TYPES for v in value)


# What the body did with a value, from the instruction that needed it.
_NEEDS = (
    (("POP_JUMP", "JUMP_IF", "TO_BOOL", "UNARY_NOT"), "a branch ('if', 'while', 'and'/'or') tests it"),
    (("RETURN",), "the function returns it"),
    (("CALL", "PRECALL"), "a call that is not deferred receives it"),
    (("COMPARE_OP",), "a comparison reads it"),
    (("CONTAINS_OP",), "'in' reads it"),
    (("IS_OP",), "'is' tests it"),
    (("GET_ITER", "FOR_ITER"), "a loop iterates over it"),
    (("STORE_ATTR",), "it is stored in an attribute"),
    (("STORE_SUBSCR",), "it is stored in a container the function did not build"),
    (("STORE_GLOBAL", "STORE_DEREF", "STORE_NAME"), "it is stored outside the function"),
    (("UNPACK",), "it is unpacked"),
    (("MATCH",), "a 'match' tests it"),
    (("FORMAT", "BUILD_STRING", "BINARY_OP"), "an operator or format reads it"),
    (("LOAD_ATTR", "LOAD_METHOD"), "an attribute of it is read"),
)
_SKIPPED = frozenset({"CACHE", "COPY", "SWAP", "POP_TOP", "NOP", "PUSH_NULL", "EXTENDED_ARG"})
_described: dict[tuple[Any, int], str] = {}


_listings: dict[Any, tuple[list[int], list[Any]]] = {}


def describe_use(code: Any, lasti: int, line: int) -> str:
    """``line 42: a branch ('if', ...) tests it (if reference is not None:)``: where the
    body's frame, stopped at a hook that resolves a value at instruction ``lasti`` of
    ``code`` (at ``line``), needs the value."""
    key = (code, lasti)
    text = _described.get(key)
    if text is None:
        import bisect
        import dis
        import linecache

        listing = _listings.get(code)
        if listing is None:
            instrs = list(dis.get_instructions(code))
            listing = _listings[code] = ([i.offset for i in instrs], instrs)
            if len(_listings) > 64:
                _listings.pop(next(iter(_listings)))
        offsets, instrs = listing
        what = "the body reads it"
        hooks = 0
        test = False
        for ins in instrs[bisect.bisect_right(offsets, lasti):]:
            owner = getattr(ins.argval, "__module__", None) or type(ins.argval).__module__
            if ins.opname == "LOAD_CONST" and str(owner).startswith("xcs"):
                if callable(ins.argval):
                    hooks += 1  # another hook: skip it and its call
                else:
                    test = True  # ``if OWNED:`` before a touch: skip the test
                continue
            if test and ins.opname in ("TO_BOOL", "POP_JUMP_IF_FALSE",
                                       "POP_JUMP_FORWARD_IF_FALSE"):
                test = ins.opname == "TO_BOOL"
                continue
            if ins.opname in _SKIPPED or (hooks and ins.opname in ("CALL", "PRECALL")):
                if ins.opname == "CALL":
                    hooks = max(0, hooks - 1)
                continue
            what = next((text for prefixes, text in _NEEDS
                         if ins.opname.startswith(prefixes)), f"{ins.opname} reads it")
            break
        source = linecache.getline(code.co_filename, line).strip()
        text = f"line {line}: {what}" + (f" ({source})" if source else "")
        if len(_described) < 4096:
            _described[key] = text
    return text


def described_use(where: Any) -> str | None:
    """``describe_use(*where)``, or None when there is no ``where`` or describing fails
    (it is only for explain: it never breaks a trial or a replay)."""
    if where is None:
        return None
    try:
        return describe_use(*where)
    except Exception:  # only for explain: never let it break a trial
        return None


def _is_ancestor(candidate: Any, frame: Any, limit: int = 64) -> bool:
    f = frame.f_back
    while f is not None and limit:
        if f is candidate:
            return True
        f = f.f_back
        limit -= 1
    return False


def _name(fn: Any) -> str:
    try:
        name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
        if name is None:
            name = type(fn).__qualname__ + " object"
        return str(name)
    except Exception:
        return "?"
