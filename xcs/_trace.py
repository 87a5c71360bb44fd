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

import sys
import time
from types import (
    FunctionType,
    GeneratorType,
)
from typing import Any

from xcs import _callees
from xcs._codes import HELPERS
from xcs._events import Call, OpenCall, Trace
from xcs._identities import (
    CONTAINERS,
    FLAT_BUDGET,
    MAX_CALLS,
    MAX_SOURCES,
    MUTE_AFTER,
    OPAQUE_TYPES,
    SINGLETONS,
    SLOW_CALL,
    is_ancestor,
)
from xcs._trace_ops import OperatorRecorder
from xcs._values import (
    drains,
    helper_stays,
)

__all__ = ["MUTE_AFTER", "Call", "Recorder", "Trace"]

_clock = time.perf_counter
_cpu = time.thread_time


class Recorder(OperatorRecorder):
    """Collects the call events of one trial call; not thread-safe (one thread)."""

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
        ev = OpenCall()
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
            if kind in CONTAINERS:
                opaque = opaque or self._is_opaque(value)
                self._flatten(value, sources, [FLAT_BUDGET], 2)
            else:
                if kind in OPAQUE_TYPES or kind is FunctionType:
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
            if made and id(result) not in SINGLETONS:
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

    def _restart(self, ev: OpenCall) -> None:
        if ev.cpu0 is not None:
            ev.cpu0 = _cpu()
        if self.deferring is not None:  # what it waited for so far is behind it
            ev.waited0 = self.deferring.waited
            ev.waited_cpu0 = self.deferring.waited_cpu
        ev.start = _clock()

    # -- bookkeeping ---------------------------------------------------------
    def _close_stale(self, frame: Any, now: float) -> None:
        """Close calls that raised: those made by ``frame`` itself or by frames gone."""
        while self.open:
            top = self.open[-1]
            if top.frame is not frame and is_ancestor(top.frame, frame):
                return
            self.open.pop()
            top.raised = True
            top.end = now
            top.frame = None
