"""The contract of docs/contract.md, one behaviour per test, under adversarial use.

Every test compares the jitted function with the plain one (``f.__wrapped__`` or
the undecorated source) and, where the behaviour only matters when calls are
really deferred, also checks that replays ran (``f.stats()``), so that a test
cannot pass just because xcs chose to run plain.  Overlap is proven with
``threading.Barrier``/``Event``; the one timing assertion (huge arguments stay
fast) allows ten times the plain time plus 0.2 s.

Needs numpy (``test_numpy_arrays_as_arguments_and_results``).
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import sys
import textwrap
import threading
import time
import traceback
import warnings
from collections import Counter
from concurrent.futures import Executor, Future, ThreadPoolExecutor

import pytest

import xcs
from xcs import XcsError, XcsWarning, _executors, _function, _replay, _scheduling, jit
from xcs._tasks import Pending

from . import _elsewhere
from .conftest import Forwarding, Model, OwnThreads

FAST = 0.003  # latency of a simulated call: slow enough to be deferred, cheap to run


@pytest.fixture(autouse=True, params=["pool", "forwarding", "own-threads", "throttle"])
def default_executor(request, monkeypatch):
    """Every contract test runs on the shared thread pool and, as jit's default, on two
    executors that are no ThreadPoolExecutor (a forwarding wrapper and one of its own)
    and on a throttle, which must change when calls start, never what is called."""
    if request.param == "pool":
        yield
        return
    if request.param == "throttle":
        inner = ThreadPoolExecutor(16, thread_name_prefix="throttled")
        monkeypatch.setattr(_executors, "_default", xcs.throttle(inner, max_in_flight=4))
        yield
        inner.shutdown(wait=True)
        return
    pool = Forwarding(16) if request.param == "forwarding" else OwnThreads(16)
    monkeypatch.setattr(_executors, "_default", pool)
    yield
    pool.shutdown(wait=True)


XS = ["a", "b", "c", "d"]  # four independent calls: replays pay off on a loaded machine too


def ms(*prefix, xs=XS) -> list[str]:
    """What ``[m(*prefix, x) for x in xs]`` returns for the conftest ``Model``."""
    return [f"m({', '.join(map(str, (*prefix, x)))})" for x in xs]


def replays(f) -> int:
    """Replays that ran, over all signatures of ``f``."""
    return sum(s.replays for s in f.stats().signatures)


def assert_replayed(*fs) -> None:
    """Each of ``fs`` really replayed (else the comparison with plain proves little)."""
    for f in fs:
        assert replays(f) >= 1, f.explain()


def outcome(fn, *args, **kwargs):
    """``(result, exception)`` of one call; plain and jitted are called from this same line."""
    try:
        return fn(*args, **kwargs), None
    except BaseException as exc:
        return None, exc


def warm(f, *args, times: int = 2, sites: int = 0, **kwargs):
    """Call ``f`` enough times for its plan to be decided and replayed; return the last result.

    A trial on a loaded machine can see one call stall (80 ms for a 3 ms sleep) and
    estimate too little gain to replay, or take a sleeping call for CPU-bound work:
    then the plan is dropped and traced again (up to five times) until it replays and
    defers at least ``sites`` call sites, since these tests are about what replays
    do, not about plans.
    """
    result = None
    for attempt in range(5):
        for _ in range(times):
            result = f(*args, **kwargs)
        state = getattr(f, "__xcs__", None)
        if state is None:
            break
        stats = f.stats().signatures
        if replays(f) and all(len(s.deferred_sites) >= sites for s in stats):
            break
        if attempt == 4:
            break  # keep the last plan: forgetting it would make the next call a trial
        if not retrace_if_unlucky(f) and replays(f):
            state.entries.clear()  # it replayed, deferring too little: trace again
    return result


def retrace_if_unlucky(f) -> bool:
    """Forget ``f``'s plans if none replayed because a trial estimated too little gain
    (a call stalled on a loaded machine): the next call traces again.  Says if it did."""
    state = getattr(f, "__xcs__", None)
    if state is None or replays(f) or not any(
            (s.reason or "").startswith("estimated speedup") for s in f.stats().signatures):
        return False
    state.entries.clear()
    return True


class Log:
    """Slow callees that log their calls, start and end, thread-safely."""

    def __init__(self, latency: float = FAST) -> None:
        self.latency = latency
        self.lock = threading.Lock()
        self.calls: list[tuple] = []
        self.events: list[tuple[str, object]] = []
        self.threads: set[int] = set()
        self.active = 0

    def __call__(self, *args):
        with self.lock:
            self.calls.append(args)
            self.events.append(("start", args))
            self.threads.add(threading.get_ident())
            self.active += 1
        try:
            time.sleep(self.latency)
            return f"r{args}"
        finally:
            with self.lock:
                self.active -= 1
                self.events.append(("end", args))

    def clear(self) -> None:
        with self.lock:
            self.calls.clear()
            self.events.clear()
            self.threads.clear()


# == (a) exceptions ===========================================================================


def test_first_failing_call_in_program_order_wins():
    """When two deferred calls fail, the caller gets the one the plain function makes first."""
    first, second = KeyError("first"), IndexError("second")
    second_failed = threading.Event()

    def call(name):
        if name == "one":  # fails, but only after the later call has failed
            assert second_failed.wait(5), "the calls did not overlap"
            raise first
        if name == "two":
            second_failed.set()
            raise second
        time.sleep(FAST)
        return name

    @jit
    def f(names):
        a = call(names[0])
        b = call(names[1])
        c = call(names[2])
        d = call(names[3])
        return a, b, c, d

    assert warm(f, XS, sites=3) == tuple(XS)
    assert_replayed(f)
    before = replays(f)
    _, exc = outcome(f, ["one", "two", "c", "d"])
    assert exc is first and second_failed.is_set()
    assert replays(f) == before + 1, f.explain()  # the failing call was a replay


def failing_callee():
    """A slow callee that raises the exception registered for its argument, if any."""
    errors = {}

    def slow(x):
        time.sleep(FAST)
        if x in errors:
            raise errors[x]
        return x

    return slow, errors


def test_callee_exception_is_the_same_object_with_the_plain_traceback():
    """A deferred call raises the callee's own exception object with the plain traceback."""
    # The traceback: the function's frame at the call's line, then the callee's frames.
    slow, errors = failing_callee()

    def f(xs):
        a = slow(xs[0])
        b = slow(xs[1])
        c = slow(xs[2])
        return a + b + c

    jitted = jit(f)
    warm(jitted, XS)
    assert_replayed(jitted)
    frames = {}
    for name, fn in (("plain", f), ("jit", jitted), ("jit again", jitted)):
        errors.clear()
        errors["bad"] = boom = ValueError("boom")
        before = replays(jitted)
        _, exc = outcome(fn, ["a", "bad", "c"])
        assert exc is boom
        assert replays(jitted) == before + (fn is jitted), jitted.explain()  # each a replay
        frames[name] = [(fs.filename, fs.name, fs.lineno) for fs in traceback.extract_tb(exc.__traceback__)]
    assert frames["jit"] == frames["plain"] == frames["jit again"]
    assert [name for _, name, _ in frames["plain"]] == ["outcome", "f", "slow"]


def test_callee_exception_in_a_comprehension_shows_the_callee_frame():
    """A deferred call in a comprehension raises the callee's object, callee frame shown."""
    slow, errors = failing_callee()

    def f(xs):
        return [slow(x) for x in xs]

    jitted = jit(f)
    warm(jitted, XS)
    assert_replayed(jitted)
    call_line = f.__code__.co_firstlineno + 1
    errors["bad"] = boom = ValueError("boom")
    _, exc = outcome(jitted, ["a", "bad", "c"])
    assert exc is boom
    frames = [(fs.name, fs.lineno) for fs in traceback.extract_tb(exc.__traceback__)]
    assert frames[0][0] == "outcome" and frames[-1][0] == "slow"
    assert ("f", call_line) in frames or ("<listcomp>", call_line) in frames, frames
    assert all(fs.filename == __file__ for fs in traceback.extract_tb(exc.__traceback__))


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
def test_base_exception_in_a_deferred_call_reaches_the_caller(kind):
    """KeyboardInterrupt and SystemExit raised by a deferred callee reach the caller unchanged."""
    stop = kind("stop")
    overlap = threading.Barrier(4, timeout=5)

    def call(x, together):
        if together:
            overlap.wait()  # all four calls run at once: they were deferred
        else:
            time.sleep(FAST)
        if x == "stop":
            raise stop
        return f"ok {x}"

    @jit
    def f(xs, together):
        return [call(x, together) for x in xs]

    assert warm(f, ["a", "b", "c", "d"], False) == ["ok a", "ok b", "ok c", "ok d"]
    _, exc = outcome(f, ["a", "b", "stop", "d"], True)
    assert exc is stop
    assert replays(f) >= 2


def test_keyboard_interrupt_propagates_without_waiting_for_running_calls():
    """KeyboardInterrupt in a deferred call reaches the caller while a later call still runs."""
    interrupt = KeyboardInterrupt()
    started, release, done = threading.Event(), threading.Event(), threading.Event()

    def call(x):
        if x == "interrupt":
            assert started.wait(5)
            raise interrupt
        if x == "block":
            started.set()
            try:
                release.wait(5)
            finally:
                done.set()
        time.sleep(FAST)
        return x

    @jit
    def f(xs):
        return [call(x) for x in xs]

    assert warm(f, ["p", "q", "r", "s"]) == ["p", "q", "r", "s"]
    assert_replayed(f)
    try:
        _, exc = outcome(f, ["interrupt", "block", "r", "s"])
        assert exc is interrupt
        assert not done.is_set(), "the caller waited for a running call before propagating"
    finally:
        release.set()
    assert done.wait(5)


def failing_fan_out(log, boom, pool, observe_first):
    """A jitted fan-out whose first call fails on ``"bad"``; calls go through ``log``.

    ``f(first, xs, delay)``: each later call logs when it starts, then takes ``delay``.
    """

    def call(x, delay):
        if x == "bad":
            log("bad")
            raise boom
        result = log(x)
        time.sleep(delay)
        return result

    if observe_first:
        def f(first, xs, delay):
            a = call(first, delay)
            rest = [call(x, delay) for x in xs]
            if a == "never":  # a branch: the body observes a, before any of rest
                rest = []
            return a, rest
    else:
        def f(first, xs, delay):
            a = call(first, delay)
            rest = [call(x, delay) for x in xs]
            return a, rest
    return jit(f, executor=pool)


XS8 = [f"x{i}" for i in range(8)]


def test_calls_not_yet_started_are_cancelled():
    """After a failure, deferred calls not yet started never run."""
    # Of 8 calls behind the failing one on a 2-worker pool, only those the two workers
    # had already taken (50 ms each) may run.
    log, boom = Log(), ValueError("boom")
    pool = ThreadPoolExecutor(2, thread_name_prefix="test-pool")
    f = failing_fan_out(log, boom, pool, observe_first=True)
    try:
        assert warm(f, "a", XS8, 0, times=3) == f.__wrapped__("a", XS8, 0)
        assert_replayed(f)
        log.clear()
        _, exc = outcome(f, "bad", XS8, 0.05)
        assert exc is boom
    finally:
        pool.shutdown(wait=True)  # runs whatever is still queued on the pool
    ran = {args[0] for args in log.calls}
    assert "bad" in ran and ran <= {"bad", "x0", "x1"}, log.calls


def test_caller_runs_queued_calls_in_program_order():
    """With every worker busy, the caller does not run later calls before the first one."""
    # Once the first fails, only the calls the freed workers took alongside it may run.
    log, boom = Log(), ValueError("boom")
    pool = ThreadPoolExecutor(2, thread_name_prefix="test-pool")
    f = failing_fan_out(log, boom, pool, observe_first=False)
    try:
        assert warm(f, "a", XS8, 0, times=3) == f.__wrapped__("a", XS8, 0)
        assert_replayed(f)
        both = threading.Barrier(3, timeout=5)
        blockers = [pool.submit(lambda: (both.wait(), time.sleep(0.2))) for _ in range(2)]
        both.wait()  # both workers are busy for 0.2 s
        log.clear()
        _, exc = outcome(f, "bad", XS8, 0.05)
        assert exc is boom
        for b in blockers:
            b.result()
    finally:
        pool.shutdown(wait=True)
    ran = {args[0] for args in log.calls}
    assert "bad" in ran and ran <= {"bad", "x0", "x1"}, log.calls


@pytest.mark.parametrize("fail", [False, True], ids=["returns", "raises"])
def test_no_deferred_call_outlives_its_invocation(executor, fail):
    """When the function returns or raises, every call it started has ended."""
    log = Log()
    boom = RuntimeError("boom")

    def call(x, delay):
        if x == "bad":
            raise boom
        time.sleep(delay)
        return log(x)

    @jit(executor=executor)
    def f(xs):
        firsts = [call(x, 0.001) for x in xs]
        late = [call(x + "!", 0.01) for x in xs]  # still running when "bad" fails
        return firsts, late

    xs = ["a", "b", "c", "d"]
    warm(f, xs)
    for _ in range(3):
        log.clear()
        result, exc = outcome(f, ["a", "bad", "c", "d"] if fail else xs)
        with log.lock:
            active, events = log.active, list(log.events)
        assert active == 0, "a deferred call was still running after the function finished"
        assert Counter(e for e, _ in events)["start"] == Counter(e for e, _ in events)["end"]
        assert (exc is boom) if fail else (exc is None and result == f.__wrapped__(xs))
        assert _scheduling.live_invocations() == 0
    if executor is None:
        assert replays(f) >= 3


# == (b) concurrency ==========================================================================


def test_hundred_threads_fifty_calls_each_on_one_jitted_function():
    """100 threads calling one jitted function 50 times each all get their own results."""
    m = Model(latency=0.001)

    @jit
    def f(m, x):
        a = m("a", x)
        b = m("b", x)
        c = m("c", x)
        return [a, b, c]

    assert warm(f, m, "warm", times=3) == ["m(a, warm)", "m(b, warm)", "m(c, warm)"]
    assert f.stats().optimized == 1
    m.calls.clear()
    start = threading.Barrier(100, timeout=30)
    errors = []

    def worker(i):
        try:
            start.wait()
            for j in range(50):
                x = f"{i}.{j}" if i % 2 else j  # odd threads: a new signature, traced meanwhile
                got = f(m, x)
                assert got == [f"m(a, {x})", f"m(b, {x})", f"m(c, {x})"], got
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:3]
    assert Counter(m.calls) == Counter((k, f"{i}.{j}" if i % 2 else j) for i in range(100)
                                       for j in range(50) for k in "abc")
    strs, ints = f.stats().signatures
    assert (strs.calls, ints.calls) == (3 + 2500, 2500)
    assert strs.replays >= 2500


class NarrowPool(ThreadPoolExecutor):
    """A pool with ``threads`` worker threads that xcs plans for as if it were wide.

    On a real one-worker pool the planner rightly sees nothing to gain and runs
    plain, which would prove nothing about deadlocks; this pool makes every level
    replay while only ``threads`` threads exist.
    """

    def __init__(self, threads: int) -> None:
        super().__init__(64, thread_name_prefix="test-narrow")
        self.threads = threads

    def _adjust_thread_count(self) -> None:  # CPython's ThreadPoolExecutor spawns workers here
        if len(self._threads) < self.threads:
            super()._adjust_thread_count()


@pytest.mark.parametrize("workers", [1, 2])
def test_nested_jit_five_deep_does_not_deadlock_on_tiny_pools(workers):
    """Five levels of jitted functions, each replaying, finish on a 1- and a 2-worker pool."""
    pool = NarrowPool(workers)
    # 5 ms calls: with 1 ms ones, the outer levels' estimated gain (about 1.5x on two
    # workers) fell under 1.2x on a loaded machine and those levels stayed plain.
    m = Model(latency=0.005)

    @jit(executor=pool)
    def l1(x):
        return [m(x, k) for k in range(3)]

    def level(inner):
        @jit(executor=pool)
        def f(x):
            return [inner(f"{x}.{k}") for k in range(2)]
        return f

    l2 = level(l1)
    l3 = level(l2)
    l4 = level(l3)
    l5 = level(l4)
    expected = [[[[[f"m(r.{a}.{b}.{c}.{d}, {k})" for k in range(3)] for d in range(2)]
                  for c in range(2)] for b in range(2)] for a in range(2)]
    results, errors = [], []

    def run():
        try:
            # Bottom up, so each level is traced on fast callees; the top one too, so that
            # a trial that estimated too little on a loaded machine (1.16x once on two
            # workers) is traced again rather than left plain.
            for f in (l1, l2, l3, l4, l5):
                warm(f, "warm")
            for _ in range(3):
                results.append(l5("r"))
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join(60)
    try:
        assert not t.is_alive(), "deadlock: nested jitted calls did not finish"
        assert not errors, errors
        assert results == [expected] * 3
        assert all(replays(f) > 0 for f in (l1, l2, l3, l4, l5)), [str(f.stats()) for f in (l1, l5)]
        assert len(pool._threads) <= workers
    finally:
        pool.shutdown(wait=True)


def test_recursive_jitted_function_replays_and_matches_plain():
    """A recursive jitted function (calls to itself deferred) returns and calls as plain."""
    m = Model(latency=0.001)

    def tree(m, path, depth):
        if depth == 0:
            return m(path)
        kids = [tree(m, f"{path}{k}", depth - 1) for k in range(2)]
        return m(path, *kids)

    namespace = {"jit": jit}
    exec(textwrap.dedent("""
        @jit
        def tree(m, path, depth):
            if depth == 0:
                return m(path)
            kids = [tree(m, f"{path}{k}", depth - 1) for k in range(2)]
            return m(path, *kids)
    """), namespace)
    jitted = namespace["tree"]
    plain_m = Model(latency=0)
    expected = tree(plain_m, "r", 3)
    for _ in range(3):
        m.calls.clear()
        assert jitted(m, "r", 3) == expected
        assert m.sorted_calls() == plain_m.sorted_calls()
    assert_replayed(jitted)


def test_deferred_calls_see_the_callers_contextvars():
    """A deferred call, running on another thread, sees the caller's context variables."""
    var = contextvars.ContextVar("var", default="unset")
    overlap = threading.Barrier(3, timeout=5)
    threads = set()

    def read(x, together):
        if together:
            overlap.wait()
            threads.add(threading.get_ident())
        else:
            time.sleep(FAST)
        return f"{x}:{var.get()}"

    @jit
    def f(xs, together):
        return [read(x, together) for x in xs]

    var.set("trial")
    warm(f, [1, 2, 3], False)
    for value in ["a", "b"]:
        var.set(value)
        threads.clear()
        assert f([1, 2, 3], True) == [f"1:{value}", f"2:{value}", f"3:{value}"]
        assert threads - {threading.get_ident()}, "no call ran on another thread"


# == (c) what can be decorated ==================================================================


def test_functions_closures_and_lambdas_replay_as_plain():
    """Plain functions, closures over locals and lambdas return and call as without jit."""
    m = Model(latency=FAST)
    suffix = "!"

    def function(m, xs):
        return [m(x) for x in xs]

    def closure(xs):
        return [m(x + suffix) for x in xs]

    lam = lambda m, xs: [m(x, 1) for x in xs] + [m("tail")]  # noqa: E731
    for fn, args in ((function, (m, XS)), (closure, (XS,)), (lam, (m, XS))):
        jitted = jit(fn)
        expected = fn(*args)
        for _ in range(3):
            assert jitted(*args) == expected
        assert_replayed(jitted)


def test_methods_bind_as_functions_do():
    """A jitted method is a function on the class and binds to instances like one."""
    m = Model(latency=FAST)

    class Agent:
        def __init__(self, name):
            self.name = name

        @jit
        def ask(self, qs):
            return [m(self.name, q) for q in qs]

    agent = Agent("bob")
    assert inspect.isfunction(Agent.__dict__["ask"]) and Agent.ask is Agent.__dict__["ask"]
    bound = agent.ask
    assert bound.__self__ is agent and bound.__func__ is Agent.ask
    for _ in range(3):
        assert agent.ask(XS) == ms("bob")
        assert Agent.ask(Agent("al"), XS) == ms("al")
    assert_replayed(Agent.ask)


@pytest.mark.parametrize("order", ["jit-inside", "jit-outside"])
def test_staticmethod_and_classmethod_in_both_decorator_orders(order):
    """@staticmethod/@classmethod work above and below @jit, on the class and on instances."""
    m = Model(latency=FAST)

    def stat(xs):
        return [m("s", x) for x in xs]

    def clas(cls, xs):
        return [m(cls.__name__, x) for x in xs]

    if order == "jit-inside":
        members = {"stat": staticmethod(jit(stat)), "clas": classmethod(jit(clas))}
    else:
        members = {"stat": jit(staticmethod(stat)), "clas": jit(classmethod(clas))}
    Agent = type("Agent", (), members)
    Sub = type("Sub", (Agent,), {})
    assert isinstance(Agent.__dict__["stat"], staticmethod)
    assert isinstance(Agent.__dict__["clas"], classmethod)
    for _ in range(3):
        assert Agent.stat(XS) == Agent().stat(XS) == ms("s")
        assert Agent.clas(XS) == ms("Agent")
        assert Sub().clas(XS) == ms("Sub")
    assert_replayed(Agent.stat, Agent.clas.__func__)


def test_keyword_only_defaults_star_args_and_kwargs_as_plain():
    """Positional and keyword-only defaults, *args and **kwargs bind as in plain Python."""
    m = Model(latency=FAST)

    def f(m, x, y="y", *rest, z="z", **extra):
        return [m(x, y), m(z, *rest), m(*sorted(extra.items()))]

    jitted = jit(f)
    calls = [((m, 1), {}), ((m, 1, 2, 3, 4), {"z": 5, "w": 6}), ((m, 1), {"z": 7}),
             ((m,), {"x": 8, "y": 9, "q": 10}), ((m, 1), {})]
    for args, kwargs in calls * 2:
        assert jitted(*args, **kwargs) == f(*args, **kwargs)
    assert jitted.__kwdefaults__ == {"z": "z"} and jitted.__defaults__ == ("y",)
    assert_replayed(jitted)


def test_functions_from_other_modules_read_their_own_globals():
    """A function from another module keeps that module's globals, read at each call."""
    m = Model(latency=FAST)
    jitted = jit(_elsewhere.fan_out)
    assert jitted.__module__ == "tests._elsewhere" and jitted.__wrapped__ is _elsewhere.fan_out
    try:
        for prefix in ["p1", "p2", "p3"]:
            _elsewhere.PREFIX = prefix
            assert jitted(m, XS) == ms(prefix)
    finally:
        _elsewhere.PREFIX = "elsewhere"
    assert_replayed(jitted)
    assert jit(textwrap.dedent)("  a\n  b") == "a\nb"  # a stdlib function


def test_partials_and_callable_objects_replay_as_plain():
    """functools.partial objects and instances with __call__ keep their bound arguments."""
    m = Model(latency=FAST)

    def fan(m, prefix, xs):
        return [m(prefix, x) for x in xs]

    part = jit(functools.partial(fan, m, "p"))
    assert isinstance(part, functools.partial) and part.args[1:] == ("p",)

    class Fanner:
        def __init__(self, prefix):
            self.prefix = prefix

        def __call__(self, xs):
            return [m(self.prefix, x) for x in xs]

    obj = Fanner("o")
    call = jit(obj)
    for _ in range(3):
        assert part(XS) == ms("p")
        assert call(XS) == ms("o")
    obj.prefix = "changed"
    assert call(["c"]) == ["m(changed, c)"]
    assert_replayed(part.func, call.__func__)


@pytest.mark.parametrize("builtin, args", [(len, ([1, 2],)), (sorted, ([3, 1, 2],)),
                                           (max, (1, 5, 2))])
def test_builtins_run_plain_with_one_warning(builtin, args):
    """A builtin has no bytecode: jit returns a plain wrapper, warns once, results unchanged."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jitted = jit(builtin)
        results = [jitted(*args) for _ in range(3)]
    assert results == [builtin(*args)] * 3
    assert [w.category for w in caught] == [XcsWarning]
    assert builtin.__name__ in str(caught[0].message)
    assert jitted.stats().reason and "not a Python function" in jitted.stats().reason


@pytest.mark.parametrize("kind", ["generator", "coroutine", "async generator"])
def test_generator_coroutine_and_async_generator_functions_are_refused(kind):
    """Generator, coroutine and async generator functions raise TypeError naming them."""
    source = {"generator": "def load_pages():\n    yield 1\n",
              "coroutine": "async def load_pages():\n    return 1\n",
              "async generator": "async def load_pages():\n    yield 1\n"}[kind]
    namespace: dict = {}
    exec(source, namespace)
    with pytest.raises(TypeError, match=rf"cannot jit 'load_pages': {kind} functions are not supported"):
        jit(namespace["load_pages"])


def test_misuse_raises_type_errors_naming_the_offender():
    """jit(3) and jit(executor="x") raise TypeError (and XcsError) naming what is wrong."""
    with pytest.raises(TypeError, match=r"cannot jit 3: expected a function, not int") as info:
        jit(3)
    assert isinstance(info.value, XcsError)
    with pytest.raises(TypeError,
                       match=r"executor must be a concurrent.futures.Executor, not str: 'x'") as info:
        jit(executor="x")
    assert isinstance(info.value, XcsError)
    with pytest.raises(TypeError, match=r"not str: 'x'"):
        jit(lambda: 1, executor="x")


# == (d) arguments ==============================================================================


def test_unhashable_arguments_are_traced_once_and_replayed():
    """Lists, dicts, sets and unhashable objects as arguments: one trial, then replays."""
    m = Model(latency=FAST)

    class Unhashable:
        __hash__ = None

        def __init__(self, v):
            self.v = v

    @jit
    def f(m, xs, opts, tags, obj):
        return [m(x, opts["k"], sorted(tags), obj.v) for x in xs]

    for i in range(4):
        args = (m, XS, {"k": i}, {i, i + 1}, Unhashable(i))
        assert f(*args) == f.__wrapped__(*args)
    (sig,) = f.stats().signatures
    assert (sig.trials, sig.replays) == (1, 3)


@pytest.mark.parametrize("hashable", [True, False])
def test_instances_of_user_classes_do_not_retrace(hashable):
    """Each call with a new instance of a user class reuses the signature's plan."""
    m = Model(latency=FAST)

    class Doc:
        def __init__(self, text):
            self.text = text

    if not hashable:
        Doc.__eq__ = lambda self, other: isinstance(other, Doc) and other.text == self.text
        Doc.__hash__ = None  # as a class defining __eq__ (a dataclass) has

    @jit
    def read(m, doc, others):
        return [m(doc.text, o.text) for o in others]

    for i in range(6):
        assert read(m, Doc(f"d{i}"), [Doc("x"), Doc("y")]) == [f"m(d{i}, x)", f"m(d{i}, y)"]
    (sig,) = read.stats().signatures
    assert (sig.trials, sig.replays, sig.status) == (1, 5, "optimized")


def test_numpy_arrays_as_arguments_and_results():
    """numpy arrays flow into and out of deferred calls unchanged (needs numpy)."""
    import numpy as np

    calls = []
    lock = threading.Lock()

    def embed(row, scale):
        with lock:
            calls.append((row.tobytes(), scale))
        time.sleep(FAST)
        return row * scale

    def f(matrix, scale):
        rows = [embed(row, scale) for row in matrix]
        total = rows[0] + rows[-1]
        return rows, total, total.dtype, matrix.shape

    jitted = jit(f)
    for shape, dtype in [((3, 4), np.float64), ((3, 4), np.float64), ((5, 2), np.int32),
                         ((2, 3), np.float32), ((4, 4), np.float64)]:
        matrix = np.arange(np.prod(shape), dtype=dtype).reshape(shape)
        calls.clear()
        got = jitted(matrix, 2)
        got_calls = sorted(calls)
        calls.clear()
        want = f(matrix, 2)
        assert sorted(calls) == got_calls
        assert all(type(r) is np.ndarray and np.array_equal(r, w) and r.dtype == w.dtype
                   for r, w in zip(got[0], want[0], strict=True))
        assert np.array_equal(got[1], want[1]) and got[2:] == want[2:]
    assert_replayed(jitted)


def test_huge_list_arguments_stay_fast():
    """A 10**6-element list argument costs a replay about what a 10-element list does."""
    m = Model(latency=FAST)

    def keep(big, i):
        time.sleep(FAST)
        return f"{i}:{len(big)}"

    @jit
    def passes(big):
        return [keep(big, i) for i in range(8)]

    @jit
    def reads(m, big):
        return [m(len(big), i) for i in range(8)] + [m(big[-1]), keep(big, -1)]

    def fastest(f, *args):
        expected = getattr(f, "__wrapped__", f)(*args)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            assert f(*args) == expected
            times.append(time.perf_counter() - start)
        return min(times)

    small, big = list(range(10)), list(range(10**6))
    for f, args in ((passes, ()), (reads, (m,))):
        warm(f, *args, small)
        plain = fastest(f.__wrapped__, *args, big)
        took_small, took_big = fastest(f, *args, small), fastest(f, *args, big)
        assert_replayed(f)
        assert took_big < took_small + plain + 0.1, (f.__name__, plain, took_small, took_big)


def test_arguments_whose_eq_and_hash_raise():
    """Arguments and results whose __eq__, __hash__ and __bool__ raise are passed through."""
    m = Model(latency=FAST)

    class Hostile:
        def __init__(self, v):
            self.v = v

        def __eq__(self, other):
            raise RuntimeError("no eq")

        def __hash__(self):
            raise RuntimeError("no hash")

        def __bool__(self):
            raise RuntimeError("no bool")

    def make(x):
        time.sleep(FAST)
        return Hostile(x)

    @jit
    def f(m, h, xs):
        objs = [make(x) for x in xs]
        return [m(o.v, h.v, o is h) for o in objs], objs

    for i in range(4):
        h = Hostile(i)
        got, objs = f(m, h, XS)
        assert got == [f"m({x}, {i}, False)" for x in XS]
        assert [type(o) for o in objs] == [Hostile] * 4 and [o.v for o in objs] == XS
    assert_replayed(f)


def test_argument_whose_metaclass_hash_raises_runs_plain():
    """An argument whose type cannot be hashed runs plain, silently, with the same results."""
    m = Model(latency=FAST)

    class Meta(type):
        def __hash__(cls):
            raise TypeError("unhashable type object")

        def __eq__(cls, other):
            raise TypeError("no eq")

    class Odd(metaclass=Meta):
        pass

    @jit
    def f(m, o, xs):
        return [m(x, type(o).__name__) for x in xs]

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            m.calls.clear()
            assert f(m, Odd(), ["a", "b"]) == ["m(a, Odd)", "m(b, Odd)"]
            assert m.calls == [("a", "Odd"), ("b", "Odd")]


def test_plan_cache_is_bounded_to_max_signatures():
    """At most MAX_SIGNATURES signatures are kept; the oldest go first and come back traced."""
    m = Model(latency=0)
    limit = _function.MAX_SIGNATURES
    types = [type(f"T{i}", (), {}) for i in range(limit + 36)]

    @jit
    def f(m, obj):
        return [m(type(obj).__name__, k) for k in range(2)]

    for t in types:
        assert f(m, t()) == [f"m({t.__name__}, 0)", f"m({t.__name__}, 1)"]
    stats = f.stats()
    assert stats.cached == limit
    assert [s.signature for s in stats.signatures] == [f"(m: Model, obj: {t.__name__})"
                                                       for t in types[-limit:]]
    assert f(m, types[0]()) == ["m(T0, 0)", "m(T0, 1)"]
    stats = f.stats()
    assert stats.cached == limit and stats.signatures[-1].signature.endswith("obj: T0)")


def test_stats_report_no_replay_for_a_plain_signature():
    """A signature planned plain reports no replays and no measured speedup."""
    m = Model(latency=FAST)

    @jit
    def chain(m, x):
        a = m(x)
        b = m(a)
        return m(b)

    for _ in range(4):
        chain(m, "x")
    (sig,) = chain.stats().signatures
    if isinstance(_executors.default_executor(), _executors.Throttle):
        # On a throttle every slow call goes through it, or it would not count against
        # the cap: the chain is deferred, one call at a time.
        assert sig.status == "optimized" and sig.replays == 3 and sig.deferred_sites
        return
    assert sig.status == "plain" and sig.reason
    assert (sig.replays, sig.measured_speedup, sig.deferred_sites) == (0, None, ())


def test_stats_count_exactly_the_replays_that_ran():
    """``replays`` equals the number of calls in which deferred calls really overlapped."""
    m = Model(latency=FAST)
    overlapped = 0

    @jit
    def f(m, xs):
        return [m(x) for x in xs]

    f(m, ["a", "b", "c"])  # the trial
    (sig,) = f.stats().signatures
    assert (sig.trials, sig.replays, sig.measured_speedup) == (1, 0, None)
    for _ in range(4):
        m.expect_overlap(3)  # each call finishes only if all three run at once
        assert f(m, ["a", "b", "c"]) == ["m(a)", "m(b)", "m(c)"]
        overlapped += 1
    m.barrier = None
    (sig,) = f.stats().signatures
    assert (sig.status, sig.trials, sig.replays, sig.calls) == ("optimized", 1, overlapped, 5)
    assert sig.measured_speedup is not None and sig.estimated_speedup > 1


def test_stats_do_not_count_a_refused_replay():
    """A call whose executor refused work ran plain: it is not reported as a replay."""
    pool = ThreadPoolExecutor(4, thread_name_prefix="test-pool")
    m = Model(latency=FAST)

    @jit(executor=pool)
    def f(m, xs):
        return [m(x) for x in xs]

    warm(f, m, ["a", "b", "c"])
    before = f.stats().signatures[0].replays
    assert before == 1
    pool.shutdown(wait=True)
    with pytest.warns(XcsWarning, match="refused"):
        assert f(m, ["a", "b", "c"]) == ["m(a)", "m(b)", "m(c)"]
    (sig,) = f.stats().signatures
    assert sig.status == "plain" and "refused" in sig.reason
    assert sig.replays == before, "a call that ran every callee in place was counted as a replay"
    assert sig.measured_speedup is None


# == (e) frame-sensitive code ===================================================================


def capture_warnings(fn, *args):
    """``[(filename, lineno, message)]`` of the warnings ``fn(*args)`` issues."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome(fn, *args)
    return [(w.filename, w.lineno, str(w.message)) for w in caught
            if not issubclass(w.category, XcsWarning)]


def test_warning_stacklevel_in_the_body_points_where_plain_does():
    """warnings.warn(stacklevel=1/2) in a replayed body blames the lines plain Python blames."""
    m = Model(latency=FAST)

    def f(m, xs):
        out = [m(x) for x in xs]
        warnings.warn("in body", stacklevel=1)
        warnings.warn("at caller", stacklevel=2)
        return out

    jitted = jit(f)
    expected = capture_warnings(f, m, XS)
    assert [w[2] for w in expected] == ["in body", "at caller"]
    for _ in range(3):
        assert capture_warnings(jitted, m, XS) == expected
    assert_replayed(jitted)


def callee_bodies(fetch, m):
    """Two shapes of a function whose slow callee ``fetch`` reads its caller's frame:
    straight-line calls and a comprehension (its own frame before 3.12); ``m`` is an
    ordinary slow callee, called eight times so that the function replays (well above
    1.2x) whatever xcs does with fetch (which may be CPU-bound: inspect.stack)."""

    def calls(xs):
        a = fetch(xs[0])
        b = fetch(xs[1])
        c = fetch(xs[2])
        return [a, b, c, *[m(k) for k in "stuvwxyz"]]

    def comprehension(xs):
        return [fetch(x) for x in xs] + [m(k) for k in range(8)]

    return [calls, comprehension]


@pytest.mark.parametrize("shape", [0, 1], ids=["calls", "comprehension"])
def test_warning_stacklevel_in_a_deferred_callee_points_where_plain_does(shape):
    """A slow callee that warns with stacklevel=2 blames the function's line, as plain does."""

    def fetch(x):
        time.sleep(FAST)
        warnings.warn(f"deprecated {x}", DeprecationWarning, stacklevel=2)
        return x

    f = callee_bodies(fetch, Model(latency=FAST))[shape]
    jitted = jit(f)
    expected = sorted(capture_warnings(f, XS))  # concurrent callees warn in any order
    assert {w[0] for w in expected} == {__file__} and len(expected) >= 3
    for _ in range(8):  # until two replays were compared (a stalled trial traces again)
        assert sorted(capture_warnings(jitted, XS)) == expected
        if replays(jitted) >= 2:
            break
        retrace_if_unlucky(jitted)
    assert_replayed(jitted)


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def capture_logs(fn, *args):
    """``[(pathname, lineno, funcName, message)]`` of what ``fn(*args)`` logs."""
    logger = logging.getLogger("xcs-contract")
    handler = Records()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        outcome(fn, *args)
    finally:
        logger.removeHandler(handler)
    return sorted((r.pathname, r.lineno, r.funcName, r.getMessage()) for r in handler.records)


def test_logging_caller_in_the_body_is_the_plain_caller():
    """A log record made in a replayed body names the body's file, line and function."""
    log = logging.getLogger("xcs-contract")
    m = Model(latency=FAST)

    def answer(m, xs):
        drafts = [m(x) for x in xs]
        log.info("drafts %s", drafts)
        log.warning("caller", stacklevel=2)
        return drafts

    jitted = jit(answer)
    expected = capture_logs(answer, m, XS)
    assert {r[2] for r in expected} == {"answer", "outcome"}
    for _ in range(3):
        assert capture_logs(jitted, m, XS) == expected
    assert_replayed(jitted)


@pytest.mark.parametrize("shape", [0, 1], ids=["calls", "comprehension"])
def test_logging_caller_in_a_deferred_callee_is_the_plain_caller(shape):
    """A slow callee logging with stacklevel=2 names the function's line, as plain does."""
    log = logging.getLogger("xcs-contract")

    def fetch(x):
        time.sleep(FAST)
        log.info("fetched %s", x)  # the callee's own line
        log.info("called for %s", x, stacklevel=2)  # its caller's line
        return x

    answer = callee_bodies(fetch, Model(latency=FAST))[shape]
    jitted = jit(answer)
    expected = capture_logs(answer, XS)
    assert "fetch" in {r[2] for r in expected} and len({r[2] for r in expected}) == 2
    for _ in range(3):
        assert capture_logs(jitted, XS) == expected
    assert_replayed(jitted)


def test_zero_argument_super_in_a_replayed_method():
    """super() without arguments works in a jitted method whose calls are deferred."""
    m = Model(latency=FAST)

    class Base:
        def prompt(self, x):
            return f"base {x}"

    class Agent(Base):
        @jit
        def run(self, xs):
            prompt = super().prompt
            drafts = [m(prompt(x)) for x in xs]
            first = m(super().prompt(xs[0]))
            second = m(super().prompt(xs[1]))
            return [*drafts, first, second, m(super().prompt("judge"), *drafts)]

        def prompt(self, x):
            return f"agent {x}"

    expected = Agent.run.__wrapped__(Agent(), XS)
    assert expected[0] == "m(base a)"
    for _ in range(3):
        assert Agent().run(XS) == expected
    assert_replayed(Agent.run)


def test_zero_argument_super_in_a_comprehension_as_plain():
    """super() inside a comprehension does what it does plainly (an error before 3.12)."""

    class Base:
        def prompt(self, x):
            return f"base {x}"

    class Agent(Base):
        def run(self, m, xs):
            return [m(super().prompt(x)) for x in xs]

    jitted = jit(Agent.run)
    m = Model(latency=FAST)
    expected = outcome(Agent.run, Agent(), m, XS)
    for _ in range(3):
        got = outcome(jitted, Agent(), m, XS)
        assert got[0] == expected[0]
        assert (type(got[1]), str(got[1])) == (type(expected[1]), str(expected[1]))


def test_locals_in_the_body_never_shows_a_placeholder():
    """locals() in the body sees results, never placeholders (the function runs plain)."""
    m = Model(latency=FAST)

    def f(m, xs):
        a = m("a")
        b = [m(x) for x in xs]
        seen = dict(locals())
        return a, b, seen

    jitted = jit(f)
    expected = f(m, ["x", "y"])
    for _ in range(3):
        got = jitted(m, ["x", "y"])
        assert got == expected
        assert not any(isinstance(v, Pending) for v in [got[0], *got[1], *got[2].values()])
    (sig,) = jitted.stats().signatures
    assert sig.status == "plain" and "frame" in sig.reason  # docs/contract.md: runs as written


def test_sys_getframe_in_the_body_sees_the_plain_frames():
    """sys._getframe() in a replayed body: its own frame, its caller, its locals' names."""
    m = Model(latency=FAST)

    def f(m, xs):
        out = [m(x) for x in xs]
        frame = sys._getframe()
        return out, frame.f_code.co_name, frame.f_back.f_code.co_name, sorted(frame.f_code.co_varnames)

    jitted = jit(f)
    expected, _ = outcome(f, m, XS)
    assert expected[1:3] == ("f", "outcome")
    for _ in range(3):
        assert outcome(jitted, m, XS) == (expected, None)
    assert_replayed(jitted)


@pytest.mark.parametrize("shape", [0, 1], ids=["calls", "comprehension"])
def test_sys_getframe_in_a_deferred_callee_sees_the_plain_frames(shape):
    """A slow callee reading sys._getframe(1) sees the jitted function's frame, as plain."""

    def fetch(x):
        time.sleep(FAST)
        caller = sys._getframe(1)
        return x, caller.f_code.co_name, caller.f_lineno, caller.f_code.co_filename

    f = callee_bodies(fetch, Model(latency=FAST))[shape]
    jitted = jit(f)
    expected = f(XS)
    assert expected[0][1] in ("calls", "<listcomp>", "comprehension")
    for _ in range(3):
        assert jitted(XS) == expected
    assert_replayed(jitted)


def stack_names(stop: str) -> list[str]:
    """The functions on the calling thread's stack, innermost first, down to ``stop``."""
    names = [fi.function for fi in inspect.stack(0)][1:]
    return names[:names.index(stop)] if stop in names else names


def test_inspect_stack_in_the_body_as_plain():
    """inspect.stack() in a replayed body names the same functions as without jit."""
    m = Model(latency=FAST)

    def f(m, xs):
        out = [m(x) for x in xs]
        return out, stack_names("outcome")

    jitted = jit(f)
    expected = outcome(f, m, XS)
    assert expected[0][1] == ["f"]
    for _ in range(3):
        assert outcome(jitted, m, XS) == expected
    assert_replayed(jitted)


@pytest.mark.parametrize("shape", [0, 1], ids=["calls", "comprehension"])
def test_inspect_stack_in_a_deferred_callee_names_its_caller_as_plain(shape):
    """inspect.stack() in a slow callee: its caller is the call site's code, as plain.

    A deferred callee runs on a worker thread: the frame above it is named like
    the code holding the call site, in its file, at its line; the frames above
    that are the worker's (docs/contract.md, "What callees must tolerate").
    """

    def fetch(x):
        time.sleep(FAST)
        return x, stack_names("outcome")[:2]

    f = callee_bodies(fetch, Model(latency=FAST))[shape]
    jitted = jit(f)
    expected = outcome(f, XS)
    assert expected[0][0][1][0] == "fetch"
    for _ in range(8):  # until two replays were compared (a stalled trial traces again)
        assert outcome(jitted, XS) == expected
        if replays(jitted) >= 2:
            break
        retrace_if_unlucky(jitted)
    assert_replayed(jitted)


def test_recursion_limit_is_reached_within_a_few_frames_of_plain():
    """A jitted recursive function hits RecursionError at nearly the plain depth."""
    namespace = {"jit": jit}
    exec(textwrap.dedent("""
        def plain(n):
            return 0 if n == 0 else 1 + plain(n - 1)

        @jit
        def jitted(n):
            return 0 if n == 0 else 1 + jitted(n - 1)
    """), namespace)

    def deepest(fn):
        lo, hi = 1, 2000
        while lo < hi:
            mid = (lo + hi + 1) // 2
            try:
                fn(mid)
                lo = mid
            except RecursionError:
                hi = mid - 1
        return lo

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(400)
    try:
        deepest(namespace["jitted"])  # trace first
        plain, jitted = deepest(namespace["plain"]), deepest(namespace["jitted"])
    finally:
        sys.setrecursionlimit(old)
    assert plain < 400 and abs(plain - jitted) <= 3, (plain, jitted)


# == (f) fault injection ========================================================================


def run_with_fault(make, args_list, expected_reason):
    """Call the jitted ``make()`` on each args; return its stats and the XcsWarnings issued."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = make()
        results = [outcome(f, *args) for args in args_list]
    xcs_warnings = [w for w in caught if issubclass(w.category, XcsWarning)]
    return f, results, xcs_warnings


def fan(m, xs):
    return [m(x) for x in xs]


def check_fallback(f, results, caught, reason, m, args_list):
    """Results as plain, exactly one XcsWarning naming ``reason``, the reason recorded."""
    plain_m = Model(latency=0)
    for (result, exc), args in zip(results, args_list, strict=True):
        assert exc is None and result == fan(plain_m, *args[1:])
    assert sorted(m.calls) == sorted(plain_m.calls)
    assert len(caught) == 1, [str(w.message) for w in caught]
    assert reason in str(caught[0].message)
    stats = f.stats()
    recorded = [stats.reason, *(s.reason for s in stats.signatures)]
    assert any(r and reason in r for r in recorded), stats
    assert reason in f.explain()


ARGS = [(["a", "b", "c"],), (["d", "e"],), (["f", "g", "h"],), (["i"],)]


def test_rewrite_failure_runs_plain_with_one_warning_and_the_reason(monkeypatch):
    """A code object the rewrite cannot handle: plain results, one warning, reason in stats."""
    from xcs._rewrite import Program, RewriteError

    def broken(self, *args, **kwargs):
        raise RewriteError("simulated rewrite failure")

    monkeypatch.setattr(Program, "combine", broken)
    m = Model(latency=FAST)
    args = [(m, *a) for a in ARGS]
    f, results, caught = run_with_fault(lambda: jit(fan), args, "simulated rewrite failure")
    check_fallback(f, results, caught, "simulated rewrite failure", m, args)


def test_unexpected_error_while_analysing_bytecode_runs_plain(monkeypatch):
    """Any exception during analysis (not only RewriteError) makes the function run plain."""

    def broken(*args, **kwargs):
        raise IndexError("simulated analysis bug")

    monkeypatch.setattr("xcs._rewrite.simulate", broken)
    m = Model(latency=FAST)
    args = [(m, *a) for a in ARGS]
    f, results, caught = run_with_fault(lambda: jit(fan), args, "simulated analysis bug")
    check_fallback(f, results, caught, "simulated analysis bug", m, args)


@pytest.mark.parametrize("hook", ["before", "after", "use", "finish"])
def test_tracer_failure_runs_plain_with_one_warning_and_the_reason(monkeypatch, hook):
    """A failing trace hook (Recorder.before/after/use/finish): plain results, one warning."""
    from xcs._trace import Recorder

    def broken(self, *args, **kwargs):
        raise RuntimeError(f"simulated {hook} failure")

    monkeypatch.setattr(Recorder, hook, broken)
    m = Model(latency=FAST)
    args = [(m, *a) for a in ARGS]
    f, results, caught = run_with_fault(lambda: jit(fan), args, f"simulated {hook} failure")
    check_fallback(f, results, caught, f"simulated {hook} failure", m, args)
    assert f.stats().signatures[0].status == "plain"


class RefusingPool(ThreadPoolExecutor):
    """A thread pool that starts refusing work when told to."""

    refuse = False

    def submit(self, fn, /, *args, **kwargs):
        if self.refuse:
            raise RuntimeError("simulated submit refusal")
        return super().submit(fn, *args, **kwargs)


class RefusingExecutor(Executor):
    """An executor that is not a thread pool: runs work on new threads, or refuses it."""

    refuse = False

    def submit(self, fn, /, *args, **kwargs):
        if self.refuse:
            raise RuntimeError("simulated submit refusal")
        future: Future = Future()

        def run():
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as exc:
                    future.set_exception(exc)

        threading.Thread(target=run).start()
        return future


ECHO_CALLS: list = []
ECHO_LOCK = threading.Lock()


class Echo:
    """A slow, picklable callee (executors other than thread pools may pickle calls)."""

    def __call__(self, x):
        with ECHO_LOCK:
            ECHO_CALLS.append(x)
        time.sleep(FAST)
        return f"echo({x})"


@pytest.mark.parametrize("how", ["raises-on-submit", "foreign-raises-on-submit", "shut-down"])
def test_executor_that_refuses_work_runs_plain_in_program_order(how):
    """A refusing or shut-down executor: plain, in order, one warning, reason recorded."""
    pool = RefusingExecutor() if how.startswith("foreign") else RefusingPool(
        4, thread_name_prefix="test-pool")
    m = Echo()
    f = jit(fan, executor=pool)
    try:
        warm(f, m, XS)
        assert_replayed(f)
        if how == "shut-down":
            pool.shutdown(wait=True)
        else:
            pool.refuse = True
        ECHO_CALLS.clear()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results = [outcome(f, m, *a) for a in ARGS]
    finally:
        if isinstance(pool, ThreadPoolExecutor):
            pool.shutdown(wait=True)
    assert results == [([f"echo({x})" for x in a[0]], None) for a in ARGS]
    assert [x for a in ARGS for x in a[0]] == ECHO_CALLS  # program order
    caught = [w for w in caught if issubclass(w.category, XcsWarning)]
    assert len(caught) == 1 and "refused" in str(caught[0].message), caught
    (sig,) = f.stats().signatures
    assert sig.status == "plain" and "refused" in sig.reason and "refused" in f.explain()


def test_internal_error_in_dispatch_runs_plain_with_the_reason(monkeypatch):
    """An internal error while choosing the body: plain results, one warning, reason recorded."""

    def broken(self, *args, **kwargs):
        raise RuntimeError("simulated dispatch failure")

    monkeypatch.setattr(_function.Function, "_new_entry", broken)
    m = Model(latency=FAST)
    args = [(m, *a) for a in ARGS]
    f, results, caught = run_with_fault(lambda: jit(fan), args, "simulated dispatch failure")
    check_fallback(f, results, caught, "simulated dispatch failure", m, args)


def test_internal_error_while_deferring_runs_plain(monkeypatch):
    """An internal error when a replay defers a call: plain results, one warning, reason."""
    m = Model(latency=FAST)
    f = jit(fan)
    warm(f, m, ["w", "x", "y"])
    assert_replayed(f)
    m.calls.clear()

    def broken(self, *args, **kwargs):
        raise RuntimeError("simulated defer failure")

    monkeypatch.setattr(_replay.Invocation, "defer", broken)
    args = [(m, *a) for a in ARGS]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [outcome(f, *a) for a in args]
    caught = [w for w in caught if issubclass(w.category, XcsWarning)]
    check_fallback(f, results, caught, "simulated defer failure", m, args)
