"""The front: ``jit`` ties rewrite, trace, graph, analyze and replay together.

A jitted function is a real Python function whose code holds the plain body
and its rewritten copies (see ``_rewrite``).  Each call first computes its
argument signature (the types of the bound parameters) and looks up what was
decided for it: the first call of a signature is the trial, later calls run
the plain body or replay the plan.  All of that happens in the function's own
frame, through the hooks defined here.
"""

from __future__ import annotations

import dis
import functools
import inspect
import json
import logging
import operator
import os
import sys
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from types import CodeType, FrameType, FunctionType, GeneratorType, MethodType, TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar, cast, overload

from xcs import _callees, _compat, _explain, _owners, _replay, _switches
from xcs._analyze import MIN_DURATION, ExecutorFacts, Plan
from xcs._codes import HELPERS, fold_helper
from xcs._errors import RewriteError, XcsTypeError, XcsValueError, XcsWarning
from xcs._executors import DEFAULT_WORKERS, Throttle, default_executor, remote
from xcs._graph import Graph
from xcs._replay import Invocation, Pending, Timeline
from xcs._trace import STAYS_HERE, Recorder, drains, helper_stays, pure_value, shares_state, stays_here

if TYPE_CHECKING:
    from xcs._rewrite import OpSite, Program, Site, Variant

__all__ = ["Jitted", "SignatureStats", "Stats", "jit"]

MAX_SIGNATURES = 64  # cached argument signatures per function (oldest dropped first)
MAX_TRIALS = 3  # trials per signature while the evidence is too thin to decide
MAX_REPLAY_BODIES = 8  # distinct replay copies of one function's body
FAST_TO_UNGATE = 3  # fast calls in a row after which a throttle stops gating a body's site

# Callees a trial's throttle does not gate: builtins and methods of builtin types.
_UNGATED = (*_replay.C_CALLABLES, type)
_OWNED = _owners.OWNED  # module globals: the touch hook runs before every read of a replay
_BOUND = _owners.BOUND
# In-place operators: on a mutable left operand they change it where the caller may see it.
_IN_PLACE = frozenset({operator.iadd, operator.isub, operator.imul, operator.imod,
                       operator.ifloordiv, operator.itruediv})
log = logging.getLogger("xcs")
log.addHandler(logging.NullHandler())  # a library logs; it never prints by itself


_HERE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _outside_xcs() -> int:
    """The warnings stacklevel of the first frame that is not xcs's own code."""
    frame: Any = sys._getframe(2)  # _outside_xcs <- warnings.warn's caller <- ...
    level = 2
    while frame is not None and frame.f_code.co_filename.startswith(_HERE):
        frame = frame.f_back
        level += 1
    return level


def _facts(executor: Executor) -> ExecutorFacts:
    """What the estimate assumes of ``executor``.

    Behaviour never depends on these: the worker count is only a hint for the
    estimate, read where the standard pools and dask keep it (an executor that
    does not say is assumed to have DEFAULT_WORKERS).
    """
    workers = getattr(executor, "_max_workers", None)
    if not isinstance(workers, int):
        try:  # dask.distributed's executor: ask its client how many threads it has
            workers = sum(executor._client.nthreads().values())  # type: ignore[attr-defined]
        except Exception:
            workers = None
    if not isinstance(workers, int) or workers < 1:
        workers = DEFAULT_WORKERS
    throttled = isinstance(executor, Throttle)
    return ExecutorFacts(workers, not remote(executor), _compat.gil_enabled(), throttled,
                         executor.interval if isinstance(executor, Throttle) else 0.0)


def _distinct(items: Any) -> tuple[Any, ...]:
    """The items, each once, in order of first appearance."""
    return tuple(dict.fromkeys(items))


class _Gating:
    """A call of a throttled function that runs plain (its signature's plan is plain,
    another thread is tracing it, a tracer is active): it runs the trace body, whose
    hooks only take the throttle's slots and rate for its calls."""

    __slots__ = ("depth", "prev")

    def __init__(self, prev: Any, depth: int) -> None:
        self.prev = prev  # the thread's current Recorder or Invocation before this call
        self.depth = depth  # gated calls of outer frames in this thread


class _Local(threading.local):
    cur: Any = None  # the Recorder or Invocation of the innermost call in this thread
    # a trial's calls on a throttle in progress in this thread: (site, the slots it
    # took, started), outermost first
    gated: list[tuple[int, Any, float]]

    def __init__(self) -> None:
        self.gated = []


@dataclass(frozen=True)
class SignatureStats:
    """What xcs decided for one argument signature, and what happened since."""

    signature: str
    status: str  # "new", "tracing", "plain" or "optimized"
    reason: str | None
    calls: int
    trials: int
    replays: int
    deferred_sites: tuple[str, ...]
    estimated_speedup: float | None
    measured_speedup: float | None
    traced: int = 0  # calls that ran plain because a tracer or debugger was active
    first_deferred: int = 0  # calls the first call deferred (of callees known to be slow)
    first_speedup: float | None = None  # the trial's estimate of plain / the first call


@dataclass(frozen=True)
class Stats:
    """``f.stats()``: the signatures a jitted function has seen and their plans."""

    function: str
    reason: str | None  # why the whole function runs plain, if it does
    signatures: tuple[SignatureStats, ...]

    @property
    def cached(self) -> int:
        return len(self.signatures)

    @property
    def optimized(self) -> int:
        return sum(s.status == "optimized" for s in self.signatures)

    def __str__(self) -> str:
        lines = [f"{self.function}: {self.cached} signatures, {self.optimized} optimized"
                 + (f" (runs plain: {self.reason})" if self.reason else "")]
        for s in self.signatures:
            est = f", estimated {s.estimated_speedup:.2f}x" if s.estimated_speedup else ""
            got = f", measured {s.measured_speedup:.2f}x" if s.measured_speedup else ""
            why = f" ({s.reason})" if s.reason else ""
            traced = (f", {s.traced} ran plain under a trace function or sys.monitoring tool"
                      if s.traced else "")
            first = (f", first call deferred {s.first_deferred} ({s.first_speedup:.2f}x)"
                     if s.first_deferred and s.first_speedup else "")
            lines.append(f"  {s.signature}: {s.status}{why}; {s.calls} calls, "
                         f"{s.replays} replayed{est}{got}{first}{traced}")
        return "\n".join(lines)


_P = ParamSpec("_P")
_Q = ParamSpec("_Q")
_R = TypeVar("_R")
_R_co = TypeVar("_R_co", covariant=True)
_S = TypeVar("_S")
_T = TypeVar("_T")


class Jitted(Protocol[_P, _R_co]):
    """What ``jit`` returns, to a type checker: the function's own signature, and the views.

    ``@jit def f(x: int) -> str`` is a ``Jitted[[int], str]``: ``f(1)`` is a
    ``str`` and ``f("a")`` is an error, as without ``@jit``.  ``__get__`` makes
    it bind like a function: read on an instance, a method loses its first
    parameter; read on the class it does not.  (Type checkers look through
    ``staticmethod``/``classmethod`` to this ``__get__``: mypy types a
    ``@staticmethod`` read on an instance, and both mypy and pyright a
    ``@classmethod`` read on the class, as if it were a plain method.)

    At run time ``jit`` returns a function (or a partial, bound method or
    descriptor of one) that has these methods.  ``Jitted`` is not
    ``runtime_checkable``: ``isinstance`` would only check that attributes of
    these names exist, so it would accept unrelated objects that have them, and
    reject a jitted ``partial`` before Python 3.14 (a partial has no ``__get__``).
    """

    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R_co: ...

    @property
    def __wrapped__(self) -> Callable[_P, _R_co]:
        """The function without xcs (``functools.wraps``); of a partial, its plain partial."""
        ...

    __name__: str
    __qualname__: str

    def stats(self) -> Stats:
        """The argument signatures seen so far and what was decided for each."""
        ...

    def explain(self, format: str = "text") -> str:
        """The recorded calls and the plan per signature, as text or as Graphviz DOT."""
        ...

    def timeline(self, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """The last replay (else the last trial) as Chrome/Perfetto trace-event JSON."""
        ...

    # Read on the class: unchanged.
    @overload
    def __get__(self, instance: None, owner: type[Any], /) -> Jitted[_P, _R_co]: ...
    # Read on an instance that can be the first argument: a bound method.
    @overload
    def __get__(self: Jitted[Concatenate[_S, _Q], _T], instance: _S,
                owner: type[Any] | None = None, /) -> Jitted[_Q, _T]: ...
    # The first parameter takes the instance's class: a classmethod read on an instance.
    @overload
    def __get__(self: Jitted[Concatenate[type[_S], _Q], _T], instance: _S,
                owner: type[Any] | None = None, /) -> Jitted[_Q, _T]: ...
    # Else (a staticmethod read on an instance): unchanged.
    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None, /) -> Jitted[_P, _R_co]: ...


class _Entry:
    """The state of one argument signature."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.status = "new"
        self.reason: str | None = None
        self.calls = 0
        self.trials = 0
        self.replays = 0
        self.traced = 0
        self.replay_time = 0.0
        self.plan: Plan | None = None
        self.graph: Graph | None = None
        self.variant: Variant | None = None
        # Of the last replay: drawn when asked for (``last_timeline``), not per replay.
        self.timeline: Timeline | Callable[[], Timeline] | None = None
        self.trial_started = 0.0
        self.trial_thread = ""
        self.first: Timeline | None = None  # of the first call, when it deferred calls
        self.first_deferred = 0  # calls the first call deferred
        self.first_sites: tuple[int, ...] = ()  # where

    def last_timeline(self) -> Timeline | None:
        """The last replay's timeline, else the trial's."""
        timeline = self.timeline
        if callable(timeline):
            timeline = self.timeline = timeline()
        if timeline is not None:
            return timeline
        if self.graph is not None:
            return _explain.timeline_from_graph(self.graph, self.trial_started, self.trial_thread)
        return None


class _SiteHook:
    """The hooks of one call site, bound to its function's thread-local state."""

    __slots__ = ("comprehension", "first_ok", "genexpr", "line", "nested", "scan", "site", "state",
                 "tls", "via", "where")

    def __init__(self, site: Site, tls: _Local, state: _Function) -> None:
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
                self.state.broken(rec, exc)
        elif type(rec) is _Gating:
            self._gate(fn)

    def after(self, result: Any) -> Any:
        rec = self.tls.cur
        if type(rec) is Invocation:
            rec = rec.rec
        if type(rec) is Recorder:
            try:
                rec.after(self.site, result)
            except Exception as exc:
                self.state.broken(rec, exc)
            if self.tls.gated:
                self._ungate()
        elif type(rec) is _Gating and self.tls.gated:
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
            fn = _replay.resolve(fn)
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
            frames = (_comprehension_frames(caller) if self.comprehension and caller
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
            self.via = _replay.trampoline(*self.where)
            self.state.trampolines[id(self.via.__code__)] = self.via.__code__
        return self.via

    def _frames(self, caller: FrameType | None) -> _replay.Frames | None:
        """The trampoline the callee runs under (made once), and the frames making the
        call when they are not the body's own (see ``_comprehension_frames``)."""
        self._trampoline()
        return _comprehension_frames(caller) if self.comprehension and caller else None


def _comprehension_frames(frame: Any) -> _replay.Frames:
    """The comprehension frames (3.11) or generator expression making a call (innermost
    first, at their instructions now) and the body's frame's code and instruction where
    it called the outermost one (``_replay.Frames``).  A failure's traceback shows them,
    as plain's does."""
    names = _compat.ops.COMPREHENSIONS if _compat.ops is not None else frozenset()
    chain = []
    while frame.f_back is not None and (frame.f_code.co_name in names
                                        or frame.f_code.co_name == "<genexpr>"):
        chain.append((frame, frame.f_lasti))
        frame = frame.f_back
        while frame.f_back is not None and frame.f_code.co_filename.startswith(_HERE):
            frame = frame.f_back  # the drain that runs a generator expression
    return tuple(chain), (frame.f_code, frame.f_lasti)


class _OpHook:
    """The hooks of one operator site (``a + b``, an f-string part) or access site
    (``r.choices``, ``r[0]``, ``a, b = r``, the method of ``r.strip()``)."""

    __slots__ = ("fn", "in_place", "inner", "kind", "line", "op", "state", "tls", "unpack")

    def __init__(self, op: OpSite, fn: Callable[..., Any], tls: _Local,
                 state: _Function) -> None:
        self.op = op.id
        self.line = op.line
        self.fn = fn
        self.in_place = fn in _IN_PLACE
        self.kind = _replay.OPERATOR if op.kind == "operator" else _replay.ANYWHERE
        self.unpack = op.arity if op.kind == "unpack" else 0
        self.inner = op.inner  # its failures show the comprehension's frames too
        self.tls = tls
        self.state = state

    def before(self, *operands: Any) -> None:
        rec = self.tls.cur
        if type(rec) is Invocation:
            rec = rec.rec
        if type(rec) is Recorder:
            try:
                rec.op_before(self.op, operands, self.kind == _replay.ANYWHERE)
            except Exception as exc:
                self.state.broken(rec, exc)

    def after(self, result: Any) -> Any:
        rec = self.tls.cur
        if type(rec) is Invocation:
            rec = rec.rec
        if type(rec) is Recorder:
            try:
                rec.op_after(self.op, result)
            except Exception as exc:
                self.state.broken(rec, exc)
        return result

    def lazy(self, operands: tuple[Any, ...]) -> Any:
        inv = self.tls.cur
        replay = type(inv) is Invocation
        target = operands[0]
        if self.unpack:  # the body's UNPACK_SEQUENCE follows, on what this returns
            if type(target) is Pending:
                if replay:
                    frames = _comprehension_frames(sys._getframe(1)) if self.inner else None
                    return inv.unpack(self.op, self.line, self.fn, target, self.unpack, frames)
                return _replay.resolve(target)
            if replay and _owners.OWNED and not _owners.clear(operands, 0):
                inv.touch(operands, 0)
            return target
        if self.in_place and type(target) is not Pending and not pure_value(target):
            # ``xs += ys`` on a value the caller may see (the trial saw only immutable
            # ones): as the guard does, wait for every deferred call, then change it now.
            if replay:
                inv.wait_all()
            return self.fn(*map(_replay.resolve, operands))
        if any(type(v) is Pending or (type(v) is tuple and _replay._holds(v))
               for v in operands):
            # In a first call, an operator is lazy only on values that run no user code,
            # as a replay's are (its trial saw them); what it makes is such a value too,
            # as is what an access reads from one (``r[2:-2]`` of a str).
            pure = replay and inv.rec is not None and all(map(_expect_pure, operands))
            if replay and (inv.rec is None or pure or self.kind != _replay.OPERATOR):
                frames = _comprehension_frames(sys._getframe(1)) if self.inner else None
                made = inv.derive(self.op, self.line, self.fn, operands, self.kind, frames)
                if pure and type(made) is Pending:
                    made.task.pure = True
                return made
            operands = tuple(map(_replay.resolve, operands))
        elif replay and _owners.OWNED and not _owners.clear(operands, self.kind == 1):
            inv.touch(operands, self.kind == 1)  # it reads its operands (an operator: deeply)
        return self.fn(*operands)


def _expect_pure(value: Any) -> bool:
    """An immutable builtin (``pure_value``), or a first call's placeholder expected to
    hold one, or a tuple of those."""
    kind = type(value)
    if kind is Pending:
        return bool(value.task.pure)
    if kind is tuple:
        return len(value) <= 64 and all((type(v) is Pending and v.task.pure) or pure_value(v)
                                        for v in value)
    return pure_value(value)


class _Hooks:
    """The callables that ``Program.combine`` places into the function's code."""

    def __init__(self, state: _Function) -> None:
        self.tls = state.tls
        self.state = state
        program = state.program
        assert program is not None
        self.sites = [_SiteHook(s, state.tls, state) for s in program.sites]
        self.ops = [_OpHook(o, program.op_function(o.id), state.tls, state)
                    for o in program.op_sites]
        self.resolve = _replay.resolve
        self.owned = _owners.OWNED

    def before(self, site: int) -> Callable[..., Any]:
        return self.sites[site].before

    def after(self, site: int) -> Callable[[Any], Any]:
        return self.sites[site].after

    def wrap(self, site: int) -> Callable[[Any], Any]:
        return self.sites[site].wrap

    def wrap_continuation(self, site: int) -> Callable[[Any], Any]:
        return self.sites[site].wrap_continuation

    def wrap_drain(self, site: int) -> Callable[[Any], Any]:
        return self.sites[site].wrap_drain

    def wrap_first(self, site: int) -> Callable[[Any], Any]:
        return self.sites[site].wrap_first

    def op_before(self, op: int) -> Callable[..., Any]:
        return self.ops[op].before

    def op_after(self, op: int) -> Callable[[Any], Any]:
        return self.ops[op].after

    def lazy(self, op: int) -> Callable[[tuple[Any, ...]], Any]:
        return self.ops[op].lazy

    def site_switch(self, site: int) -> object:
        return self.state.switches.sites[site]

    def op_switch(self, op: int) -> object:
        return self.state.switches.ops[op]

    def use(self, value: Any) -> Any:
        rec = self.tls.cur
        if type(rec) is Invocation:
            rec = rec.rec
        if type(rec) is Recorder:
            try:
                rec.use(value)
            except Exception as exc:
                self.state.broken(rec, exc)
        return value

    def first_arg(self, value: Any) -> Any:
        """A first call's input of a call the body makes itself: resolved, and after the
        deferred calls that own what it reaches (as ``call_here`` does)."""
        inv = self.tls.cur
        if type(inv) is not Invocation or inv.rec is None or inv.rec.defers_now:
            return value
        kind = type(value)
        if kind is Pending or kind is list or kind is dict or kind is tuple:
            value = self._resolved(inv.rec, value)
            inv.rec.inputs_ready()
        if _OWNED and not _owners.clear((value,), 1):
            inv.touch((value,), 1)
            inv.rec.inputs_ready()
        return value

    def use_resolve(self, value: Any) -> Any:
        """A first call's: the body observes ``value`` (recorded), resolved."""
        inv = self.tls.cur
        if type(inv) is not Invocation or inv.rec is None:
            return value
        rec = inv.rec
        try:
            rec.use(value)
        except Exception as exc:
            self.state.broken(rec, exc)
        return self._resolved(rec, value)

    @staticmethod
    def _resolved(rec: Recorder, value: Any) -> Any:
        """``value`` resolved; what came out of a placeholder came from its calls."""
        kind = type(value)
        if kind is Pending:
            got = _replay.resolve(value)
            rec.alias(value, got)
            return got
        if kind is list or kind is dict or kind is tuple:
            items = list(value.values() if kind is dict else value)
            got = _replay.resolve(value)
            for before, now in zip(items, got.values() if kind is dict else got):
                if type(before) is Pending:
                    rec.alias(before, now)
            return got
        return value

    # Called only while some deferred call owns objects (the body tests ``owned``).
    def touch(self, *values: Any) -> None:
        # ``_owners.clear(values, 0)`` inlined: this runs before every attribute load,
        # subscript and loop step of a replay while some call owns anything.
        owned = _OWNED
        if 0 not in owned:
            for value in values:
                if id(value) in owned or (type(value) in _BOUND
                                          and id(value.__self__) in owned):
                    break
            else:
                return
        inv = self.tls.cur
        if type(inv) is Invocation:
            inv.touch(values, 0)

    def touch_deep(self, *values: Any) -> None:
        if not _owners.clear(values, 1):
            inv = self.tls.cur
            if type(inv) is Invocation:
                inv.touch(values, 1)

    def touch_call(self, *values: Any) -> None:
        if not _owners.clear(values, 2):
            inv = self.tls.cur
            if type(inv) is Invocation:
                inv.touch(values, 2)

    def barrier(self, _: Any) -> None:
        inv = self.tls.cur
        if type(inv) is Invocation:
            inv.wait_all()

    def settle(self, _: Any) -> None:
        inv = self.tls.cur
        if type(inv) is Invocation:
            inv.settle()

    def guard(self, target: Any) -> None:
        """Before ``target += ...`` or ``target.append(...)`` on a value the caller (or a
        deferred call) may see: a barrier unless it is an immutable builtin, which those
        cannot change (a user class, a numpy array or an ``array.array`` can)."""
        if not pure_value(target):  # anything but an immutable builtin may change in place
            inv = self.tls.cur
            if type(inv) is Invocation:
                inv.wait_all()

    def finish(self, value: Any) -> Any:
        cur = self.tls.cur
        if type(cur) is Invocation:
            return cur.finish(value)
        if type(cur) is Recorder:
            self.state.end_trial(cur, raised=False)
        elif type(cur) is _Gating:
            self.state.end_gating(cur)
        return value

    def abort(self, exc: BaseException) -> BaseException:
        cur = self.tls.cur
        if type(cur) is Invocation:
            return _without_own_frames(cur.abort(exc, sys._getframe(1)))
        if type(cur) is Recorder:
            self.state.end_trial(cur, raised=True)
        elif type(cur) is _Gating:
            self.state.end_gating(cur)
        return _without_own_frames(exc)


def _without_own_frames(exc: BaseException) -> BaseException:
    """Drop xcs's own frames (a drain running a generator expression, a call made
    here, an outlined try's helper) from the traceback between the body's frame and
    the code that raised; and the last one, where it made the body's call or
    operation (``fn(*args)``) and a builtin raised: plain's traceback ends in the body."""
    tb = fold_helper(exc.__traceback__)
    exc.__traceback__ = tb
    while tb is not None and tb.tb_next is not None:
        nxt = tb.tb_next
        if nxt.tb_frame.f_code.co_filename.startswith(_HERE) and (
                nxt.tb_next is not None or _made_the_call(nxt)):
            tb.tb_next = nxt.tb_next
        else:
            tb = nxt
    return exc


_CALL_EX = dis.opmap["CALL_FUNCTION_EX"]


def _made_the_call(tb: TracebackType) -> bool:
    """Did xcs's frame raise from its ``fn(*args, **kwargs)``, the body's own call?"""
    code = tb.tb_frame.f_code.co_code
    return 0 <= tb.tb_lasti < len(code) and code[tb.tb_lasti] == _CALL_EX


class _Layout:
    """Which copy of the body each variant is, in one version of the function's code."""

    __slots__ = ("index",)

    def __init__(self, variants: list[Variant]) -> None:
        self.index = {v: k for k, v in enumerate(variants, start=1)}


class _Function:
    """Everything xcs keeps about one jitted function."""

    def __init__(self, fn: FunctionType, executor: Executor | None) -> None:
        self.fn = fn
        self.name = fn.__qualname__
        self.prefix = self.name + ".<locals>."  # qualnames of the functions the body defines
        self.executor = executor
        self.throttle = executor if isinstance(executor, Throttle) else None
        # site -> how many of its last calls in the body were fast: from FAST_TO_UNGATE
        # on, a throttle no longer gates it (a slow call starts the count again)
        self.fast_sites: dict[int, int] = {}
        self.tls = _Local()
        self.lock = threading.RLock()
        self.entries: OrderedDict[Any, _Entry] = OrderedDict()
        self.variants: list[Variant] = []
        self.reason: str | None = None
        self.disabled = False  # set after an internal error: every call runs plain
        self.tracer_ok = False  # replay under a tracer too (xcs.verify's own copy)
        # The code of the frames its deferred calls run under, by id: trampolines of one
        # call site in two copies of a function are equal code objects.
        self.trampolines: dict[int, CodeType] = {}
        self.warned: set[str] = set()
        code = fn.__code__
        self.n_args = code.co_argcount + code.co_kwonlyargcount
        self.star = self.n_args if code.co_flags & inspect.CO_VARARGS else None
        self.starstar = (self.n_args + (self.star is not None)
                         if code.co_flags & inspect.CO_VARKEYWORDS else None)
        self.param_names = code.co_varnames[:self.n_args + (self.star is not None)
                                             + (self.starstar is not None)]
        self.varargs = self.star is not None or self.starstar is not None
        self.program: Program | None
        self.first: Variant | None = None
        try:
            if _compat.ops is None:
                raise RewriteError(_compat.UNSUPPORTED or "unsupported interpreter")
            # Imported here: the rewrite stage needs the bytecode package and
            # CPython bytecode; ``import xcs`` must work on any interpreter.
            from xcs._rewrite import Program, Variant

            self.program = Program.from_function(fn)
            # The first call of a signature (its trial) defers what this process knows
            # to be slow (``_callees``); on a throttle or another process's workers, it
            # is the trace body, which makes every call in the body.
            sites = self.program.first_sites()
            if sites and self.throttle is None and not (executor is not None and remote(executor)):
                self.first = Variant("first", sites)
            self.variants.append(self.first or Variant("trace"))
            self.switches = _switches.Switches(len(self.program.sites),
                                               len(self.program.op_sites))
            self.hooks = _Hooks(self)
            code = self._build()
        except RewriteError as exc:
            self.program = None
            self.reason = f"cannot rewrite its bytecode: {exc}"
            self._warn(self.reason)
        self.jitted = FunctionType(code, fn.__globals__, fn.__name__, fn.__defaults__,
                                   fn.__closure__)
        if fn.__kwdefaults__ is not None:
            self.jitted.__kwdefaults__ = dict(fn.__kwdefaults__)
        functools.update_wrapper(self.jitted, fn)
        self.jitted.__xcs__ = self  # type: ignore[attr-defined]
        self.jitted.stats = self.stats  # type: ignore[attr-defined]
        self.jitted.explain = self.explain  # type: ignore[attr-defined]
        self.jitted.timeline = self.timeline  # type: ignore[attr-defined]

    # -- code ------------------------------------------------------------------
    def _build(self) -> Any:
        assert self.program is not None
        # A C-level partial: the prologue's call reaches dispatch in one Python frame.
        dispatch = functools.partial(self.dispatch, _Layout(self.variants))
        return self.program.combine(self.variants, dispatch, self.hooks)

    def _install(self, variant: Variant) -> bool:
        """Make sure the function's code has a replay body for ``variant``."""
        with self.lock:
            if variant in self.variants:
                return True
            if len(self.variants) > MAX_REPLAY_BODIES:
                return False
            self.variants.append(variant)
            try:
                self.jitted.__code__ = self._build()
            except RewriteError:
                self.variants.remove(variant)
                raise
            return True

    # -- per call ----------------------------------------------------------------
    def _key(self, params: tuple[Any, ...]) -> Any:
        key: tuple[Any, ...] = tuple(map(type, params))
        if self.star is not None:  # the types in ``*args``, not how many: f(*docs) is one
            key += ("*", *_distinct(map(type, params[self.star])))
        if self.starstar is not None:
            key += ("**", *sorted((k, type(v)) for k, v in params[self.starstar].items()))
        hash(key)
        return key

    def _text(self, params: tuple[Any, ...]) -> str:
        parts = []
        for k, (name, value) in enumerate(zip(self.param_names, params)):
            if k == self.star:
                types = ", ".join(t.__name__ for t in _distinct(map(type, value)))
                parts.append(f"*{name}: ({types}, ...)" if types else f"*{name}: ()")
            elif k == self.starstar:
                parts.append("**" + name + ": {" + ", ".join(
                    f"{n}: {type(v).__name__}" for n, v in sorted(value.items())) + "}")
            else:
                parts.append(f"{name}: {type(value).__name__}")
        return "(" + ", ".join(parts) + ")"

    def dispatch(self, layout: _Layout, params: tuple[Any, ...]) -> int:
        """Choose the body for this call: 0 plain, else the trace or a replay copy."""
        if self.disabled:
            return 0
        try:
            key = self._key(params) if self.varargs else tuple(map(type, params))
            entry = self.entries.get(key)
        except Exception:
            return self._plain(layout)
        try:
            if entry is None:
                entry = self._new_entry(key, params)
            entry.calls += 1
            status = entry.status
            if status == "plain":
                return self._plain(layout)
            if _compat.tracing() and not self.tracer_ok:  # a debugger or coverage tool
                # must see the plain function
                entry.traced += 1
                return self._plain(layout)
            if status == "optimized":
                k = layout.index.get(entry.variant) if entry.variant else None
                if k is None:
                    return self._plain(layout)
                executor = self.executor or default_executor()
                start = time.perf_counter()
                prev = self.tls.cur
                inv = Invocation(executor, lambda inv, raised: self._replayed(
                    entry, inv, prev, start, raised), entry.plan.ranks if entry.plan else None)
                self.tls.cur = inv
                return k
            if status == "new":
                with self.lock:
                    if entry.status != "new":
                        return 0
                    entry.status = "tracing"
                prev = self.tls.cur
                k = layout.index[self.variants[0]]
                if self.first is None:
                    rec = Recorder(self.prefix)
                    rec.context = (entry, prev, len(self.tls.gated))  # type: ignore[attr-defined]
                    self.tls.cur = rec
                    return k
                inv = Invocation(self.executor or default_executor(),
                                 lambda inv, raised: self.end_trial(inv.rec, raised, inv))
                inv.rec = rec = Recorder(self.prefix, inv)
                self.switches.reset()  # what an earlier trial muted, this one sees
                if self.switches.allowed:
                    rec.switches = self.switches
                rec.context = (entry, prev, len(self.tls.gated))  # type: ignore[attr-defined]
                self.tls.cur = inv
                return k
            return self._plain(layout)  # another thread is tracing this signature
        except Exception as exc:
            self._internal(exc)
            return 0

    def _plain(self, layout: _Layout) -> int:
        """The plain body; on a throttle, the trace body with hooks that only gate its
        calls (``_Gating``): the throttle's limits hold when a call runs plain too."""
        if self.throttle is None:
            return 0
        tls = self.tls
        tls.cur = _Gating(tls.cur, len(tls.gated))
        return layout.index[self.variants[0]]

    def end_gating(self, gating: _Gating) -> None:
        self.tls.cur = gating.prev
        self._release_gated(gating.depth)

    def _release_gated(self, depth: int) -> None:
        """Give back the throttle slots still taken by this call's calls that raised."""
        gated = self.tls.gated
        while len(gated) > depth:
            taken = gated.pop()[1]
            if taken:
                assert self.throttle is not None
                self.throttle.release(taken)

    def _new_entry(self, key: Any, params: tuple[Any, ...]) -> _Entry:
        with self.lock:
            entry = self.entries.get(key)
            if entry is None:
                entry = _Entry(self._text(params))
                self.entries[key] = entry
                while len(self.entries) > MAX_SIGNATURES:
                    self.entries.popitem(last=False)
            return entry

    def end_trial(self, rec: Recorder, raised: bool, inv: Invocation | None = None) -> None:
        """The trial (or first call, which made ``inv``'s calls) returned or raised."""
        entry, prev, depth = rec.context  # type: ignore[attr-defined]
        self.tls.cur = prev
        self._release_gated(depth)
        if inv is not None:
            entry.first = inv.timeline()
            deferred = [t.site for t in inv.tasks if t.site >= 0]
            entry.first_deferred = len(deferred)
            entry.first_sites = tuple(sorted(set(deferred)))
        try:
            trace = rec.finish(raised)
            if getattr(rec, "failure", None):
                raise RuntimeError(rec.failure)  # type: ignore[attr-defined]
            assert self.program is not None
            graph = Graph.from_trace(trace, self.program.fed_by)
            plan = Plan.from_graph(graph, self.program.sites,
                                   _facts(self.executor or default_executor()),
                                   self.program.accesses)
            if plan.optimized and self.program.frame_reads:
                plan = Plan.plain("the body reads its own frame (locals, vars, eval, exec or dir)",
                                  time=graph.duration)
            entry.trials += 1
            entry.graph = graph
            entry.plan = plan
            entry.timeline = None  # the trial's is drawn from the graph when asked for
            entry.trial_thread = threading.current_thread().name
            entry.trial_started = rec.wall0
            log.debug("%s%s: trial of %d calls in %.1f ms: %r", self.name, entry.text,
                      len(graph.nodes), graph.duration * 1e3, plan)
            if plan.optimized:
                from xcs._rewrite import Variant

                variant = Variant("replay", plan.deferred | plan.continued | plan.drains,
                                  plan.lazy, plan.continued, plan.drains, plan.settles)
                if self._install(variant):
                    entry.variant = variant
                    entry.status = "optimized"
                    entry.reason = None
                    log.info("%s%s: optimized, deferring %d call sites (estimated %.2fx)",
                             self.name, entry.text, len(plan.deferred), plan.speedup)
                    return
                plan = Plan.plain("too many distinct plans for one function",
                                  time=graph.duration)
                entry.plan = plan
            entry.reason = plan.reason
            if plan.tentative and entry.trials < MAX_TRIALS:
                entry.status = "new"
            else:
                entry.status = "plain"
        except Exception as exc:
            entry.status = "plain"
            entry.reason = f"internal error while planning: {type(exc).__name__}: {exc}"
            self._warn(entry.reason)

    def broken(self, rec: Recorder, exc: BaseException) -> None:
        """A trace hook failed: the trial goes on plain, and its trace is discarded."""
        rec.failure = f"tracing failed: {type(exc).__name__}: {exc}"  # type: ignore[attr-defined]

    def _replayed(self, entry: _Entry, inv: Invocation, prev: Any, start: float,
                  raised: bool) -> None:
        self.tls.cur = prev
        if inv.refused is None:  # a call the executor refused ran plain: not a replay
            entry.replays += 1
            entry.replay_time += time.perf_counter() - start
            entry.timeline = inv.draw_timeline()
        else:
            entry.status = "plain"
            entry.reason = f"the executor refused work: {type(inv.refused).__name__}: {inv.refused}"
            self._warn(entry.reason)

    def _internal(self, exc: BaseException) -> None:
        """An error in xcs itself: from now on the function runs plain, and says why."""
        self.disabled = True
        if self.reason is None:
            self.reason = f"internal error: {type(exc).__name__}: {exc}"
        self._warn(self.reason)

    def _warn(self, reason: str) -> None:
        with self.lock:
            if reason in self.warned:
                return
            self.warned.add(reason)
        log.warning("xcs runs %r plain: %s", self.name, reason)
        warnings.warn(XcsWarning(f"xcs runs {self.name!r} plain: {reason}"),
                      stacklevel=_outside_xcs())

    # -- introspection -------------------------------------------------------------
    def _where(self) -> dict[int, str]:
        if self.program is None:
            return {}
        return {s.id: s.where() for s in self.program.sites}

    def stats(self) -> Stats:
        """The argument signatures seen so far and what was decided for each."""
        where = self._where()
        sigs = []
        with self.lock:
            entries = list(self.entries.values())
        for e in entries:
            plan = e.plan
            measured = None
            if e.replays and plan is not None and plan.optimized and e.status == "optimized":
                measured = plan.plain_time / (e.replay_time / e.replays)
            sigs.append(SignatureStats(
                e.text, e.status, e.reason if e.status != "optimized" else None, e.calls,
                e.trials, e.replays,
                tuple(where[s] for s in sorted(plan.deferred)) if plan and e.status == "optimized"
                else (),
                plan.speedup if plan is not None else None, measured, e.traced,
                e.first_deferred, _first_speedup(e)))
        return Stats(self.name, self.reason, tuple(sigs))

    def timeline(self, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """The last replay (else the last trial) as Chrome/Perfetto trace-event JSON.

        Args:
            path: also write the JSON there (open it in ui.perfetto.dev or chrome://tracing).
        """
        with self.lock:
            timelines = [(t, e) for e in self.entries.values()
                         if (t := e.last_timeline()) is not None]
        if not timelines:
            return _saved(_no_events(), path)
        latest, entry = max(timelines, key=lambda te: te[0].started + te[0].duration)
        return _saved(_explain.trace_events(latest, self.name + entry.text, self._where()), path)

    def explain(self, format: str = "text") -> str:
        """Per signature: the recorded calls, edges, independent sets, critical path and plan.

        Args:
            format: ``"text"`` (default) or ``"dot"`` (a Graphviz digraph of the calls).

        Raises:
            ValueError: for another format.
        """
        _check_format(format)
        where = self._where()
        if format == "dot":
            with self.lock:
                entries = list(self.entries.values())
            return _explain.dot(self.name, [(e.text, e.graph, e.plan) for e in entries], where)
        stats = self.stats()
        lines = [str(stats).splitlines()[0]]
        if self.program is not None and self.program.notes:
            lines += [f"  note: {n}" for n in self.program.notes]
        with self.lock:
            entries = list(self.entries.values())
        for e in entries:
            lines.append("")
            lines.append(f"signature {e.text}: {e.status}"
                         + (f" ({e.reason})" if e.reason and e.status != "optimized" else ""))
            if e.graph is not None:
                lines += ["  " + ln for ln in e.graph.as_text(where).splitlines()]
            if e.plan is not None:
                lines += ["  " + ln for ln in e.plan.as_text(where).splitlines()]
            if e.first_deferred and e.first is not None:
                plain = f" against {e.plan.plain_time * 1e3:.1f} ms plain" if e.plan else ""
                lines.append(
                    f"  first call: {e.first.duration * 1e3:.1f} ms{plain}; it deferred "
                    f"{e.first_deferred} calls at {', '.join(where[s] for s in e.first_sites)}"
                    " (of callees this process had seen slow; the others ran as in a trial)")
            if e.replays and e.plan is not None and e.plan.optimized:
                mean = e.replay_time / e.replays
                lines.append(f"  measured: {e.replays} replays, mean {mean * 1e3:.1f} ms "
                             f"({e.plan.plain_time / mean:.2f}x)")
                lines += _waits(e.last_timeline(), where)
        return "\n".join(lines)


def _first_speedup(entry: _Entry) -> float | None:
    """The trial's plain time over the first call's own, when the first call deferred."""
    if not entry.first_deferred or entry.first is None or entry.plan is None:
        return None
    return entry.plan.plain_time / entry.first.duration if entry.first.duration > 0 else None


def _check_format(format: str) -> None:
    if format not in ("text", "dot"):
        raise XcsValueError(f"explain() format must be 'text' or 'dot', not {format!r}")


def _no_events() -> dict[str, Any]:
    """The trace-event JSON of a function with nothing recorded yet."""
    return {"traceEvents": [], "displayTimeUnit": "ms"}


def _saved(events: dict[str, Any], path: str | os.PathLike[str] | None) -> dict[str, Any]:
    if path is not None:
        with open(path, "w") as f:
            json.dump(events, f)
    return events


def _waits(timeline: Timeline | None, where: dict[int, str], most: int = 8) -> list[str]:
    """Where the last replay's body waited, longest total first, and why."""
    if timeline is None:
        return []
    total: dict[tuple[str, str, int], list[float]] = {}
    for span in timeline.spans:
        if span.kind == "wait":
            total.setdefault((span.why, span.name, span.site), []).append(span.end - span.start)
    if not total:
        return []
    lines = ["  waits in the last replay:"]
    ranked = sorted(total.items(), key=lambda item: -sum(item[1]))
    for (why, name, site), times in ranked[:most]:
        at = where.get(site, f"site {site}")
        if _replay.WAITS_FOR_ALL in why:
            lines.append(f"    {why}: waited {len(times)}x, {sum(times) * 1e3:.1f} ms"
                         f" (the last, for {name}() at {at})")
            continue
        lines.append(f"    {why or 'the body'} needs the result of {name}() at "
                     f"{at}: waited {len(times)}x, {sum(times) * 1e3:.1f} ms")
    return lines


@overload
def jit(fn: classmethod[_S, _P, _R], /, *,
        executor: Executor | None = None) -> classmethod[_S, _P, _R]: ...
@overload
def jit(fn: Callable[_P, _R], /, *, executor: Executor | None = None) -> Jitted[_P, _R]: ...
@overload
def jit(fn: None = None, /, *,
        executor: Executor | None = None) -> Callable[[Callable[_P, _R]], Jitted[_P, _R]]: ...
def jit(fn: Any = None, /, *, executor: Executor | None = None) -> Any:
    """Run the independent calls in ``fn`` concurrently, without changing what it does.

    Usable as ``@jit``, ``@jit()``, ``@jit(executor=pool)`` or ``jit(fn, executor=pool)``.

    Args:
        fn: the function to speed up.
        executor: where deferred calls run (any ``concurrent.futures.Executor``);
            by default a shared thread pool sized for I/O-bound calls.  Cap its
            workers to respect an API's rate limit; use a process pool for
            CPU-bound callees.

    Returns:
        A function with the same signature and metadata that returns, raises
        and calls exactly what ``fn`` would; ``f.stats()``, ``f.explain()``
        and ``f.timeline()`` show what xcs decided and what overlapped.  To a
        type checker it is a ``Jitted`` with ``fn``'s parameters and return type.

    Raises:
        TypeError: ``fn`` is not callable, is a generator or coroutine
            function, or ``executor`` is not an Executor.
    """
    if executor is not None and not isinstance(executor, Executor):
        raise XcsTypeError("jit() executor must be a concurrent.futures.Executor, "
                           f"not {type(executor).__name__}: {executor!r}")
    if fn is None:
        return functools.partial(jit, executor=executor)
    return _jit(fn, executor)


def _jit(fn: Any, executor: Executor | None) -> Any:
    state = getattr(fn, "__xcs__", None)
    if isinstance(state, _Function):  # already jitted: jit the original again
        if state.executor is executor:
            return fn
        fn = state.fn
    if isinstance(fn, staticmethod):
        return _carrying(staticmethod(_jit(fn.__func__, executor)))
    if isinstance(fn, classmethod):
        return _carrying(classmethod(_jit(fn.__func__, executor)))
    if isinstance(fn, MethodType):  # a bound method forwards attribute reads to its function
        return MethodType(_jit(fn.__func__, executor), fn.__self__)
    if isinstance(fn, functools.partial):
        return _Partial(_jit(fn.func, executor), *fn.args, **fn.keywords)
    if isinstance(fn, FunctionType):
        name = fn.__qualname__
        for check, what in ((inspect.isasyncgenfunction, "async generator functions"),
                            (inspect.iscoroutinefunction, "coroutine functions"),
                            (inspect.isgeneratorfunction, "generator functions")):
            if check(fn):
                raise XcsTypeError(f"cannot jit {name!r}: {what} are not supported")
        return _Function(fn, executor).jitted
    if not callable(fn):
        raise XcsTypeError(f"cannot jit {fn!r}: expected a function, not {type(fn).__name__}")
    call = getattr(type(fn), "__call__", None)  # noqa: B004  (the class's, to jit it)
    if isinstance(call, FunctionType):  # a callable object: jit its __call__, bound to it
        return MethodType(_jit(call, executor), fn)
    return _plain(fn, "not a Python function: there is no bytecode to rewrite")


_METHODS = ("stats", "explain", "timeline")


def _carrying(descriptor: staticmethod[Any, Any] | classmethod[Any, Any, Any]) -> Any:
    """A staticmethod or classmethod that also has its function's stats/explain/timeline.

    Read through the class or an instance, the descriptor gives the jitted
    function (or a method bound to it), which has them anyway; this is for the
    descriptor object itself.
    """
    for name in _METHODS:
        setattr(descriptor, name, getattr(descriptor.__func__, name))
    return descriptor


class _Partial(functools.partial[Any]):
    """``jit(partial(f, ...))``: a ``functools.partial`` of ``jit(f)`` with its methods.

    The methods are on the class, not in the instance's ``__dict__``: a
    partial pickles and copies its ``__dict__``, and xcs's per-function state
    cannot be pickled.
    """

    __slots__ = ()

    def stats(self) -> Stats:
        """``f.stats()`` of the jitted function."""
        return self._jitted().stats()

    def explain(self, format: str = "text") -> str:
        """``f.explain(format)`` of the jitted function."""
        return self._jitted().explain(format)

    def timeline(self, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """``f.timeline(path)`` of the jitted function."""
        return self._jitted().timeline(path)

    def _jitted(self) -> Jitted[..., Any]:
        return cast("Jitted[..., Any]", self.func)

    def __getattr__(self, name: str) -> Any:
        """What ``functools.wraps`` gives a jitted function: ``__wrapped__`` (the plain
        partial), and the name and qualified name of the function it calls."""
        if name == "__wrapped__":
            return functools.partial(self._jitted().__wrapped__, *self.args, **self.keywords)
        if name in ("__name__", "__qualname__"):
            return getattr(self.func, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class _Fallback:
    """The views of a callable that runs plain from the start: nothing is ever recorded."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    def stats(self) -> Stats:
        """No argument signatures, and the reason."""
        return Stats(self.name, self.reason, ())

    def explain(self, format: str = "text") -> str:
        """The reason as text, or an empty call graph (as for a jitted function not yet called)."""
        _check_format(format)
        if format == "dot":
            return _explain.dot(self.name, [], {})
        return f"{self.name}: runs plain: {self.reason}"

    def timeline(self, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """An empty trace (as for a jitted function not yet called), also written to ``path``."""
        return _saved(_no_events(), path)


def _plain(fn: Any, reason: str) -> Any:
    """A thin wrapper for callables xcs cannot rewrite (builtins, C extensions)."""

    def plain(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    try:
        functools.update_wrapper(plain, fn)
    except (AttributeError, TypeError):
        plain.__wrapped__ = fn  # type: ignore[attr-defined]
    name = getattr(fn, "__qualname__", None) or repr(fn)
    views = _Fallback(name, reason)
    for method in _METHODS:
        setattr(plain, method, getattr(views, method))
    warnings.warn(XcsWarning(f"xcs runs {name!r} plain: {reason}"), stacklevel=_outside_xcs())
    return plain
