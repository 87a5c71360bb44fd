"""Analyze stage: which sites to defer and the estimated speedup."""

from __future__ import annotations

from xcs._analyze import ExecutorFacts, Plan, replay_time
from xcs._graph import Graph
from xcs._rewrite import Site
from xcs._trace import Call, Trace

THREADS = ExecutorFacts(workers=512, threads=True, gil=True)


def _site(i, **flags):
    return Site(i, "f", "f.py", 10 + i, flags.get("nested", False), flags.get("protected", False),
                flags.get("append", False), flags.get("in_place", False))


def _graph(spec, duration=None, cpu=0.0):
    """spec: list of (site, start, duration, deps, first_use)."""
    calls = tuple(Call(i, site, f"c{i}", start, start + dur, cpu * dur, tuple(deps), use, None,
                       False, False, False)
                  for i, (site, start, dur, deps, use) in enumerate(spec))
    end = duration if duration is not None else max(c.end for c in calls)
    return Graph.from_trace(Trace(calls, end, False, False))


def test_independent_calls_are_deferred_with_an_honest_estimate():
    """Eight independent 50 ms calls whose results are used at the end: about 8x."""
    graph = _graph([(0, 0.05 * i, 0.05, (), 0.4) for i in range(8)], duration=0.4)
    plan = Plan.from_graph(graph, [_site(0)], THREADS)
    assert plan.optimized and plan.deferred == {0}
    assert 6 < plan.speedup < 8.1


def test_a_chain_is_not_worth_deferring():
    """Each call needs the previous result: no overlap, plan is plain."""
    spec = [(0, 0.0, 0.05, (), None), (1, 0.05, 0.05, (0,), None), (2, 0.1, 0.05, (1,), 0.15)]
    plan = Plan.from_graph(_graph(spec), [_site(0), _site(1), _site(2)], THREADS)
    assert not plan.optimized and "below 1.2x" in plan.reason


def test_result_used_at_once_is_not_deferred():
    """A call whose result the body needs immediately gains nothing from deferral."""
    spec = [(0, 0.0, 0.05, (), 0.0501), (0, 0.0502, 0.05, (), 0.1003)]
    plan = Plan.from_graph(_graph(spec), [_site(0)], THREADS)
    assert not plan.optimized


def test_cpu_bound_calls_stay_in_the_thread_on_a_gil_build():
    """Pure-Python CPU work does not overlap in threads: not deferred, and the plan says why."""
    graph = _graph([(0, 0.05 * i, 0.05, (), 0.4) for i in range(8)], duration=0.4, cpu=1.0)
    plan = Plan.from_graph(graph, [_site(0)], THREADS)
    assert not plan.optimized and "CPU-bound" in plan.notes[0]
    processes = ExecutorFacts(workers=8, threads=False, gil=True)
    assert Plan.from_graph(graph, [_site(0)], processes).optimized


def test_one_collection_during_one_call_does_not_make_a_site_cpu_bound():
    """A full garbage collection can take hundreds of ms of CPU inside one call of an I/O
    callee (seen in CI: one call of a 3 ms model took 0.5 s): most calls decide, not
    their sum."""
    spec = [(0.0, 0.2, 0.15)] + [(0.2 + 0.05 * i, 0.05, 0.0) for i in range(7)]
    trace = Trace(tuple(Call(i, 0, f"c{i}", start, start + dur, cpu, (), 0.55, None,
                             False, False, False)
                        for i, (start, dur, cpu) in enumerate(spec)), 0.55, False, False)
    plan = Plan.from_graph(Graph.from_trace(trace), [_site(0)], THREADS)
    assert 0 not in plan.notes, plan.notes
    assert plan.optimized and plan.deferred == {0}


def test_protected_and_nested_sites_are_never_deferred():
    """Sites inside try/with or nested functions keep their plain behaviour."""
    graph = _graph([(0, 0.05 * i, 0.05, (), 0.4) for i in range(4)]
                   + [(1, 0.2 + 0.05 * i, 0.05, (), 0.4) for i in range(4)], duration=0.4)
    plan = Plan.from_graph(graph, [_site(0, protected=True), _site(1, nested=True)], THREADS)
    assert not plan.optimized
    assert "try/except/with" in plan.notes[0] and "nested" in plan.notes[1]


def test_too_little_evidence_is_tentative():
    """A trial with fewer than two slow calls decides nothing for good."""
    plan = Plan.from_graph(_graph([(0, 0.0, 0.05, (), None)]), [_site(0)], THREADS)
    assert plan.tentative and not plan.optimized


def test_few_workers_limit_the_estimate():
    """With two workers, eight independent calls take four rounds."""
    graph = _graph([(0, 0.05 * i, 0.05, (), 0.4) for i in range(8)], duration=0.4)
    two = ExecutorFacts(workers=2, threads=True, gil=True)
    assert 0.19 < replay_time(graph, {0}, two) < 0.22
