"""Everything xcs keeps about one jitted function (``Function``), and each call's
dispatch: the argument signature's entry, and the body it runs.

A call's prologue hands its bound parameters to ``dispatch``, which answers
which copy of the body runs (``_Layout``): plain, the first call's (a trial
that may defer what this process knows to be slow), or a replay of the plan.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import warnings
from collections import OrderedDict
from concurrent.futures import Executor
from types import CodeType, FunctionType
from typing import TYPE_CHECKING, Any

from xcs import _compat, _introspect, _pipeline, _switches
from xcs._call_hooks import Gating, Local
from xcs._errors import RewriteError, XcsWarning
from xcs._executors import Throttle, default_executor, remote
from xcs._frames import outside_xcs
from xcs._hooks import Hooks
from xcs._introspect import Entry, Stats, Status
from xcs._replay import Invocation
from xcs._signature import Signature
from xcs._trace import Recorder

if TYPE_CHECKING:
    from xcs._rewrite import Program, Variant


__all__ = ["MAX_REPLAY_BODIES", "MAX_SIGNATURES"]

MAX_SIGNATURES = 64  # cached argument signatures per function (oldest dropped first)
MAX_REPLAY_BODIES = 8  # distinct replay copies of one function's body
log = logging.getLogger("xcs")
NEW, PLAIN, OPTIMIZED = Status.NEW, Status.PLAIN, Status.OPTIMIZED  # read by every call


class _Layout:
    """Which copy of the body each variant is, in one version of the function's code."""

    __slots__ = ("index",)

    def __init__(self, variants: list[Variant]) -> None:
        self.index = {v: k for k, v in enumerate(variants, start=1)}


class Function:
    """Everything xcs keeps about one jitted function."""

    def __init__(self, fn: FunctionType, executor: Executor | None) -> None:
        self.fn = fn
        self.name = fn.__qualname__
        self.prefix = self.name + ".<locals>."  # qualnames of the functions the body defines
        self.executor = executor
        self.throttle = executor if isinstance(executor, Throttle) else None
        # site -> how many of its last calls in the body were fast: from FAST_TO_UNGATE
        # (``_call_hooks``) on, a throttle no longer gates it (a slow call starts again)
        self.fast_sites: dict[int, int] = {}
        self.tls = Local()
        self.lock = threading.RLock()
        self.entries: OrderedDict[Any, Entry] = OrderedDict()
        self.variants: list[Variant] = []
        self.reason: str | None = None
        self.disabled = False  # set after an internal error: every call runs plain
        self.tracer_ok = False  # replay under a tracer too (xcs.verify's own copy)
        # The code of the frames its deferred calls run under, by id: trampolines of one
        # call site in two copies of a function are equal code objects.
        self.trampolines: dict[int, CodeType] = {}
        self.warned: set[str] = set()
        code = fn.__code__
        self.signature = Signature.of(code)
        self.varargs = self.signature.varargs  # read by every call (``dispatch``)
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
            self.hooks = Hooks(self)
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
    def dispatch(self, layout: _Layout, params: tuple[Any, ...]) -> int:
        """Choose the body for this call: 0 plain, else the trace or a replay copy."""
        if self.disabled:
            return 0
        try:
            key = self.signature.key(params) if self.varargs else tuple(map(type, params))
            entry = self.entries.get(key)
        except Exception:
            return self._plain(layout)
        try:
            if entry is None:
                entry = self._new_entry(key, params)
            entry.calls += 1
            status = entry.status
            if status is PLAIN:
                return self._plain(layout)
            if _compat.tracing() and not self.tracer_ok:  # a debugger or coverage tool
                # must see the plain function
                entry.traced += 1
                return self._plain(layout)
            if status is OPTIMIZED:
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
            if status is NEW:
                with self.lock:
                    if entry.status is not NEW:
                        return 0
                    entry.status = Status.TRACING
                prev = self.tls.cur
                k = layout.index[self.variants[0]]
                if self.first is None:
                    rec = Recorder(self.prefix)
                    rec.context = (entry, prev, len(self.tls.gated))
                    self.tls.cur = rec
                    return k
                inv = Invocation(self.executor or default_executor(),
                                 lambda inv, raised: self.end_trial(inv.rec, raised, inv))
                inv.rec = rec = Recorder(self.prefix, inv)
                self.switches.reset()  # what an earlier trial muted, this one sees
                if self.switches.allowed:
                    rec.switches = self.switches
                rec.context = (entry, prev, len(self.tls.gated))
                self.tls.cur = inv
                return k
            return self._plain(layout)  # another thread is tracing this signature
        except Exception as exc:
            self._internal(exc)
            return 0

    def _plain(self, layout: _Layout) -> int:
        """The plain body; on a throttle, the trace body with hooks that only gate its
        calls (``Gating``): the throttle's limits hold when a call runs plain too."""
        if self.throttle is None:
            return 0
        tls = self.tls
        tls.cur = Gating(tls.cur, len(tls.gated))
        return layout.index[self.variants[0]]

    def end_gating(self, gating: Gating) -> None:
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

    def _new_entry(self, key: Any, params: tuple[Any, ...]) -> Entry:
        with self.lock:
            entry = self.entries.get(key)
            if entry is None:
                entry = Entry(self.signature.text(params))
                self.entries[key] = entry
                while len(self.entries) > MAX_SIGNATURES:
                    self.entries.popitem(last=False)
            return entry

    def end_trial(self, rec: Recorder, raised: bool, inv: Invocation | None = None) -> None:
        """The trial (or first call, which made ``inv``'s calls) returned or raised."""
        entry, prev, depth = rec.context
        self.tls.cur = prev
        self._release_gated(depth)
        if inv is not None:
            entry.first = inv.timeline()
            deferred = [t.site for t in inv.tasks if t.site >= 0]
            entry.first_deferred = len(deferred)
            entry.first_sites = tuple(sorted(set(deferred)))
        _pipeline.decide(self, entry, rec, raised)

    def _replayed(self, entry: Entry, inv: Invocation, prev: Any, start: float,
                  raised: bool) -> None:
        self.tls.cur = prev
        if inv.refused is None:  # a call the executor refused ran plain: not a replay
            entry.replays += 1
            entry.replay_time += time.perf_counter() - start
            entry.timeline = inv.draw_timeline()
        else:
            entry.status = Status.PLAIN
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
                      stacklevel=outside_xcs())

    # -- introspection (``_introspect``) -------------------------------------------
    def stats(self) -> Stats:
        """The argument signatures seen so far and what was decided for each."""
        return _introspect.stats(self)

    def timeline(self, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """The last replay (else the last trial) as Chrome/Perfetto trace-event JSON.

        Args:
            path: also write the JSON there (open it in ui.perfetto.dev or chrome://tracing).
        """
        return _introspect.timeline(self, path)

    def explain(self, format: str = "text") -> str:
        """Per signature: the recorded calls, edges, independent sets, critical path and plan.

        Args:
            format: ``"text"`` (default) or ``"dot"`` (a Graphviz digraph of the calls).

        Raises:
            ValueError: for another format.
        """
        return _introspect.explain(self, format)
