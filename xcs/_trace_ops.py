"""The trial's records of operators and accesses on results, and the end of a
trial: its trace, with a first call's own waits taken out (``_as_if_plain``)."""

from __future__ import annotations

import bisect
import time
from typing import Any

from xcs import _callees
from xcs._events import Call, Trace
from xcs._identities import (
    CONTAINERS,
    MAX_SOURCES,
    MUTE_AFTER,
    NO_SOURCES,
    SINGLETONS,
    Identities,
    name_of,
)
from xcs._uses import described_use
from xcs._values import (
    PURE_TYPES,
    SHARES,
    pure_value,
    shares_state,
    stays_here,
)

__all__ = ["OperatorRecorder"]

_clock = time.perf_counter
_cpu = time.thread_time


class OperatorRecorder(Identities):
    """Operator and access sites (``a + b``, ``r.choices``, ``a, b = r``) and ``finish``."""

    def op_before(self, op: int, operands: tuple[Any, ...], access: bool = False) -> None:
        """An operator is about to combine ``operands`` (or an access to read a part of
        one): note where they came from.  An access may always wait for nothing."""
        quiet = self.op_quiet.get(op, 0)
        if quiet >= MUTE_AFTER:  # its operands never came from a recorded call
            self._op_sources = NO_SOURCES
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
            if type(value) in CONTAINERS:  # its items count as used, not as sources
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
                    elif type(item) not in PURE_TYPES:
                        return False
            elif not pure_value(value):
                return False
        return True

    def op_after(self, op: int, result: Any) -> None:
        """The operator's result carries its operands' sources to later calls."""
        sources = self._op_sources
        if sources and id(result) not in SINGLETONS:
            if len(sources) > MAX_SOURCES:  # acc = acc + x in a loop: keep the latest
                sources = set(sorted(sources)[-MAX_SOURCES:])
            shared = self._op_shared  # an operand's set: share it when it is the same
            self.keep.append(result)
            self.derived[id(result)] = (shared if shared is not None and (
                shared is sources or shared == sources) else frozenset(sources))

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
                names[id(ev.fn)] = (name_of(ev.fn), self.helper_stays.get(id(ev.fn))
                                    or stays_here(ev.fn) or (
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
