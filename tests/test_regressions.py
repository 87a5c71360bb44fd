"""Minimal reproductions of discrepancies between jitted and plain functions.

Each test is the smallest program found (shrunk by hypothesis in
test_differential.py, or written by hand while writing test_contract.py) on which
xcs did not behave as plain Python; it stays here once fixed.  Every test states
the plain behaviour it checks and warms the function up (trial, then a replay) so
that the deferred path is the one under test.
"""

from __future__ import annotations

import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest

from xcs import XcsWarning, _function, _replay, _scheduling, jit

from .conftest import Model

LATENCY = 0.003


def slow(x):
    time.sleep(LATENCY)
    if x == "bad":
        raise ValueError("bad")
    return f"slow({x})"


def warmed(fn, *args, sites=1, **kwargs):
    """``jit(fn)``, called until it has replayed once with ``args``, deferring ``sites``.

    A trial on a loaded machine can see one call stall and estimate too little
    gain, or too little for one site: the plan is then traced again (up to three times).
    """
    for _ in range(3):
        jitted = jit(fn, **kwargs)
        for _ in range(2):
            jitted(*args)
        stats = jitted.stats().signatures
        if sum(s.replays for s in stats) == 1 and len(stats[0].deferred_sites) >= sites:
            break
    assert sum(s.replays for s in jitted.stats().signatures) == 1, jitted.explain()
    return jitted


# -- found by test_differential.py -------------------------------------------------------------


def test_method_call_on_an_outside_list_waits_for_a_failing_deferred_call():
    """history.append after a failing call: plain raises first and never appends.

    Shrunk by hypothesis from a generated program (``agent.history.append(q)`` after a
    comprehension of calls, one of which raised); the docs promise the body runs ahead
    only "up to the next point where it changes outside state".
    """

    def f(xs, history):
        out = [slow(x) for x in xs]
        history.append("done")
        return out

    jitted = warmed(f, ["a", "b", "c"], [])
    history = []
    with pytest.raises(ValueError, match="bad"):
        jitted(["a", "bad", "c"], history)
    assert history == []


def test_in_place_add_to_an_argument_waits_for_a_failing_deferred_call():
    """``xs += [...]`` after a failing call: plain raises first; the caller's list is intact.

    Shrunk by hypothesis (``xs += [q]`` after a deferred ``risky(q, xs)``, which then also
    saw the grown list and did not fail).
    """

    def f(xs):
        out = [slow(x) for x in xs]
        xs += ["done"]
        return out

    jitted = warmed(f, ["a", "b", "c"])
    xs = ["a", "bad", "c"]
    with pytest.raises(ValueError, match="bad"):
        jitted(xs)
    assert xs == ["a", "bad", "c"]


def test_in_place_add_skips_its_guard_for_numbers_only():
    """One replay body serves both signatures: ``acc += extra`` on an int goes straight
    on (a type test in the bytecode, not a guard call), on the caller's list it still
    waits for the deferred calls, so a failing one leaves the list untouched."""

    def f(acc, extra, xs):
        out = [slow(x) for x in xs]
        acc += extra
        return acc, out

    jitted = warmed(f, 1, 2, ["a", "b"])
    warmed_lists = [jitted([], ["z"], ["a", "b"]) for _ in range(2)]
    assert warmed_lists[-1] == (["z"], ["slow(a)", "slow(b)"])
    for args in [(5, 0.5, ["c", "d"]), ("s", "t", ["c", "d"])]:  # a trial, then a replay
        assert [jitted(*args) for _ in range(2)] == [f(*args)] * 2
    assert [v.mode for v in jitted.__xcs__.variants].count("replay") == 1  # one replay body
    assert [s.replays > 0 for s in jitted.stats().signatures] == [True] * 4
    acc = ["kept"]
    with pytest.raises(ValueError, match="bad"):
        jitted(acc, ["added"], ["a", "bad", "c"])
    assert acc == ["kept"]


def test_deferred_call_after_a_with_block_gets_its_argument_resolved():
    """A call deferred after a ``with`` block got a placeholder as its argument.

    Shrunk by hypothesis: ``tool(v1)`` after ``with span(q): ...`` returned
    ``'tool(<xcs pending result of llm()>)'``; plain passes the string.  The ``with``
    makes the body wait for ``a``; ``show(a)`` is then deferred with a placeholder
    whose call has finished, and ``Invocation._submit`` resolves arguments only for
    calls that still had unfinished inputs.
    """

    class Span:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

    def show(x):
        time.sleep(LATENCY)
        return f"show({x})"

    def f(q):
        a = slow(q)
        b = slow(q + "2")
        with Span():
            pass
        t = show(a)
        u = show(b)
        return t, u

    jitted = warmed(f, "q")
    for _ in range(3):
        assert jitted("q") == f("q") == ("show(slow(q))", "show(slow(q2))")


# -- found by hand and by test_contract.py --------------------------------------------------------


def test_logging_after_a_failing_deferred_call_may_log_but_raises_the_same(caplog):
    """logging after a failing call: the same exception; the record may have been logged.

    As for print(): calls issued after a failing call may have run (docs/contract.md).
    The record, when there is one, names the body's own line, as plain would.
    """
    import logging

    log = logging.getLogger("xcs-regressions")

    def f(xs):
        out = [slow(x) for x in xs]
        log.warning("requested %d", len(xs))
        return out

    jitted = warmed(f, ["a", "b", "c"])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="xcs-regressions"), \
            pytest.raises(ValueError, match="bad"):
        jitted(["a", "bad", "c"])
    records = [r for r in caplog.records if r.name == "xcs-regressions"]
    assert [r.getMessage() for r in records] in ([], ["requested 3"])
    assert all(r.funcName == "f" and r.lineno == f.__code__.co_firstlineno + 2 for r in records)

def test_print_after_a_failing_deferred_call_may_print_but_raises_the_same(capsys):
    """print() after a failing call: the same exception; the line may have been printed.

    Plain raises before printing.  The contract lets calls issued after a failing
    call have run (docs/contract.md, "After a failure"): holding back every print()
    until the calls before it succeed would serialize any loop that reports
    progress.  What must hold: the exception, and nothing printed that the body
    would not print after that point, in order.
    """

    def f(xs):
        out = [slow(x) for x in xs]
        print("requested", len(xs))
        return out

    jitted = warmed(f, ["a", "b", "c"])
    capsys.readouterr()
    with pytest.raises(ValueError, match="bad"):
        jitted(["a", "bad", "c"])
    assert capsys.readouterr().out in ("", "requested 3\n")


def test_list_passed_to_a_deferred_call_is_not_changed_by_later_appends():
    """A callee gets the list as it was at the call, not as the body changed it later."""

    def show(items):
        time.sleep(LATENCY)
        return repr(items)

    def f(q):
        out = []
        out.append(slow(q))
        shown = show(out)
        out.append(slow(q + "2"))
        return shown, out

    jitted = warmed(f, "q")
    for _ in range(3):
        assert jitted("q") == f("q") == ("['slow(q)']", ["slow(q)", "slow(q2)"])


def test_deferred_callee_warning_stacklevel_2_blames_the_calling_line():
    """A callee's warnings.warn(stacklevel=2) names the jitted function's line, as plain."""

    def fetch(x):
        time.sleep(LATENCY)
        warnings.warn("old", DeprecationWarning, stacklevel=2)
        return x

    def f(x, y):
        a = fetch(x)
        b = fetch(y)
        return a, b

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        jitted = warmed(f, "a", "b")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jitted("a", "b")
    first = f.__code__.co_firstlineno
    assert sorted((w.filename, w.lineno) for w in caught) == [(__file__, first + 1), (__file__, first + 2)]


def test_deferred_callee_sees_the_jitted_function_as_its_caller():
    """sys._getframe(1) in a callee is the jitted function's frame, as plain."""
    import sys

    def fetch(x):
        time.sleep(LATENCY)
        return sys._getframe(1).f_code.co_name

    def f(x, y):
        a = fetch(x)
        b = fetch(y)
        return a, b

    jitted = warmed(f, "a", "b")
    assert jitted("a", "b") == f("a", "b") == ("f", "f")


def test_huge_list_argument_does_not_make_deferred_calls_slow():
    """A 10**6-element list passed to 8 deferred calls: a replay cost 0.4-0.6 s instead of
    the 0.004 s it takes with a 10-element list (each deferral scans the list twice)."""

    def use(big, i):
        time.sleep(LATENCY)
        return f"{i}:{len(big)}"

    def f(big):
        return [use(big, i) for i in range(8)]

    small, big = list(range(10)), list(range(10**6))
    jitted = warmed(f, small)
    took = {}
    for name, arg in (("small", small), ("big", big)):
        start = time.perf_counter()
        jitted(arg)
        took[name] = time.perf_counter() - start
    assert took["big"] < took["small"] + 0.1, took


def test_refused_replay_is_not_counted_as_a_replay():
    """A call whose executor refused all work ran plain: replays stays at 1."""
    pool = ThreadPoolExecutor(2)
    jitted = warmed(lambda xs: [slow(x) for x in xs], ["a", "b", "c"], executor=pool)
    pool.shutdown()
    with pytest.warns(XcsWarning, match="refused"):
        jitted(["a", "b", "c"])
    (sig,) = jitted.stats().signatures
    assert (sig.status, sig.replays, sig.measured_speedup) == ("plain", 1, None)


def test_internal_error_in_dispatch_is_recorded_in_stats(monkeypatch):
    """An internal error while choosing the body warns and leaves its reason in stats()."""

    def broken(self, *args):
        raise RuntimeError("dispatch bug")

    monkeypatch.setattr(_function.Function, "_new_entry", broken)
    jitted = jit(lambda xs: [slow(x) for x in xs])
    with pytest.warns(XcsWarning, match="dispatch bug"):
        assert jitted(["a"]) == ["slow(a)"]
    stats = jitted.stats()
    assert "dispatch bug" in " ".join(filter(None, [stats.reason, *(s.reason for s in stats.signatures)]))


def test_internal_error_while_deferring_falls_back_to_plain(monkeypatch):
    """An internal error in Invocation.defer must not reach the caller: the call runs plain."""
    jitted = warmed(lambda xs: [slow(x) for x in xs], ["a", "b"])

    def broken(self, *args):
        raise RuntimeError("defer bug")

    monkeypatch.setattr(_replay.Invocation, "defer", broken)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcsWarning)
        assert jitted(["a", "b"]) == ["slow(a)", "slow(b)"]


def test_busy_pool_caller_runs_the_first_call_before_later_ones():
    """With every worker busy, ``return a, rest`` must not run rest's 8 calls before a.

    Plain makes one call (a fails).  The caller used to force ``rest`` first and run
    all 8 of its queued calls itself, then a: 9 calls.  Now only calls the freed
    workers take alongside a may start (each takes 50 ms, so at most one per worker).
    """
    calls = []

    def call(x, delay):
        calls.append(x)
        time.sleep(delay)
        return slow(x)

    def f(first, xs, delay):
        a = call(first, delay)
        rest = [call(x, delay) for x in xs]
        return a, rest

    pool = ThreadPoolExecutor(2)
    xs = [f"x{i}" for i in range(8)]
    try:
        jitted = warmed(f, "a", xs, 0, executor=pool)
        started = threading.Barrier(3, timeout=5)
        blockers = [pool.submit(lambda: (started.wait(), time.sleep(0.2))) for _ in range(2)]
        started.wait()  # both workers are busy for 0.2 s
        calls.clear()
        with pytest.raises(ValueError, match="bad"):
            jitted("bad", xs, 0.05)
        for b in blockers:
            b.result()
    finally:
        pool.shutdown(wait=True)
    assert "bad" in calls and set(calls) <= {"bad", "x0", "x1"}, calls


def test_a_task_whose_input_finishes_while_it_is_queued_is_submitted_once(monkeypatch):
    """``x + 1`` on a placeholder: the lazy task was queued with x pending, and if x
    finished in a worker right after the body released the invocation's lock, both the
    worker and the body submitted it; the second submit found its inputs freed and
    raised ``TypeError: 'NoneType' object is not iterable``.  Found by an independent
    differential harness under load; forced here on every run by a handshake: the call
    behind x waits until the body has queued ``x + 1`` and released the lock, and the
    body goes on from there only once the worker has finished x and dealt with ``x + 1``.
    """
    body = threading.current_thread()
    gate = threading.Event()  # the body -> the callees: x + 1 is queued, the lock released
    gate.set()  # open while the function warms up
    settled = threading.Event()  # the worker -> the body: x is complete, x + 1 dealt with
    armed = {"input": None, "on": False}
    met = []

    class HandshakeLock:
        """The invocation's lock, with a hook where the body releases it."""

        def __init__(self):
            self._lock = real_rlock()

        def __getattr__(self, name):  # what threading.Condition asks of its lock
            return getattr(self._lock, name)

        def __enter__(self):
            return self._lock.__enter__()

        def __exit__(self, *exc):
            out = self._lock.__exit__(*exc)
            caller = sys._getframe(1)
            if (armed["on"] and threading.current_thread() is body
                    and caller.f_code is _replay.Invocation._enqueue.__code__
                    and caller.f_locals["task"].inline):
                armed["on"] = False
                (armed["input"],) = caller.f_locals["deps"]  # the task behind x
                gate.set()
                met.append(settled.wait(10))
            return out

    shim = type(threading)("threading_shim")
    shim.__dict__.update(threading.__dict__)
    real_rlock = threading.RLock
    shim.RLock = HandshakeLock
    monkeypatch.setattr(_scheduling, "threading", shim)
    complete = _replay.Invocation.complete

    def completing(self, task, *args, **kwargs):
        complete(self, task, *args, **kwargs)  # submits x + 1 once x is done
        if task is armed["input"]:
            settled.set()

    monkeypatch.setattr(_replay.Invocation, "complete", completing)

    def held(x):
        assert gate.wait(10), "the body never queued x + 1"
        time.sleep(0.02)
        return len(x)

    def length(x):
        time.sleep(0.02)
        return len(x)

    def f(a, b):
        x = held(a)  # deferred
        y = length(b)  # runs in the body (its result is needed at once)
        return x + 1, y

    jitted = warmed(f, "ab", "c")
    for k in range(3):
        gate.clear()
        settled.clear()
        armed.update(input=None, on=True)
        assert jitted("ab", "c") == (3, 1)
        assert met == [True] * (k + 1)  # the racy interleaving happened


# -- found by the benchmarks -----------------------------------------------------------------------


def test_values_a_comprehension_reads_do_not_stop_the_calls_before_it(model):
    """3.11 compiles a comprehension to a function that reads ``a``, ``b`` and ``scores``
    through cells.  A cell used to count as outside state, so storing a call's result
    in one waited for the call: the plan came out plain (1.00x) and the `mixed`
    benchmark ran its scoring loop one call at a time.  Such cells are now tracked
    like locals and resolved just before the comprehension runs (3.12+ inlines
    comprehensions, where this always held).  All 2 + n calls must run at once.
    """

    def f(m, n):
        a = m("a")
        b = m("b")
        scores = {}
        for i in range(n):
            scores[i] = m("score", i)
        return [a + b + scores[i] for i in range(n) if len(scores[i]) % 2 == 0]

    jitted = warmed(f, model, 4, sites=3)
    model.expect_overlap(6)
    assert jitted(model, 4) == f(Model(latency=0), 4)


def test_a_comprehension_that_rebinds_a_cell_sees_and_leaves_real_values(model):
    """``y`` holds a placeholder when the comprehension starts, which reads it and
    rebinds it with ``:=``; after it, the body sees the last value bound.  A lambda
    reading ``z`` keeps ``z`` outside state (it could be called later, anywhere).
    """

    def f(m, xs):
        y = m("first")
        z = m("second")
        later = lambda: z  # noqa: E731
        out = [(y := m(x, y[:8])) for x in xs]
        return y, out, later()

    jitted = warmed(f, model, ["p", "q"])
    for xs in (["r"], ["s", "t", "u"], []):
        assert jitted(model, xs) == f(model, xs)
        assert type(jitted(model, xs)[0]) is str



# -- found by an independent differential harness (outside this repository) ----------------------


def test_a_cell_unbound_on_this_path_is_not_loaded_before_the_comprehension():
    """3.11: ``c`` (read only by a comprehension) is bound on one branch only.  Plain
    fails with NameError only if the comprehension reads it; xcs resolved the cell by
    loading it and raised UnboundLocalError even for an empty comprehension, or
    between a ``with`` block and its ``__exit__``, leaving a lock held."""

    def f(lock, xs, flag):
        if flag:
            c = slow("c")
        a = slow("a")
        b = slow("b")
        with lock:
            pass
        return a, b, [c + x for x in xs]

    jitted = warmed(f, threading.Lock(), ["p"], True)
    lock = threading.Lock()
    assert jitted(lock, [], False) == f(lock, [], False) and not lock.locked()
    with pytest.raises(NameError, match="'c'"):
        jitted(lock, ["p"], False)
    assert not lock.locked()


def test_a_long_chain_of_operators_on_a_result_finishes():
    """``x += i`` 1,000 times on a placeholder is a chain of 1,000 lazy tasks; finishing
    one ran the next recursively, and past ~330 a RecursionError left the rest waiting
    forever: the call hung."""

    def length(s):
        time.sleep(LATENCY)
        return len(s)

    def f(a, b, k):
        x = length(a)
        y = length(b)
        for i in range(k):
            x += i
        return x, y

    jitted = warmed(f, "ab", "c", 1000)
    assert jitted("ab", "c", 1000) == f("ab", "c", 1000)


def test_in_place_add_to_the_callers_list_is_not_deferred_when_the_trial_saw_a_str():
    """``t += slow(...)`` saw a str in the trial (so it became a lazy operator) and the
    caller's list later: plain extends the list at the ``+=``, before ``len(xs)``."""

    def f(xs, flag):
        a = slow("a")
        b = slow("b")
        t = xs if flag else ""
        t += slow("c")
        return a, b, len(xs), list(xs)

    jitted = warmed(f, ["x"], False)
    xs = ["x"]
    assert jitted(xs, True) == f(["x"], True) and xs == f(["x"], True)[3]


def test_in_place_changes_to_user_objects_wait_for_a_failing_deferred_call():
    """``acc += b`` on a user object with a mutating ``__iadd__`` and ``acc.append`` on an
    ``array.array``: plain raises at the failing call and never changes them."""
    import array

    class Bag:
        def __init__(self):
            self.items = []

        def __iadd__(self, other):
            self.items.append(other)
            return self

    def add(acc, first):
        a = slow(first)
        b = slow("b")
        acc += b
        return a

    def append(acc, first):
        a = slow(first)
        b = slow("b")
        acc.append(len(b))
        return a

    for fn, make, empty in ((add, Bag, lambda o: o.items == []),
                            (append, lambda: array.array("i"), lambda o: len(o) == 0)):
        jitted = warmed(fn, make(), "a")
        obj = make()
        with pytest.raises(ValueError, match="bad"):
            jitted(obj, "bad")
        assert empty(obj), fn.__name__


def test_comprehension_result_passed_whole_to_a_deferred_call_is_resolved_first():
    """3.11: a list built by a comprehension of deferred calls, passed whole to a deferred
    call, reached the callee with placeholders in it (the site was marked as never
    receiving containers that hold placeholders: comprehensions were not looked into)."""
    def take(q, items):
        time.sleep(LATENCY)
        assert all(type(i) is str for i in items), items
        return q + ":" + ",".join(items)

    def f(q, xs):
        parts = [slow(x) for x in xs]
        return take(q, parts), take(q + "!", parts)

    jitted = warmed(f, "q", ["a", "b", "c"])
    assert jitted("r", ["d", "e"]) == f("r", ["d", "e"])
    assert sum(s.replays for s in jitted.stats().signatures) == 2, jitted.explain()


def test_a_loop_of_deferred_calls_then_a_with_statement_replays():
    """``for x in xs: out.append(m(x))`` then ``with cm:``: the barrier before the with
    goes right after the loop's END_FOR, where 3.12's FOR_ITER exits (it raised
    'cannot insert code at the end of a for loop' and ran plain, warning of an
    internal error)."""
    import contextlib

    m = Model(latency=0.003)

    @jit
    def f(m, xs):
        out = []
        for x in xs:
            out.append(m(x))
        with contextlib.nullcontext():
            last = m("last")
        return out, last

    with warnings.catch_warnings():
        warnings.simplefilter("error", XcsWarning)
        results = [f(m, ["a", "b", "c", "d"]) for _ in range(3)]
    assert results == [f.__wrapped__(m, ["a", "b", "c", "d"])] * 3
    assert f.stats().signatures[0].replays >= 1, f.explain()
