"""End to end: @jit makes independent calls overlap and changes nothing else."""

from __future__ import annotations

import copy
import functools
import inspect
import itertools
import json
import pickle
import threading
import time
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor

import pytest

import xcs
from xcs import XcsWarning, jit
from xcs._tasks import Pending

from .conftest import Model


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def replays(f) -> int:
    """Replays that ran, over all signatures of ``f``."""
    return sum(s.replays for s in f.stats().signatures)


def assert_replayed(*fs) -> None:
    """Each of ``fs`` really replayed (else the comparison with plain proves little)."""
    for f in fs:
        assert replays(f) >= 1, f.explain()


# -- the seed's first promise: parallel code runs in parallel -------------------------


def test_independent_calls_overlap(model):
    """Calls with no data between them run at the same time from the second call on."""

    @jit
    def summaries(m, docs):
        return [m(f"summarize {d}") for d in docs]

    docs = [f"doc{i}" for i in range(8)]
    first = summaries(model, docs)
    model.expect_overlap(8)  # each call now finishes only if all 8 run together
    assert summaries(model, docs) == first
    assert summaries.stats().optimized == 1


def test_sixty_four_slow_calls_overlap():
    """The default pool is wide enough for I/O-bound work: 64 calls at once."""
    m = Model(latency=0.01)

    @jit
    def fan_out(m, n):
        return [m(i) for i in range(n)]

    expected = fan_out(m, 64)
    m.expect_overlap(64)
    assert fan_out(m, 64) == expected
    assert_replayed(fan_out)


def test_sixteen_calls_much_faster_than_plain():
    """16 independent 50 ms calls: far faster than plain from the second call on."""
    m = Model(latency=0.05)

    @jit
    def ensemble(m, q):
        out = []
        for i in range(16):
            out.append(m(q, i))
        return out

    expected, plain = timed(ensemble.__wrapped__, m, "q")
    ensemble(m, "q")
    got, fast = timed(ensemble, m, "q")
    assert got == expected
    assert fast < plain / 4, (plain, fast)  # about 16x in practice; see docs/benchmarks.md


def test_loop_of_three_calls_is_at_least_30_percent_faster():
    """The seed's loop: a, b, c per iteration overlap, and results are unchanged."""
    m = Model(latency=0.03)

    @jit
    def loop(m, n):
        results = []
        for i in range(n):
            a = m(i)
            b = m(i + 1)
            c = m(i + 2)
            results.append(a + b + c)
        return results

    expected, plain = timed(loop.__wrapped__, m, 4)
    loop(m, 4)
    got, fast = timed(loop, m, 4)
    assert got == expected
    assert fast <= 0.7 * plain, (plain, fast)


def test_drafts_run_at_once_and_the_judge_reads_them_all():
    """Three independent drafts run at the same time; the judge then reads all three."""
    m, judge = Model(latency=0.02, name="m"), Model(latency=0.02, name="judge")

    @jit
    def answer(m, judge, q):
        drafts = [m("draft", q, k) for k in range(3)]
        return judge("judge", "\n".join(drafts))

    expected = answer.__wrapped__(Model(0, "m"), Model(0, "judge"), "q")
    assert answer(m, judge, "q") == expected  # the trial
    m.expect_overlap(3)  # each draft now finishes only if all three run at once
    judge.calls.clear()
    assert answer(m, judge, "q") == expected
    assert judge.calls == [("judge", "m(draft, q, 0)\nm(draft, q, 1)\nm(draft, q, 2)")]
    assert_replayed(answer)


def test_dependent_chain_stays_plain_and_is_not_slower():
    """A chain where each call needs the last one's result gains nothing: plan is plain."""
    m = Model(latency=0.02)

    @jit
    def chain(m, x):
        a = m(x)
        b = m(a)
        return m(b)

    expected, plain = timed(chain.__wrapped__, m, "x")
    chain(m, "x")
    got, again = timed(chain, m, "x")
    assert got == expected
    stats = chain.stats()
    assert stats.optimized == 0
    assert "below" in stats.signatures[0].reason
    assert again < plain * 1.5 + 0.01


# -- the seed's second promise: optimization never changes behaviour -------------------


def test_branch_on_argument_values_follows_this_call():
    """The trial's branch is not replayed: each call takes its own branch."""
    m = Model(latency=0.005)

    @jit
    def route(m, mode, xs):
        if mode == "short":
            return [m("short", x) for x in xs]
        return [m("long", x) for x in xs] + [m("extra")]

    plain = route.__wrapped__
    for mode in ["short", "long", "short", "long", "long"]:
        assert route(m, mode, [1, 2, 3]) == plain(m, mode, [1, 2, 3])
    assert replays(route) == 4, route.explain()  # every call after the trial


def test_branch_on_call_results_and_outside_state():
    """Branches on results and on globals read this call's values."""
    state = {"threshold": 2}
    m = Model(latency=0.005)

    @jit
    def decide(m, xs):
        answers = [m(x) for x in xs]  # independent calls, deferred; their lengths read after
        scores = [len(a) for a in answers]
        picked = [s for s in scores if s > state["threshold"]]
        if picked and picked[0] % 2:
            return m("odd", picked)
        return m("even", picked)

    plain = decide.__wrapped__
    for threshold in [2, 5, 0, 100]:
        state["threshold"] = threshold
        assert decide(m, ["a", "bbb", "cc"]) == plain(m, ["a", "bbb", "cc"])
    assert replays(decide) == 3, decide.explain()  # every call after the trial


def test_nondeterministic_chain_gets_this_calls_fresh_values():
    """A replayed chain over a non-deterministic callee never sees the trial's values."""
    counters = {"s": itertools.count(), "t": itertools.count()}  # one per chain

    def flaky(x):
        time.sleep(0.003)
        return f"{x}-{next(counters[x[0]])}"

    @jit
    def chains(x, y):
        # Two 5-call chains that do not depend on each other, so that the plan defers
        # them (one chain alone gains nothing from deferring and runs plain).
        a = flaky(x)
        b = flaky(y)
        a = flaky(a)
        b = flaky(b)
        a = flaky(a)
        b = flaky(b)
        a = flaky(a)
        b = flaky(b)
        a = flaky(a)
        b = flaky(b)
        return a, b

    seen = [chains("s", "t") for _ in range(4)]
    assert replays(chains) == 3, chains.explain()
    for result in seen:
        for chain in result:
            numbers = [int(part) for part in chain.split("-")[1:]]
            assert numbers == list(range(numbers[0], numbers[0] + 5))  # one fresh run each
    assert len(set(seen)) == 4


def test_same_calls_with_same_arguments_each_once(model):
    """The multiset of calls is the plain function's, on the trial and on replays."""

    @jit
    def work(m, xs):
        firsts = [m("a", x) for x in xs]
        seconds = [m("b", y) for y in firsts]
        return m("c", *seconds)

    plain_model = Model()
    expected = work.__wrapped__(plain_model, [1, 2, 3])
    for _ in range(3):
        model.calls.clear()
        assert work(model, [1, 2, 3]) == expected
        assert model.sorted_calls() == plain_model.sorted_calls()
    assert replays(work) == 2, work.explain()  # the calls after the trial


def test_keyword_only_defaults_are_kept_on_later_calls(model):
    """Defaults (positional and keyword-only) apply on every call, as in plain Python."""

    @jit
    def f(m, x, y=10, *, z=20, **extra):
        return [m(x, y), m(z, sorted(extra.items()))]

    assert f(model, 1) == ["m(1, 10)", "m(20, [])"]
    assert f(model, 1) == ["m(1, 10)", "m(20, [])"]
    assert_replayed(f)
    assert f(model, 1, 2, z=3, w=4) == ["m(1, 2)", "m(3, [('w', 4)])"]
    assert f(model, 1, z=5) == ["m(1, 10)", "m(5, [])"]
    assert replays(f) == 2, f.explain()  # f(model, 1) and f(model, 1, z=5): one signature


def test_dict_returning_calls(model):
    """A call that returns a dict (or a tuple) is used normally by the body."""

    def fetch(k):
        time.sleep(0.01)
        return {"key": k, "value": k * 2}

    @jit
    def gather(keys):
        rows = [fetch(k) for k in keys]
        return {r["key"]: r["value"] for r in rows}

    for _ in range(3):
        assert gather([1, 2, 3]) == {1: 2, 2: 4, 3: 6}
    assert replays(gather) == 2, gather.explain()


def test_placeholders_never_escape(model):
    """Values seen by the body, stored outside or returned are never placeholders."""
    sink = {}

    class Box:
        pass

    box = Box()

    @jit
    def leak(m, xs):
        results = [m(x) for x in xs]
        first = m("first")
        sink["first"] = first
        box.value = results
        checks = (first is None, type(first), isinstance(first, str), "".join([first]))
        return results, first, checks, (m("tuple"), m("tuple2"))

    for _ in range(3):
        results, first, checks, pair = leak(model, [1, 2])
        assert all(type(r) is str for r in results)
        assert type(first) is str and type(sink["first"]) is str
        assert all(type(v) is str for v in box.value)
        assert checks == (False, str, True, first)
        assert all(type(v) is str for v in pair)
        assert not any(isinstance(v, Pending) for v in [*results, first, *pair])


def test_star_and_keyword_calls(model):
    """Calls with *args, **kwargs and keywords are deferred with their exact arguments."""

    @jit
    def star(m, args, kwargs):
        a = m(*args)
        b = m(*args, **kwargs)
        c = m(1, key="v", **kwargs)
        return [a, b, c]

    plain = star.__wrapped__(Model(0), (1, 2), {"k": 3})
    for _ in range(3):
        assert star(model, (1, 2), {"k": 3}) == plain


# -- exceptions -----------------------------------------------------------------------


def test_call_inside_the_functions_own_try_behaves_as_plain(model):
    """An exception the body catches itself is caught exactly as without jit."""
    model.fail_on["bad"] = ValueError("nope")

    @jit
    def safe(m, xs):
        out = []
        for x in xs:
            try:
                out.append(m(x))
            except ValueError as exc:
                out.append(f"caught {exc}")
        return out

    plain = safe.__wrapped__
    for _ in range(3):
        assert safe(model, ["a", "bad", "c"]) == plain(model, ["a", "bad", "c"])


def test_deferred_failure_is_not_caught_by_a_later_try(model):
    """A deferred call that fails outside any try is not caught by a try that follows."""
    model.fail_on["bad"] = ValueError("nope")

    @jit
    def f(m, x):
        a = m(x)
        b = m("other")
        try:
            c = a + b  # plain raised before reaching this try
        except ValueError:
            c = "swallowed"
        return c

    assert f(model, "ok") == "m(ok)m(other)"
    assert f(model, "ok") == "m(ok)m(other)"
    with pytest.raises(ValueError, match="nope"):
        f(model, "bad")


# -- what can be decorated, and metadata ----------------------------------------------------


def test_metadata_signature_and_wrapped_are_kept():
    """functools.wraps metadata, __wrapped__ and inspect.signature are the function's."""

    def original(a: int, b: str = "x", *args: int, c: float = 1.0, **kw: str) -> list:
        """Docstring."""
        return [a, b, args, c, kw]

    jitted = jit(original)
    assert jitted.__wrapped__ is original
    assert jitted.__name__ == "original" and jitted.__doc__ == "Docstring."
    assert jitted.__qualname__ == original.__qualname__
    assert inspect.signature(jitted) == inspect.signature(original)
    assert jitted(1, "y", 2, 3, c=4.0, d="e") == original(1, "y", 2, 3, c=4.0, d="e")


# -- the seed's third promise: any failure falls back ---------------------------------------


def test_unknown_interpreter_runs_plain_with_one_warning(monkeypatch, model):
    """Without bytecode support the function runs plain, says why once, and works."""
    monkeypatch.setattr("xcs._compat.ops", None)
    monkeypatch.setattr("xcs._compat.UNSUPPORTED", "CPython 9.9 is not supported")
    with pytest.warns(XcsWarning, match="CPython 9.9 is not supported") as record:
        f = jit(lambda m, xs: [m(x) for x in xs])
    assert len(record) == 1
    assert f(model, [1, 2]) == ["m(1)", "m(2)"]
    assert f.stats().reason.endswith("CPython 9.9 is not supported")


def test_planning_failure_runs_plain(monkeypatch, model):
    """An internal error after the trial leaves that signature plain, results unchanged."""
    from xcs import _pipeline

    def broken(*a, **k):
        raise RuntimeError("planner bug")

    monkeypatch.setattr(_pipeline.Plan, "from_graph", broken)
    f = jit(lambda m, xs: [m(x) for x in xs])
    with pytest.warns(XcsWarning, match="planner bug"):
        assert f(model, [1, 2]) == ["m(1)", "m(2)"]
    assert f(model, [1, 2]) == ["m(1)", "m(2)"]
    assert f.stats().signatures[0].status == "plain"


# -- introspection ----------------------------------------------------------------------


def test_stats_and_explain_describe_the_plan(model):
    """stats() counts signatures and optimizations; explain() shows calls, sets and path."""

    @jit
    def answer(m, q, docs):
        drafts = [m(q, d) for d in docs]
        return m("judge", *drafts)

    answer(model, "q", ["a", "b", "c"])
    answer(model, "q", ["a", "b", "c"])
    answer(model, "q", [])
    stats = answer.stats()
    assert stats.cached == 1 and stats.optimized == 1
    (sig,) = stats.signatures
    assert sig.signature == "(m: Model, q: str, docs: list)"
    assert sig.replays == 2 and sig.estimated_speedup > 1.2
    text = answer.explain()
    for needle in ["calls (4", "independent sets", "level 0: #0 #1 #2", "critical path",
                   "plan: defer", "estimated", "test_jit.py:"]:
        assert needle in text, (needle, text)


def test_stats_report_plain_reasons(model):
    """A signature that is not optimized says why."""

    @jit
    def one(m, x):
        return m(x)

    one(model, 1)
    one(model, 2)
    (sig,) = one.stats().signatures
    assert sig.status in ("new", "plain") and "fewer than two slow calls" in sig.reason


def test_site_whose_callee_becomes_print_runs_it_in_order(capsys):
    """A deferred site that later calls print() prints in program order, resolved."""
    slow = Model(latency=0.01)

    @jit
    def run_all(funcs, x):
        return [f(x) for f in funcs]

    run_all([slow, slow, slow], "a")  # trial: the site calls a slow model
    run_all([slow, slow, slow], "a")
    capsys.readouterr()
    result = run_all([slow, print, slow, print], "b")
    assert result == ["m(b)", None, "m(b)", None]
    assert capsys.readouterr().out == "b\nb\n"


def test_jitting_twice_returns_the_same_function():
    """jit(jit(f)) is jit(f); with another executor it re-jits the original."""
    f = jit(lambda x: x)
    assert jit(f) is f
    with ThreadPoolExecutor(1) as pool:
        g = jit(f, executor=pool)
        assert g is not f and g.__wrapped__ is f.__wrapped__ and g(3) == 3


# -- every object jit returns has stats(), explain() and timeline() --------------------


@jit
def _scaled(k, x):  # at module level: a partial of it pickles the function by reference
    return k * x


class _Doubler:
    def __call__(self, x):
        return 2 * x

    def twice(self, x):
        return 2 * x


def _jit_of(kind):
    """What jit returns for a callable of ``kind`` (the fallback's warning silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcsWarning)
        return {"function": lambda: jit(lambda x: x),
                "partial": lambda: jit(functools.partial(_scaled, 2)),
                "callable object": lambda: jit(_Doubler()),
                "bound method": lambda: jit(_Doubler().twice),
                "staticmethod": lambda: jit(staticmethod(lambda x: x)),
                "classmethod": lambda: jit(classmethod(lambda cls, x: x)),
                "builtin (fallback)": lambda: jit(len)}[kind]()


@pytest.mark.parametrize("kind", ["function", "partial", "callable object", "bound method",
                                  "staticmethod", "classmethod", "builtin (fallback)"])
def test_every_object_jit_returns_has_the_methods_with_the_same_signatures(kind):
    """stats(), explain(format) and timeline(path) exist on whatever jit returns, alike."""
    reference = jit(lambda x: x)
    obj = _jit_of(kind)
    for name in ("stats", "explain", "timeline"):
        assert inspect.signature(getattr(obj, name)) == inspect.signature(getattr(reference, name))
    assert isinstance(obj.stats(), xcs.Stats)
    assert obj.explain(format="dot").startswith("digraph ")
    assert set(obj.timeline()) == {"traceEvents", "displayTimeUnit"}
    with pytest.raises(ValueError) as got:
        obj.explain(format="svg")
    with pytest.raises(ValueError) as expected:
        reference.explain(format="svg")
    assert (type(got.value), str(got.value)) == (type(expected.value), str(expected.value))


def test_a_fallback_explains_and_draws_like_a_function_that_has_not_run(tmp_path):
    """jit(len)'s DOT is an empty graph, its timeline is empty, as for a jitted function not yet called."""
    with pytest.warns(XcsWarning):
        plain = jit(len)
    fresh = jit(lambda obj: obj.__len__())
    assert plain.explain(format="dot") == fresh.explain(format="dot").replace(
        fresh.__qualname__, "len")
    assert "->" not in plain.explain(format="dot") and "subgraph" not in plain.explain(format="dot")
    assert plain.explain() == plain.explain(format="text") == (
        "len: runs plain: not a Python function: there is no bytecode to rewrite")
    empty = {"traceEvents": [], "displayTimeUnit": "ms"}
    assert plain.timeline() == fresh.timeline() == empty
    path = tmp_path / "trace.json"
    assert plain.timeline(path) == empty
    assert json.loads(path.read_text()) == empty
    assert plain([1, 2]) == 2


def test_a_jitted_partial_is_a_partial_with_the_functions_methods(model):
    """jit(partial(f, ...)) is a partial of jit(f) that answers stats/explain/timeline for it."""
    part = jit(functools.partial(lambda m, xs: [m(x) for x in xs], model))
    assert isinstance(part, functools.partial) and part.args == (model,) and part.keywords == {}
    for _ in range(3):
        assert part(["a", "b"]) == ["m(a)", "m(b)"]
    assert part.stats() == part.func.stats() and replays(part) == 2
    assert part.explain() == part.func.explain() and "optimized" in part.explain()
    assert part.timeline() == part.func.timeline() and part.timeline()["traceEvents"]
    scaled = jit(functools.partial(_scaled, 3))
    assert scaled.func is _scaled and scaled(2) == 6
    clone = pickle.loads(pickle.dumps(scaled))  # the methods live on the class, not in __dict__
    assert clone(5) == 15 and clone.func is _scaled and clone.stats() == _scaled.stats()
    assert copy.deepcopy(scaled)(1) == 3 == functools.partial(scaled, 1)()
    # What functools.wraps gives a jitted function (and xcs.Jitted promises): the plain
    # partial, the name and qualified name of the function it calls.
    plain = scaled.__wrapped__
    assert type(plain) is functools.partial and plain.func is _scaled.__wrapped__
    assert plain.args == (3,) and plain(2) == 6
    assert (scaled.__name__, scaled.__qualname__) == (_scaled.__name__, _scaled.__qualname__)
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        scaled.missing  # noqa: B018


def test_static_and_class_method_descriptors_carry_the_methods(model):
    """jit(staticmethod(f)) and jit(classmethod(f)) stay descriptors and have the methods too."""

    def stat(m, xs):
        return [m(x) for x in xs]

    def clas(cls, m, xs):
        return [m(cls.__name__, x) for x in xs]

    sm, cm = jit(staticmethod(stat)), jit(classmethod(clas))
    assert type(sm) is staticmethod and type(cm) is classmethod
    Agent = type("Agent", (), {"stat": sm, "clas": cm})
    for _ in range(3):
        assert Agent.stat(model, ["a", "b"]) == Agent().stat(model, ["a", "b"]) == ["m(a)", "m(b)"]
        assert Agent().clas(model, ["a", "b"]) == ["m(Agent, a)", "m(Agent, b)"]
    for views in [(sm, Agent.stat, Agent().stat), (cm, Agent.clas, Agent().clas)]:
        assert len({str(view.stats()) for view in views}) == 1
        assert len({view.explain() for view in views}) == 1
        assert replays(views[0]) >= 1


# -- pure operators on results: a + b + c does not stall -------------------------------


def test_operators_on_results_do_not_stall_the_loop():
    """a + b + c and f-strings of results wait for nothing: all iterations overlap."""
    m = Model(latency=0.01)

    @jit
    def loop(m, n):
        out = []
        for i in range(n):
            a = m(i)
            b = m(i + 1)
            c = m(i + 2)
            out.append(f"<{a + b + c}>")
        return out

    expected = loop(m, 4)
    assert expected == loop.__wrapped__(Model(0), 4)
    m.expect_overlap(12)  # every call of every iteration runs at once
    assert loop(m, 4) == expected


def test_prompt_built_from_a_result_chains_without_waiting_in_the_body():
    """A prompt made from an earlier result is passed on; results equal plain."""
    m = Model(latency=0.005)

    @jit
    def chain_of_prompts(m, topics):
        outlines = [m("outline", t) for t in topics]
        drafts = [m(f"draft from {o}") for o in outlines]
        return [d + "!" for d in drafts]

    plain = chain_of_prompts.__wrapped__(Model(0), ["a", "b"])
    for _ in range(3):
        assert chain_of_prompts(m, ["a", "b"]) == plain


def test_operator_on_a_user_type_runs_once_in_the_calling_thread():
    """When a later call returns a user type, its __add__ runs once, in the body's thread."""
    calls = []

    class Text:
        def __init__(self, s):
            self.s = s

        def __add__(self, other):
            calls.append(threading.get_ident())
            return Text(self.s + other.s)

        def __eq__(self, other):
            return isinstance(other, Text) and other.s == self.s

    def fetch(x, as_text):
        time.sleep(0.005)
        return Text(str(x)) if as_text else str(x)

    @jit
    def combine(xs, as_text):
        parts = [fetch(x, as_text) for x in xs]
        return parts[0] + parts[1]

    assert combine([1, 2], False) == "12" == combine([1, 2], False)
    calls.clear()
    assert combine([1, 2], True) == Text("12")
    assert calls == [threading.get_ident()]


def test_operator_error_on_results_is_raised_as_plain():
    """str + int on results raises the same TypeError as the plain function."""

    def get(x):
        time.sleep(0.005)
        return x

    @jit
    def mix(a, b):
        x = get(a)
        y = get(b)
        return [x + y]

    assert mix("a", "b") == ["ab"] == mix("a", "b")
    with pytest.raises(TypeError) as jitted:
        mix("a", 1)
    with pytest.raises(TypeError) as plain:
        mix.__wrapped__("a", 1)
    assert str(jitted.value) == str(plain.value)


def test_with_statement_after_a_failing_call_does_not_run_its_expression(tmp_path):
    """``with open(p, "wb")`` after a failed download leaves the file as plain Python does."""
    target = tmp_path / "saved.txt"
    target.write_text("precious")

    def fetch(url):
        time.sleep(0.005)
        if "missing" in url:
            raise FileNotFoundError(url)
        return f"content of {url}"

    @jit
    def download(urls, path):
        pages = [fetch(u) for u in urls]
        with open(path, "w") as f:
            f.write("\n".join(pages))
        return len(pages)

    assert download(["a", "b"], tmp_path / "other.txt") == 2
    assert download(["a", "b"], tmp_path / "other.txt") == 2
    with pytest.raises(FileNotFoundError):
        download(["a", "missing"], target)
    assert target.read_text() == "precious"


def test_results_are_released_when_the_call_returns():
    """A replay keeps no reference to the values it handled once it returned."""
    import sys

    class Result:
        pass

    alive = weakref.WeakSet()  # results not yet freed
    big = ["payload"]

    def fetch(x):
        time.sleep(0.02)
        result = Result()
        alive.add(result)
        return result

    @jit
    def f(x):
        results = [fetch(x), fetch(x)]  # independent: deferred, they overlap
        return [type(r).__name__ for r in results]

    f(big)
    f(big)
    before = sys.getrefcount(big)
    assert f(big) == ["Result", "Result"]
    assert sys.getrefcount(big) == before  # the arguments
    assert len(alive) == 0  # the results
    assert replays(f) == 2, f.explain()
