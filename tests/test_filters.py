"""An ``if`` that only filters results into a list the body builds (Mixture-of-Agents'
reference loop) runs as one continuation per item: the calls of the loop overlap,
the list gets what plain gives it, in plain's order, and whoever reads the list
(the body, a deferred call) sees it whole.
"""

from __future__ import annotations

import threading
import time
import traceback

import pytest

from xcs import jit

from .test_contract import outcome, replays, warm

N = 8
DOCS = [f"d{i}" for i in range(N)]


class Gate:
    """With ``open()``, every call waits until N calls run at once."""

    def __init__(self) -> None:
        self.barrier: threading.Barrier | None = None

    def wait(self) -> None:
        if self.barrier is not None:
            self.barrier.wait()
        else:  # slow enough that a loaded machine's trial still plans a replay
            time.sleep(0.01)


gate = Gate()


@pytest.fixture(autouse=True)
def closed_gate():
    gate.barrier = None
    yield
    gate.barrier = None


def propose(d):
    gate.wait()
    n = int(d[1:])
    time.sleep(0.001 * (N - n) if gate.barrier is None else 0)  # later items finish first
    return None if n % 3 == 0 else f"  answer {d}  "


def kept_if_not_none(docs):
    refs = []
    for d in docs:
        r = propose(d)
        if r is not None:
            refs.append(r)
    return refs, len(refs)


def kept_if_truthy_stripped(docs):
    refs = []
    for d in docs:
        r = propose(d)
        if r:
            refs.append(r.strip())
    return refs


def kept_by_a_comparison(docs):
    refs = []
    for d in docs:
        r = propose(d)
        if len(str(r)) > 4:  # str(None) is "None"
            refs.append(r.upper())
    return "|".join(refs)


def kept_unless_declined(docs):
    refs = []
    for d in docs:
        r = propose(d)
        if not r is None:  # noqa: E714  (as people write it)
            refs.append(r.strip())
    return refs


FILTERS = [kept_if_not_none, kept_if_truthy_stripped, kept_by_a_comparison,
           kept_unless_declined]


def _overlaps(body):
    """A replay of ``body`` over DOCS makes its N calls at once (a Barrier of N breaks
    if one waits for another) and returns what plain returns."""
    expected = body(DOCS)
    f = jit(body)
    warm(f, DOCS, sites=1)
    before = replays(f)
    gate.barrier = threading.Barrier(N, timeout=10)
    try:
        got = f(DOCS)
    finally:
        gate.barrier = None
    assert replays(f) == before + 1, f.explain()
    assert got == expected


@pytest.mark.parametrize("body", FILTERS, ids=lambda f: f.__name__)
def test_the_calls_of_a_filtering_loop_overlap(body):
    _overlaps(body)


def aggregate(q, refs):
    time.sleep(0.005)  # the filters would still be appending, if it did not wait
    return q + ":" + "|".join(refs)


def handed_to_a_deferred_call(docs):
    refs = []
    for d in docs:
        r = propose(d)
        if r is not None:
            refs.append(r.strip())
    brief = aggregate("brief", refs)  # deferred: it starts after the filters
    more = [propose(d) for d in docs]
    return brief, more


def appended_by_the_body_after(docs):
    refs = []
    for d in docs:
        r = propose(d)
        if r is not None:
            refs.append(r)
    refs.append("last")  # after every filter, as in plain
    return refs


@pytest.mark.parametrize("body", [handed_to_a_deferred_call, appended_by_the_body_after],
                         ids=lambda f: f.__name__)
def test_who_receives_the_list_sees_it_whole(body):
    expected = body(DOCS)
    f = jit(body)
    warm(f, DOCS, sites=1)
    for _ in range(3):
        assert f(DOCS) == expected
    assert replays(f) >= 3


class Reply:
    def __init__(self, d):
        self.d = d


def reply(d):
    time.sleep(0.003)
    return Reply(d)


def test_a_failing_test_raises_what_plain_raises_where_it_raises():
    def body(docs):
        refs = []
        for d in docs:
            r = reply(d)
            if r.d.index("5") >= 0:  # ValueError for every item but d5
                refs.append(r.d)
        return refs

    f = jit(body)
    warm(f, ["d5"] * 4, sites=1)
    before = replays(f)
    (_, exc), (_, expected) = outcome(f, ["d5", "d1", "d5"]), outcome(body, ["d5", "d1", "d5"])
    assert replays(f) == before + 1, f.explain()
    assert type(exc) is type(expected) is ValueError and str(exc) == str(expected)
    frames = traceback.extract_tb(exc.__traceback__)
    plain_frames = traceback.extract_tb(expected.__traceback__)
    assert [(fr.name, fr.lineno) for fr in frames[-2:]] == [
        (fr.name, fr.lineno) for fr in plain_frames[-2:]], (frames, plain_frames)


def test_explain_says_why_a_filter_runs_as_written():
    def into_the_callers_list(out, docs):
        for d in docs:
            r = propose(d)
            if r is not None:
                out.append(r)
        return out

    f = jit(into_the_callers_list)
    warm(f, [], DOCS)
    line = into_the_callers_list.__code__.co_firstlineno + 3
    assert (f"note: the if at line {line} runs as written: 'out' is not a list the "
            "function builds") in f.explain(), f.explain()


def test_the_trial_and_the_replays_call_the_filter_in_the_statements_place():
    f = jit(kept_if_not_none)
    assert f(DOCS) == kept_if_not_none(DOCS)  # the trial
    warm(f, DOCS, sites=1)
    assert f(DOCS) == kept_if_not_none(DOCS)
    line = kept_if_not_none.__code__.co_firstlineno + 4
    assert f"continue (when their inputs arrive): test_filters.py:{line}" in f.explain(), (
        f.explain())


def slow_value(d):
    n = int(d[1:])
    time.sleep(0.001 * (N - n))  # earlier items take longer
    return n * 100


class Judge:
    def accepts(self, r) -> bool:
        time.sleep(0.001 * (N - int(r[1:])))  # a slow method: an LLM judge
        return int(r[1:]) % 2 == 0


def filtered_by_a_slow_call(docs):
    refs = []
    for d in docs:
        if d != "d3":
            refs.append(slow_value(d))  # a call of its own: deferred, gathered in order
    return refs


def filtered_by_a_slow_method(docs):
    judge = Judge()
    refs = []
    for d in docs:
        r = d.strip()
        if judge.accepts(r):
            refs.append(r)
    rest = [slow_value(d) for d in docs]
    return refs, rest


@pytest.mark.parametrize("body", [filtered_by_a_slow_call, filtered_by_a_slow_method],
                         ids=lambda f: f.__name__)
def test_a_filter_that_makes_a_slow_call_keeps_plains_order(body):
    expected = body(DOCS)
    f = jit(body)
    warm(f, DOCS, sites=1)
    for _ in range(3):
        assert f(DOCS) == expected
    assert replays(f) >= 3, f.explain()


# -- a loop over a result that only filters into a list (ToT, multi-hop QA) ------------


def search(q):
    """A search tool: a list of passages, some shared between queries."""
    gate.wait()
    n = int(q[1:])
    time.sleep(0.001 * (N - n) if gate.barrier is None else 0)  # later queries finish first
    return [f"p{n}", f"p{n + 1}", "common"]


def passages_per_query(queries):
    context = []
    for q in queries:
        for passage in search(q):
            if passage not in context:
                context.append(passage)
    return context


def thoughts_per_state(states):
    candidates = []
    for state in states:
        for thought in search(state):
            candidates.append(state + ":" + thought)
    return candidates, len(candidates)


def read_by_a_comprehension(states):
    candidates = []
    for state in states:
        for thought in search(state):
            candidates.append(state + ":" + thought)
    return [candidates[i] for i in range(0, len(candidates), 2)]  # 3.11: a cell


@pytest.mark.parametrize("body", [passages_per_query, thoughts_per_state,
                                  read_by_a_comprehension], ids=lambda f: f.__name__)
def test_the_calls_of_a_loop_over_results_overlap(body):
    """``for x in search(q): ...`` waited for each result; the loop is a continuation now."""
    _overlaps(body)


seen_by_query: list[tuple[int, int]] = []


def write_query(hop, context, i):
    time.sleep(0.003)
    seen_by_query.append((hop, len(context)))  # what plain shows it: the earlier hops' passages
    return f"q{hop * 3 + i}"


def hops(n):
    context = []
    for hop in range(n):
        queries = []
        for i in range(3):  # (a comprehension reading context makes it a cell on 3.11)
            queries.append(write_query(hop, context, i))  # deferred: they receive context
        for q in queries:
            for passage in search(q):
                if passage not in context:
                    context.append(passage)
    return context


def test_calls_handed_the_list_see_it_as_plain_shows_it():
    """The queries of a hop receive the list the previous hop's loops fill: they start
    after those loops, and the loops of their hop run after them."""
    seen_by_query.clear()
    expected = hops(3)
    expected_seen = sorted(seen_by_query)
    f = jit(hops)
    warm(f, 3, sites=1)
    for _ in range(3):
        seen_by_query.clear()
        assert f(3) == expected
        assert sorted(seen_by_query) == expected_seen
    assert replays(f) >= 3, f.explain()
    line = hops.__code__.co_firstlineno + 7  # the loop over a search: a continuation
    assert f"continue (when their inputs arrive): test_filters.py:{line}" in f.explain(), (
        f.explain())


class Holder:
    def keep(self, items):
        self.items = items

    def count(self):
        return len(self.items)


def kept_by_a_call_of_the_body(queries):
    holder = Holder()
    context = []
    holder.keep(context)  # a fast call, made in the body: it may keep the list
    for q in queries:
        for passage in search(q):
            if passage not in context:
                context.append(passage)
    seen = holder.count()  # reads the list without the body touching it
    more = [propose(d) for d in queries]  # (overlap enough to replay)
    return seen, context, more


def test_a_list_a_call_of_the_body_received_is_filled_by_the_body():
    """Only calls a replay defers or continues may have seen the list: ``holder.keep``
    ran in the body and kept it, so the loops run in the body, in order."""
    expected = kept_by_a_call_of_the_body(DOCS)
    f = jit(kept_by_a_call_of_the_body)
    warm(f, DOCS, sites=1)
    for _ in range(3):
        assert f(DOCS) == expected
    assert replays(f) >= 3, f.explain()
    line = kept_by_a_call_of_the_body.__code__.co_firstlineno + 5
    # (Or, when the first call timed one of the loops slow -- a deferred search ran
    # meanwhile and the body waited for the GIL -- kept in the body for that.)
    assert (f"not deferred: test_filters.py:{line}: it changes an object others may see"
            in f.explain() or f"not deferred: test_filters.py:{line}: it fills a list the "
            "function builds, and what it calls is slow: the body makes it, in order"
            in f.explain()), f.explain()


def nothing(q):
    time.sleep(0.003)
    return None if q == "d5" else [q]


def iterates_what_may_be_none(queries):
    out = []
    for q in queries:
        for x in nothing(q):  # TypeError for d5, as in plain
            out.append(x.upper())
    return out


def test_a_loop_over_a_result_that_cannot_be_iterated_raises_what_plain_raises():
    f = jit(iterates_what_may_be_none)
    warm(f, DOCS[:4], sites=1)
    before = replays(f)
    (_, exc), (_, expected) = (outcome(f, DOCS), outcome(iterates_what_may_be_none, DOCS))
    assert replays(f) == before + 1, f.explain()
    assert type(exc) is type(expected) is TypeError and str(exc) == str(expected)
    frames = traceback.extract_tb(exc.__traceback__)
    plain_frames = traceback.extract_tb(expected.__traceback__)
    assert [(fr.name, fr.lineno) for fr in frames[-1:]] == [
        (fr.name, fr.lineno) for fr in plain_frames[-1:]], (frames, plain_frames)


log: list[str] = []


def lazily(q):
    time.sleep(0.003)

    def items():
        for k in range(2):
            log.append(f"{q}.{k}")  # runs while the loop iterates it
            yield f"{q}{k}"

    return items()


def iterates_a_generator(queries):
    out = []
    for q in queries:
        for x in lazily(q):
            out.append(x)
        log.append(f"after {q}")
    return out


def test_a_loop_over_a_generator_runs_in_the_body():
    """Iterating a generator runs its code: that stays where plain runs it."""
    log.clear()
    expected = (iterates_a_generator(DOCS[:4]), list(log))
    f = jit(iterates_a_generator)
    for _ in range(4):
        log.clear()
        assert (f(DOCS[:4]), log) == expected
    assert "its loop iterates a generator" in f.explain(), f.explain()


def test_explain_says_why_a_loop_runs_as_written():
    def uses_the_variable_after(queries):
        out = []
        for q in queries:
            for x in search(q):
                out.append(x)
            last = x
        return out, last

    f = jit(uses_the_variable_after)
    warm(f, DOCS[:3])
    line = uses_the_variable_after.__code__.co_firstlineno + 3
    assert (f"note: the loop at line {line} runs as written: the function uses 'x' "
            "outside the loop too") in f.explain(), f.explain()


def reuses_the_name_in_a_generator_expression(queries):
    out = []
    for q in queries:
        for h in search(q):
            out.append(h)
    return "|".join(h.upper() for h in out)  # another h: the generator expression's own


def reads_the_variable_in_a_comprehension(queries):
    out = []
    for q in queries:
        for h in search(q):
            out.append(h)
    return out, [h + "!" for _ in range(1)]  # the loop's h: plain leaves the last item


def test_a_loop_variable_is_told_from_a_nested_scopes_own():
    for body, outlined in [(reuses_the_name_in_a_generator_expression, True),
                           (reads_the_variable_in_a_comprehension, False)]:
        expected = body(DOCS[:3])
        f = jit(body)
        warm(f, DOCS[:3])
        assert f(DOCS[:3]) == expected
        line = body.__code__.co_firstlineno + 3
        note = f"note: the loop at line {line} runs as written"
        assert (note not in f.explain()) is outlined, f.explain()


class Client:
    def ask(self, d):
        gate.wait()
        return f"<{d}>"


def asks_per_item(docs):
    client = Client()
    out = []
    for d in docs:
        out.append(client.ask(d).strip("<>"))  # the map shape: each call deferred
    return out


def test_a_loop_of_method_calls_stays_the_map_shape():
    """Only methods of the loop's items may run in an outlined loop: the calls of
    ``client.ask(d)`` are deferred one by one, as before, and overlap."""
    _overlaps(asks_per_item)


# -- found by an adversarial run ---------------------------------------------------------


def returns_what_it_got(x):
    time.sleep(0.004)  # slow: deferred, and it returns the list it was handed
    return x


def read_through_a_result(queries):
    context = []
    same = returns_what_it_got(context)
    for q in queries:
        for passage in search(q):
            context.append(passage)
    holder = Holder()
    holder.keep(same)  # a continuation on the result: it must see the list filled
    return len(same), holder.count()


def extend(t):
    time.sleep(0.003)
    return [t + "a", t + "b"]


def grows_from_its_own_variable(t, n):
    out = []
    for _ in range(n):
        for t in extend(t):  # noqa: B020 (reads the t the previous round left, its last item)
            out.append(t)
    return out


CONFIG = {"suffix": "1"}


def bump():
    CONFIG["suffix"] = "2"  # a fast call of the body changes a global the filter reads


def reads_a_global(queries):
    out = []
    for q in queries:
        for passage in search(q):
            out.append(passage + CONFIG["suffix"])
    bump()
    return out


@pytest.mark.parametrize(("body", "args"), [
    (read_through_a_result, (DOCS,)), (grows_from_its_own_variable, ("d1", 3)),
    (reads_a_global, (DOCS,))], ids=lambda x: getattr(x, "__name__", ""))
def test_what_the_body_reads_is_what_plain_reads(body, args):
    """A list read through a deferred call's result waits for the filters; a loop whose
    iterable reads its own variable, or whose value reads a global a later call may
    change, runs as written."""
    CONFIG["suffix"] = "1"
    expected = body(*args)
    f = jit(body)
    for _ in range(4):
        CONFIG["suffix"] = "1"
        assert f(*args) == expected, f.explain()
