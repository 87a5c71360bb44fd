"""The hooks of one call site, and the thread-local state they read.

A site's hooks run in the body's frame at each of its calls: in a trial they
record the call (``_trace.Recorder``), in a replay they defer it or make it here
(``_replay.Invocation``), in a first call they defer the calls of callees this
process knows to be slow, and on a throttle they take its slots for the calls
the body makes itself.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from types import FrameType, FunctionType, GeneratorType
from typing import TYPE_CHECKING, Any

from xcs import _callees, _owners, _tracebacks
from xcs._analyze import MIN_DURATION
from xcs._codes import HELPERS
from xcs._frames import Frames, comprehension_frames
from xcs._replay import Invocation
from xcs._scheduling import C_CALLABLES
from xcs._tasks import Pending, resolve
from xcs._trace import Recorder
from xcs._values import STAYS_HERE, drains, helper_stays, shares_state, stays_here

if TYPE_CHECKING:
    from xcs._function import Function
    from xcs._rewrite import Site

__all__ = ["FAST_TO_UNGATE", "Gating", "Local", "SiteHook"]

FAST_TO_UNGATE = 3  # fast calls in a row after which a throttle stops gating a body's site

# Callees a trial's throttle does not gate: builtins and methods of builtin types.
_UNGATED = (*C_CALLABLES, type)
_OWNED = _owners.OWNED  # module globals: the touch hook runs before every read of a replay


class Gating:
    """A call of a throttled function that runs plain (its signature's plan is plain,
    another thread is tracing it, a tracer is active): it runs the trace body, whose
    hooks only take the throttle's slots and rate for its calls."""

    __slots__ = ("depth", "prev")

    def __init__(self, prev: Any, depth: int) -> None:
        self.prev = prev  # the thread's current Recorder or Invocation before this call
        self.depth = depth  # gated calls of outer frames in this thread


class Local(threading.local):
    cur: Any = None  # the Recorder or Invocation of the innermost call in this thread
    # a trial's calls on a throttle in progress in this thread: (site, the slots it
    # took, started), outermost first
    gated: list[tuple[int, Any, float]]

    def __init__(self) -> None:
        self.gated = []


class SiteHook:
    """The hooks of one call site, bound to its function's thread-local state."""

    __slots__ = ("comprehension", "first_ok", "genexpr", "line", "nested", "scan", "site", "state",
                 "tls", "via", "where")

    def __init__(self, site: Site, tls: Local, state: Function) -> None:
        self.site = site.id
        self.first_ok = state.first is not None and site.id in state.first.deferred
        self.line = site.line
        self.scan = site.scan
        self.comprehension = site.comprehension or site.genexpr
        self.genexpr = site.genexpr
        self.nested = self.genexpr or self.comprehension  # the call may not be the body's own
        self.via: Any = None  # made on the first deferral (compiling costs ~50 us)
        self.where = (site.code, site.filename, site.line)
        self.tls = tls
        self.state = state

    def before(self, fn: Any, /, *operands: Any) -> None:
        rec = self.tls.cur
        if type(rec) is Invocation:  # a first call's (a replay's body has no probes)
            rec = rec.rec
        if type(rec) is Recorder:
            if self.state.throttle is not None:
                self._gate(fn)  # before the call's clock starts: waiting is not its time
            try:
                rec.before(self.site, fn, operands)
            except Exception as exc:
                rec.failed(exc)
        elif type(rec) is Gating:
            self._gate(fn)

    def after(self, result: Any) -> Any:
        rec = self.tls.cur
        if type(rec) is Invocation:
            rec = rec.rec
        if type(rec) is Recorder:
            try:
                rec.after(self.site, result)
            except Exception as exc:
                rec.failed(exc)
            if self.tls.gated:
                self._ungate()
        elif type(rec) is Gating and self.tls.gated:
            self._ungate()
        return result

    def _gate(self, fn: Any) -> None:
        """On a throttle, a call of a Python callee made in the body (a trial's, or any
        call while the function runs plain) takes a slot and the rate, as deferred
        calls do: the limits hold for the calls the body makes itself too.  Builtins
        (``len``, ``str.strip``) and sites whose last calls were all fast do not.  A
        call made inside another (a generator expression a helper drains) takes the
        rate in the outer call's slot."""
        state = self.state
        if (state.fast_sites.get(self.site, 0) >= FAST_TO_UNGATE or isinstance(fn, _UNGATED)
                or type(fn) is GeneratorType):
            return
        assert state.throttle is not None
        gated = self.tls.gated
        if gated:
            state.throttle.acquire_rate()
            taken = None
        else:
            taken = state.throttle.acquire()
        gated.append((self.site, taken, time.perf_counter()))

    def _ungate(self) -> None:
        gated, state = self.tls.gated, self.state
        while gated:  # entries above this site's are calls that raised
            site, taken, started = gated.pop()
            if taken:
                assert state.throttle is not None
                state.throttle.release(taken)
            if site == self.site:
                fast = time.perf_counter() - started < MIN_DURATION
                state.fast_sites[site] = state.fast_sites.get(site, 0) + 1 if fast else 0
                return

    def wrap(self, fn: Any) -> Any:
        return functools.partial(self.defer, fn)

    def wrap_continuation(self, fn: Any) -> Any:
        return functools.partial(self.continuation, fn)

    def wrap_drain(self, fn: Any) -> Any:
        return functools.partial(self.drain, fn)

    def wrap_first(self, fn: Any) -> Any:
        """A first call's site: defer the call (through ``first``) if its callee is
        known to be slow and a replay could defer it; else the body makes it, as
        written, once ``first_arg`` has resolved its inputs."""
        inv = self.tls.cur
        if type(inv) is not Invocation or inv.rec is None:
            return fn
        if type(fn) is Pending:  # ``r.strip()`` on a result: made here, once it exists
            fn = resolve(fn)
            inv.rec.callee_is(self.site, fn)
        known = _callees.lookup(fn) if self.first_ok else None
        inv.rec.defers_now = defer = (
            known is not None and not stays_here(fn)
            and not self._kept_here(inv, fn, self._caller()))
        if known is not None and defer:
            return functools.partial(self.first, known, fn)
        if _OWNED and not _owners.clear((fn,), 2):  # as ``call_here`` does
            inv.touch((fn,), 2)
        return fn

    def first(self, known: _callees.Callee, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        entered, cpu = time.perf_counter(), time.thread_time()
        inv = self.tls.cur
        if type(inv) is not Invocation or inv.rec is None:
            return fn(*args, **kwargs)
        open_ = inv.rec.open
        ev = open_[-1] if open_ else None  # the call ``before`` just opened
        if (ev is None or ev.fn is not fn or ev.site != self.site
                or ev.task is not None or ev.opaque
                or (type(fn) is FunctionType and id(fn.__code__) in HELPERS
                    and helper_stays(fn, args))):
            return inv.call_here(fn, args, kwargs)
        # Placeholders may reach any site of the body from now on: no site runs as
        # written without its hooks any more (``_switches``).
        self.state.switches.forbid()
        try:
            frames = self._frames(self._caller())  # makes ``via`` on the first deferral
            result = inv.defer(self.site, self.line, fn, args, kwargs, self.scan, self.via,
                               frames)
        except Exception as exc:
            self.state._internal(exc)
            return inv.call_here(fn, args, kwargs)
        if type(result) is Pending:
            ev.task = result.task
            result.task.pure = known.pure
            rec = inv.rec  # what it spent is not the body's own time (``Recorder.spent``)
            rec.spent.append((entered, time.perf_counter()))
            rec.spent_cpu += time.thread_time() - cpu
        return result

    def drain(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        """``"".join(f(x) for x in xs)``: run the generator first, its calls deferred,
        then join (a continuation) when their results arrive.  The builtin consumes the
        generator whole anyway; only ``any``/``all``/``next`` stop early, and they are
        not drained."""
        inv = self.tls.cur
        gen = args[0] if args else None
        if (type(inv) is not Invocation or type(gen) is not GeneratorType or not drains(fn)
                or not gen.gi_code.co_qualname.startswith(self.state.prefix)
                or gen.gi_frame is None):
            return self._continue(self.scan, self._caller(), fn, args, kwargs)
        frame = gen.gi_frame
        inv.drained.add(frame)
        try:
            items = list(gen)
        finally:
            inv.drained.discard(frame)
        # What the generator yielded may be placeholders, whatever the site's
        # arguments looked like to the flow analysis (a generator holds none).
        return self._continue(True, sys._getframe(1), fn, (items, *args[1:]), kwargs)

    def continuation(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        """A fast call that may receive results (``json.loads(r)``, ``clean(r)``)."""
        return self._continue(self.scan, self._caller(), fn, args, kwargs)

    def _continue(self, scan: bool, caller: FrameType | None, fn: Any, args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> Any:
        inv = self.tls.cur
        if type(inv) is not Invocation:
            return fn(*args, **kwargs)
        if self._kept_here(inv, fn, caller):
            return inv.call_here(fn, args, kwargs)
        try:
            frames = self._frames(caller)
        except Exception as exc:
            self.state._internal(exc)
            return inv.call_here(fn, args, kwargs)
        return inv.continuation(self.site, self.line, fn, args, kwargs, scan, self.via, frames)

    def defer(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        # Every deferred call runs this: ``_caller``, ``_kept_here`` and ``_frames``
        # are inlined (a Python call each, on 3.11 about 1% of a deferred call).
        inv = self.tls.cur
        if type(inv) is not Invocation:  # not in a replay: nothing can be pending
            return fn(*args, **kwargs)
        caller = sys._getframe(1) if self.nested else None
        # A plain function with no closure outside STAYS_HERE neither stays nor shares.
        free = type(fn) is FunctionType and not fn.__closure__ and id(fn) not in STAYS_HERE
        if ((not free and (stays_here(fn) or shares_state(fn, self.state.prefix)))
                or (self.genexpr and caller not in inv.drained)):
            return inv.call_here(fn, args, kwargs)  # a callee unlike the trial's: keep it here
        try:
            frames = (comprehension_frames(caller) if self.comprehension and caller
                      else None)
            return inv.defer(self.site, self.line, fn, args, kwargs, self.scan,
                             self.via or self._trampoline(), frames)
        except Exception as exc:
            self.state._internal(exc)
        return inv.call_here(fn, args, kwargs)

    def _kept_here(self, inv: Invocation, fn: Any, caller: FrameType | None) -> bool:
        """A closure sharing the body's state, or a call of a generator expression that no
        builtin drains (its consumer would see the placeholders): made in the body."""
        return shares_state(fn, self.state.prefix) or (
            self.genexpr and caller not in inv.drained)

    def _caller(self) -> FrameType | None:
        """The frame making the call (of the hook's caller), when a generator expression
        or a comprehension may be making it; else None (the body's own)."""
        return sys._getframe(2) if self.nested else None

    def _trampoline(self) -> Any:
        """The trampoline the callee runs under, made on the site's first deferral."""
        if self.via is None:
            self.via = _tracebacks.trampoline(*self.where)
            self.state.trampolines[id(self.via.__code__)] = self.via.__code__
        return self.via

    def _frames(self, caller: FrameType | None) -> Frames | None:
        """The trampoline the callee runs under (made once), and the frames making the
        call when they are not the body's own (see ``comprehension_frames``)."""
        self._trampoline()
        return comprehension_frames(caller) if self.comprehension and caller else None
