"""From a trial to a decision: the trace, its graph, the plan, the replay body.

The front (``_function``) calls ``decide`` when a trial (or a first call) returns or
raises: the trace becomes a dependency graph (``_graph``), the graph a plan
(``_analyze``), and an optimized plan a replay body installed in the function's
code (``Variant``), or the signature runs plain, with the reason, or is tried
again while the evidence is too thin.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Executor
from typing import TYPE_CHECKING

from xcs import _compat
from xcs._analyze import ExecutorFacts, Plan
from xcs._executors import DEFAULT_WORKERS, Throttle, default_executor, remote
from xcs._graph import Graph
from xcs._introspect import Status

if TYPE_CHECKING:
    from xcs._function import Function
    from xcs._introspect import Entry
    from xcs._trace import Recorder

__all__ = ["MAX_TRIALS", "decide", "facts"]

MAX_TRIALS = 3  # trials per signature while the evidence is too thin to decide
log = logging.getLogger("xcs")


def facts(executor: Executor) -> ExecutorFacts:
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


def decide(state: Function, entry: Entry, rec: Recorder, raised: bool) -> None:
    """What ``entry``'s signature runs from now on, from the trial ``rec`` recorded."""
    try:
        trace = rec.finish(raised)
        if rec.failure:
            raise RuntimeError(rec.failure)
        assert state.program is not None
        graph = Graph.from_trace(trace, state.program.fed_by)
        plan = Plan.from_graph(graph, state.program.sites,
                               facts(state.executor or default_executor()),
                               state.program.accesses)
        if plan.optimized and state.program.frame_reads:
            plan = Plan.plain("the body reads its own frame (locals, vars, eval, exec or dir)",
                              time=graph.duration)
        entry.trials += 1
        entry.graph = graph
        entry.plan = plan
        entry.timeline = None  # the trial's is drawn from the graph when asked for
        entry.trial_thread = threading.current_thread().name
        entry.trial_started = rec.wall0
        log.debug("%s%s: trial of %d calls in %.1f ms: %r", state.name, entry.text,
                  len(graph.nodes), graph.duration * 1e3, plan)
        if plan.optimized:
            from xcs._rewrite import Variant

            variant = Variant("replay", plan.deferred | plan.continued | plan.drains,
                              plan.lazy, plan.continued, plan.drains, plan.settles)
            if state._install(variant):
                entry.variant = variant
                entry.status = Status.OPTIMIZED
                entry.reason = None
                log.info("%s%s: optimized, deferring %d call sites (estimated %.2fx)",
                         state.name, entry.text, len(plan.deferred), plan.speedup)
                return
            plan = Plan.plain("too many distinct plans for one function",
                              time=graph.duration)
            entry.plan = plan
        entry.reason = plan.reason
        if plan.tentative and entry.trials < MAX_TRIALS:
            entry.status = Status.NEW
        else:
            entry.status = Status.PLAIN
    except Exception as exc:
        entry.status = Status.PLAIN
        entry.reason = f"internal error while planning: {type(exc).__name__}: {exc}"
        state._warn(entry.reason)
