"""Graph stage: nodes, edges, independent sets and the critical path."""

from __future__ import annotations

from xcs._graph import Graph
from xcs._trace import Call, Trace


def _call(i, deps=(), start=0.0, dur=1.0, parent=None, site=0):
    return Call(i, site, f"f{i}", start, start + dur, 0.0, tuple(deps), None, parent,
                False, False, False)


def test_levels_group_independent_calls():
    """Calls with no path between them share a level."""
    trace = Trace((_call(0), _call(1, start=1), _call(2, (0, 1), start=2)), 3.0, False, False)
    graph = Graph.from_trace(trace)
    assert graph.levels() == [[0, 1], [2]]
    assert graph.edges() == [(0, 2), (1, 2)]


def test_critical_path_is_the_longest_chain_by_duration():
    """The critical path follows the dependencies with the largest total time."""
    calls = (_call(0, dur=1), _call(1, dur=5), _call(2, (0,), dur=1), _call(3, (1, 2), dur=1))
    graph = Graph.from_trace(Trace(calls, 8.0, False, False))
    length, path = graph.critical_path()
    assert path == [1, 3] and length == 6


def test_nested_calls_fold_into_their_parent():
    """A call made inside another is not a node; its results count as the parent's."""
    calls = (_call(0), _call(1, parent=0), _call(2, (1,)))
    graph = Graph.from_trace(Trace(calls, 3.0, False, False))
    assert [n.call for n in graph.nodes] == [0, 2]
    assert graph.nodes[1].deps == (0,)


def test_as_text_is_stable():
    """The text form lists calls, edges, levels and the critical path."""
    calls = (_call(0, dur=0.01), _call(1, dur=0.01), _call(2, (0, 1), dur=0.02, start=0.01))
    text = Graph.from_trace(Trace(calls, 0.04, False, False)).as_text({0: "a.py:1"})
    assert text == (
        "calls (3, trial 40.0 ms):\n"
        "  #0 a.py:1 f0() 10.0 ms\n"
        "  #1 a.py:1 f1() 10.0 ms\n"
        "  #2 a.py:1 f2() 20.0 ms <- #0, #1\n"
        "edges: #0->#2, #1->#2\n"
        "independent sets:\n"
        "  level 0: #0 #1\n"
        "  level 1: #2\n"
        "critical path: #0 -> #2 (30.0 ms)\n"
        "floors: critical path 30.0 ms, CPU 0.0 ms (threads under the GIL run the CPU time"
        " on one core)")


def _shared(call):
    """``call`` returned an object whose identity names no call (``None``, a small int)."""
    return call._replace(shared_result=True)


def test_a_shared_result_reaches_the_calls_its_site_feeds():
    """``a = m(x)`` returned ``2``: identity links nothing, so the code's data flow
    (``fed_by``) links it to the call of the site its result flows to."""
    calls = (_shared(_call(0, site=0)), _call(1, start=1, site=1), _call(2, start=2, site=2))
    graph = Graph.from_trace(Trace(calls, 3.0, False, False),
                             lambda: {1: frozenset({0}), 2: frozenset()})
    assert graph.edges() == [(0, 1)]


def test_the_code_is_read_only_once_a_result_was_shared():
    def never():
        raise AssertionError("fed_by asked for a trace whose identities say everything")

    calls = (_call(0, site=0), _call(1, (0,), start=1, site=1))
    assert Graph.from_trace(Trace(calls, 2.0, False, False), never).edges() == [(0, 1)]


def test_a_later_call_of_the_site_with_its_own_result_ends_the_link():
    """Site 0 returned ``None`` once, then an object of its own: the call of site 1 after
    both was fed by the latest, whose identity already says whether it reached it."""
    calls = (_shared(_call(0, site=0)), _call(1, start=1, site=0), _call(2, start=2, site=1))
    graph = Graph.from_trace(Trace(calls, 3.0, False, False), lambda: {1: frozenset({0})})
    assert graph.edges() == []
