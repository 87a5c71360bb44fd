"""xcs.throttle: a cap on calls in flight and on their start rate, shared by every user.

Overlap is proven with barriers, never with timings; the rate is checked on
the start times the callees see, with wide margins (a loaded machine delays a
thread after it may start, never before).
"""

from __future__ import annotations

import decimal
import itertools
import threading
import time
from concurrent.futures import CancelledError, Executor, Future, ThreadPoolExecutor

import openai
import pytest

import xcs
from xcs import jit

from .openai_server import ChatServer, completion_text

BARRIER_TIMEOUT = 10.0  # seconds: a barrier that times out means the calls did not overlap


class Meter:
    """What a callee records: how many run at once, the most ever, and when each started."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.starts: list[float] = []
        self.order: list[object] = []

    def __enter__(self) -> Meter:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.starts.append(time.monotonic())
        return self

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.running -= 1

    def reset(self) -> None:
        with self.lock:
            self.peak = self.running
            self.starts.clear()
            self.order.clear()


# -- arguments -----------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "error", "named"), [
    ({}, ValueError, "needs a limit"),
    ({"max_in_flight": 0}, ValueError, "max_in_flight must be at least 1, not 0"),
    ({"max_in_flight": 2.5}, TypeError, "max_in_flight must be an int, not float"),
    ({"max_in_flight": True}, TypeError, "max_in_flight must be an int, not bool"),
    ({"per_second": 0}, ValueError, "per_second must be a positive finite number, not 0"),
    ({"per_second": -3}, ValueError, "per_second must be a positive finite number, not -3"),
    ({"per_minute": float("nan")}, ValueError, "per_minute must be a positive finite number, not nan"),
    ({"per_minute": float("inf")}, ValueError, "per_minute must be a positive finite number"),
    ({"per_second": "10"}, TypeError, "per_second must be a number, not str"),
    ({"per_second": 10**400}, ValueError, "per_second must be a positive finite number, not 1000"),
    ({"per_minute": decimal.Decimal("sNaN")}, ValueError,
     "per_minute must be a positive finite number, not Decimal"),
    ({"executor": "pool", "max_in_flight": 2}, TypeError,
     "executor must be a concurrent.futures.Executor, not str"),
])
def test_bad_arguments_are_refused_with_the_offender_named(kwargs, error, named):
    with pytest.raises(error, match=named.replace("(", r"\(")):
        xcs.throttle(**kwargs)


def test_a_throttle_is_an_executor_that_runs_what_it_is_given():
    with ThreadPoolExecutor(4) as pool:
        throttle = xcs.throttle(pool, max_in_flight=2)
        futures = [throttle.submit(pow, 2, k) for k in range(10)]
        assert [f.result(timeout=10) for f in futures] == [2 ** k for k in range(10)]
        failing = throttle.submit(int, "x")
        with pytest.raises(ValueError, match="invalid literal"):
            failing.result(timeout=10)
        throttle.shutdown()
        with pytest.raises(RuntimeError, match="after shutdown"):
            throttle.submit(pow, 2, 2)
        assert pool.submit(pow, 3, 2).result() == 9  # the wrapped pool is not shut down


# -- the cap --------------------------------------------------------------------------


def test_the_cap_holds_exactly_across_two_jitted_functions_on_two_threads():
    """Peak in flight is exactly the cap: a barrier of 3 proves 3 run at once, the meter
    that never more do, while two functions on two threads share the throttle."""
    cap = 3
    meter = Meter()
    barrier: list[threading.Barrier] = []

    def llm(x):
        with meter:
            if barrier:
                barrier[0].wait(BARRIER_TIMEOUT)
            time.sleep(0.005)
        return f"<{x}>"

    throttle = xcs.throttle(max_in_flight=cap)

    @jit(executor=throttle)
    def drafts(n):
        return [llm(f"draft {i}") for i in range(n)]

    @jit(executor=throttle)
    def summaries(docs):
        return {d: llm(d) for d in docs}

    docs = [f"doc {i}" for i in range(6)]
    expected = (drafts.__wrapped__(6), summaries.__wrapped__(docs))
    assert (drafts(6), summaries(docs)) == expected  # the trials
    barrier.append(threading.Barrier(cap))
    meter.reset()
    results: dict[str, object] = {}
    threads = [threading.Thread(target=lambda: results.update(a=drafts(6))),
               threading.Thread(target=lambda: results.update(b=summaries(docs)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not barrier[0].broken, "fewer than 3 calls ever ran at once"
    assert (results["a"], results["b"]) == expected
    assert meter.peak == cap
    assert drafts.stats().signatures[0].replays == summaries.stats().signatures[0].replays == 1


def test_the_trial_of_a_throttled_function_counts_against_the_cap():
    """A trial runs its calls in the body's thread: they take the throttle's slots too,
    so a replay on one thread and a trial on another never exceed the cap together."""
    meter = Meter()
    throttle = xcs.throttle(max_in_flight=1)
    entered = threading.Event()
    release = threading.Event()

    def llm(x):
        with meter:
            if x == "hold":
                entered.set()
                assert release.wait(BARRIER_TIMEOUT)
            time.sleep(0.002)
        return x

    @jit(executor=throttle)
    def one(xs):
        return [llm(x) for x in xs]

    holder = throttle.submit(llm, "hold")  # takes the only slot
    assert entered.wait(BARRIER_TIMEOUT)
    done = threading.Event()
    box: dict[str, object] = {}

    def trial() -> None:
        box["value"] = one(["a", "b"])
        done.set()

    thread = threading.Thread(target=trial)
    thread.start()
    assert not done.wait(0.2), "the trial's call ran while the throttle's only slot was taken"
    release.set()
    thread.join(30)
    assert holder.result(timeout=10) == "hold" and box["value"] == ["a", "b"]
    assert meter.peak == 1


def _nested(outer_executor, inner_executor, meter):
    """A jitted ``outer(xs)`` whose calls are a jitted ``inner(x)`` making two model calls:
    ``[4x + 2 for x in xs]``."""

    def llm(x):
        with meter:
            time.sleep(0.003)
        return x * 2

    @jit(executor=inner_executor)
    def inner(x):
        return llm(x) + llm(x + 1)

    @jit(executor=outer_executor)
    def outer(xs):
        return [inner(x) for x in xs]

    return outer


def test_a_nested_jitted_function_on_a_one_slot_throttle_does_not_deadlock():
    """An outer call deferred on the throttle waits for its own deferred calls: it runs
    them in the slot it holds instead of waiting for a slot that never frees."""
    meter = Meter()
    throttle = xcs.throttle(max_in_flight=1)
    outer = _nested(throttle, throttle, meter)
    expected = [4 * x + 2 for x in range(4)]
    for _ in range(3):
        box: dict[str, object] = {}
        thread = threading.Thread(target=lambda box=box: box.update(v=outer(list(range(4)))))
        thread.start()
        thread.join(30)
        assert not thread.is_alive(), "deadlock: the outer call waited for a slot it held"
        assert box["v"] == expected
    assert meter.peak == 1
    assert outer.stats().signatures[0].replays >= 1


# -- the rate ---------------------------------------------------------------------------


def test_starts_are_spaced_by_the_rate_with_no_burst():
    rate = 20.0  # a start every 50 ms
    meter = Meter()

    def tool(x):
        with meter:
            time.sleep(0.001)
        return -x

    @jit(executor=xcs.throttle(per_second=rate))
    def batch(n):
        return [tool(i) for i in range(n)]

    assert batch(8) == [-i for i in range(8)]  # the trial: spaced too
    trial = sorted(meter.starts)
    meter.reset()
    assert batch(8) == [-i for i in range(8)]
    assert batch.stats().signatures[0].replays == 1
    for starts in (trial, sorted(meter.starts)):
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert min(gaps) > 0.25 / rate, gaps  # no burst (a late thread only widens a gap)
        assert starts[-1] - starts[0] >= 0.95 * 7 / rate, gaps


def test_per_minute_and_per_second_together_take_the_stricter():
    throttle = xcs.throttle(per_second=100, per_minute=600)
    assert throttle.interval == pytest.approx(0.1)
    throttle = xcs.throttle(per_second=5, per_minute=6000)
    assert throttle.interval == pytest.approx(0.2)


def _ask(client, prompt):
    reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": prompt}])
    return reply.choices[0].message.content


def test_a_rate_limited_server_refuses_nothing_through_the_throttle():
    """The loopback server answers 429 above 5 requests in any 0.5 s: the default pool
    gets 429s, the throttle at 8 per second none, with the plain results."""
    prompts = [f"ticket {i}" for i in range(10)]
    expected = [completion_text("m", [{"role": "user", "content": p}]) for p in prompts]
    # 60 ms a request: the client's own CPU per request (5 ms here, more on a slower
    # machine) stays far under the CPU-bound bar (20% of the call); at 20 ms it sat at 19%
    # and a slower CI machine planned the site CPU-bound, so plain.
    with ChatServer(latency=0.06, rate=(5, 0.5)) as server, \
            openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0) as client:

        def summarize(client, prompts):
            return [_ask(client, p) for p in prompts]

        throttled = jit(executor=xcs.throttle(per_second=8))(summarize)
        # Trials (the client's first request is CPU-heavy: a second trial decides), then
        # replays; all of them through the throttle.
        for _ in range(4):
            assert throttled(client, prompts) == expected
        assert throttled.stats().signatures[0].replays >= 1
        assert server.refused == 0 and server.requests == 40

        time.sleep(0.6)  # an empty window
        unthrottled = jit(summarize)
        with pytest.raises(openai.RateLimitError):
            unthrottled(client, prompts)  # the trial: 10 requests back to back
        assert server.refused > 0


# -- critical path first ----------------------------------------------------------------


def test_calls_on_the_critical_path_start_first_when_they_queue():
    """One slot, twelve independent calls made first, then a chain of four: each link
    of the chain starts as soon as the slot frees, ahead of the independent calls."""
    order: list[str] = []
    lock = threading.Lock()

    def side(i):
        with lock:
            order.append(f"s{i}")
        # The first holds the slot long enough for the body to queue every other call.
        time.sleep(0.3 if i == 0 else 0.002)
        return f"side {i}"

    def link(x):
        with lock:
            order.append(f"c{x - 1000}")
        # Far longer than a side call, so that the trial's timings rank every link above
        # every side call even on a loaded machine (a 2 ms sleep there can take 6 ms).
        time.sleep(0.06)
        return x + 1

    @jit(executor=xcs.throttle(max_in_flight=1))
    def work(n):
        sides = [side(i) for i in range(n)]
        x = 1000
        for _ in range(4):
            x = link(x)
        return sides, x

    expected = work.__wrapped__(12)
    assert work(12) == expected
    order.clear()
    assert work(12) == expected
    assert work.stats().signatures[0].replays == 1
    # Program order submits s0..s11 first, and s0 takes the slot.  The chain's first
    # link then has the highest rank, and each later link is ready when its
    # predecessor ends, before the slot is given to a side call.
    assert order[:5] == ["s0", "c0", "c1", "c2", "c3"], order
    assert sorted(order[5:]) == sorted(f"s{i}" for i in range(1, 12)), order


# -- found by the adversarial run: every path of a throttled function, layered throttles ----


def _threads(fn, n: int) -> list[object]:
    """Call ``fn(i)`` on ``n`` threads released together; their results (or errors)."""
    start = threading.Barrier(n, timeout=BARRIER_TIMEOUT)
    out: list[object] = [None] * n

    def run(i: int) -> None:
        start.wait()
        try:
            out[i] = fn(i)
        except Exception as exc:  # the test inspects it
            out[i] = exc

    # Daemon threads: a deadlock fails the test instead of keeping pytest from exiting.
    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a call did not finish: deadlock"
    return out


def test_first_calls_on_many_threads_at_once_keep_the_cap_and_the_rate():
    """One thread traces; the others run plain meanwhile, and are throttled too."""
    meter = Meter()
    rate = 20.0

    def llm(x):
        with meter:
            time.sleep(0.01)
        return x

    @jit(executor=xcs.throttle(max_in_flight=1, per_second=rate))
    def f(xs):
        return [llm(x) for x in xs]

    results = _threads(lambda i: f([i, i + 100]), 6)
    assert results == [[i, i + 100] for i in range(6)]
    assert meter.peak == 1
    gaps = [b - a for a, b in itertools.pairwise(sorted(meter.starts))]
    assert min(gaps) > 0.25 / rate, gaps


@pytest.mark.parametrize("shape", ["try", "frame", "raises"])
def test_a_signature_that_runs_plain_is_throttled_too(shape):
    """Plans that stay plain (calls in the function's own try, a body reading its
    frame, a trial that raises): every call still takes the throttle's slots."""
    meter = Meter()

    def llm(x):
        with meter:
            time.sleep(0.005)
        if shape == "raises" and x == "boom":
            raise ValueError(x)
        return x

    def body(xs):
        out = []
        for x in xs:
            if shape == "try":
                try:
                    out.append(llm(x))
                except KeyError:
                    out.append(None)
            else:
                out.append(llm(x))
        if shape == "frame":
            locals()
        return out

    f = jit(executor=xcs.throttle(max_in_flight=1))(body)
    xs = ["a", "b", "boom"] if shape == "raises" else ["a", "b", "c"]
    for _ in range(4):  # trials, and the calls after the plan turned plain
        results = _threads(lambda i, xs=xs: f(xs), 4)
        for r in results:
            if shape == "raises":
                assert isinstance(r, ValueError)
            else:
                assert r == xs
    assert meter.peak == 1
    assert f.stats().signatures[0].replays == 0


def test_one_fast_call_does_not_exempt_a_site_from_the_rate():
    rate = 20.0
    meter = Meter()
    cache = {"hit": "cached"}

    def llm(x):
        if x in cache:  # fast: answered from a cache
            return cache[x]
        with meter:
            time.sleep(0.002)
        return x

    @jit(executor=xcs.throttle(per_second=rate))
    def f(xs):
        return [llm(x) for x in xs]

    assert f(["hit", "a", "b", "c"]) == ["cached", "a", "b", "c"]
    gaps = [b - a for a, b in itertools.pairwise(sorted(meter.starts))]
    assert min(gaps) > 0.25 / rate, gaps


def test_a_throttle_over_a_throttle_holds_both_caps_in_the_trial():
    inner = xcs.throttle(max_in_flight=1)
    outer = xcs.throttle(inner, max_in_flight=4)
    entered, release = threading.Event(), threading.Event()

    def hold():
        entered.set()
        assert release.wait(BARRIER_TIMEOUT)

    def llm(x):
        time.sleep(0.002)
        return x

    @jit(executor=outer)
    def f(xs):
        return [llm(x) for x in xs]

    holder = inner.submit(hold)  # takes the inner throttle's only slot
    assert entered.wait(BARRIER_TIMEOUT)
    done = threading.Event()
    thread = threading.Thread(target=lambda: (f(["a", "b"]), done.set()))
    thread.start()
    assert not done.wait(0.2), "the trial's call ran while the inner throttle's slot was taken"
    release.set()
    thread.join(30)
    assert done.is_set() and holder.result(timeout=10) is None


def test_nested_jitted_functions_on_layered_throttles_do_not_deadlock():
    base = xcs.throttle(max_in_flight=1)
    outer = _nested(base, xcs.throttle(base, max_in_flight=3), Meter())
    for _ in range(3):
        assert _threads(lambda i: outer([0, 1, 2]), 1) == [[2, 6, 10]]


class _Inline(Executor):
    """An executor that runs each call inside ``submit`` (any Executor is allowed)."""

    def submit(self, fn, /, *args, **kwargs):
        future: Future[object] = Future()
        future.set_running_or_notify_cancel()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


@pytest.mark.parametrize(("make", "cap"), [
    (lambda: ThreadPoolExecutor(1), 1), (lambda: ThreadPoolExecutor(1), 4),
    (lambda: ThreadPoolExecutor(2), 2), (lambda: ThreadPoolExecutor(2), 4), (_Inline, 2),
], ids=["pool1-cap1", "pool1-cap4", "pool2-cap2", "pool2-cap4", "inline-cap2"])
def test_nested_jitted_functions_on_a_throttle_over_a_small_pool_do_not_deadlock(make, cap):
    """Each outer call runs on the pool's only workers and waits for the inner calls it
    submitted (its slot given back): those queue behind it in the pool, or, on an
    executor that runs calls inside submit, behind the call still starting.  A waiting
    worker runs them itself, in the slots they hold."""
    pool = make()
    meter = Meter()
    throttle = xcs.throttle(pool, max_in_flight=cap)
    pipelines = [_nested(throttle, throttle, meter) for _ in range(2)]
    try:
        for _ in range(3):  # the trials, then replays
            assert _threads(lambda i: pipelines[i]([0, 1, 2]), 2) == [[2, 6, 10]] * 2
    finally:
        pool.shutdown(wait=False)
    assert all(p.stats().signatures[0].replays >= 1 for p in pipelines)
    assert meter.peak <= cap


def test_a_callee_that_fans_out_on_the_same_throttle_does_not_deadlock():
    """A call that submits work to the throttle it runs in gives its slot back."""
    api = xcs.throttle(max_in_flight=1)

    def llm(x):
        time.sleep(0.002)
        return x * 2

    def batch(xs):
        return list(api.map(llm, xs))

    @jit(executor=api)
    def f(groups):
        return [batch(g) for g in groups]

    for _ in range(3):  # the trial, then replays (batch deferred into the slot)
        assert _threads(lambda i: f([[1, 2], [3]]), 1) == [[[2, 4], [6]]]


def test_shutting_down_the_wrapped_pool_with_cancel_futures_returns():
    pool = ThreadPoolExecutor(1)
    api = xcs.throttle(pool, max_in_flight=2)
    release = threading.Event()
    running = api.submit(release.wait, BARRIER_TIMEOUT)
    queued_in_pool = api.submit(int, "1")
    queued_here = api.submit(int, "2")
    deadline = time.monotonic() + BARRIER_TIMEOUT
    while not running.running() and time.monotonic() < deadline:
        time.sleep(0.001)
    stopper = threading.Thread(target=lambda: pool.shutdown(wait=False, cancel_futures=True))
    stopper.start()
    stopper.join(BARRIER_TIMEOUT)
    assert not stopper.is_alive(), "pool.shutdown(cancel_futures=True) hung"
    release.set()
    assert running.result(timeout=10) is True
    for future in (queued_in_pool, queued_here):
        with pytest.raises((CancelledError, RuntimeError)):
            future.result(timeout=10)


def test_shutdown_with_cancel_futures_does_not_fail_a_trial_waiting_for_a_slot():
    api = xcs.throttle(max_in_flight=1)
    entered, release = threading.Event(), threading.Event()

    def llm(x):
        if x == "hold":
            entered.set()
            assert release.wait(BARRIER_TIMEOUT)
        return x

    @jit(executor=api)
    def f(xs):
        return [llm(x) for x in xs]

    holder = api.submit(llm, "hold")
    assert entered.wait(BARRIER_TIMEOUT)
    box: dict[str, object] = {}
    thread = threading.Thread(target=lambda: box.update(v=f(["a", "b"])))
    thread.start()
    deadline = time.monotonic() + BARRIER_TIMEOUT
    while not api._queue and time.monotonic() < deadline:  # the trial waits for the slot
        time.sleep(0.001)
    api.shutdown(wait=False, cancel_futures=True)
    release.set()
    thread.join(30)
    assert box == {"v": ["a", "b"]} and holder.result(timeout=10) == "hold"


def test_limits_may_be_any_real_number_but_must_give_a_finite_interval():
    from decimal import Decimal
    from fractions import Fraction

    import numpy as np

    assert xcs.throttle(per_second=Fraction(1, 2)).interval == 2.0
    assert xcs.throttle(per_minute=Decimal("30")).interval == 2.0
    assert xcs.throttle(max_in_flight=np.int64(3)).max_in_flight == 3
    with pytest.raises(ValueError, match="per_second must be a positive finite number"):
        xcs.throttle(per_second=5e-324)  # 1 / rate overflows
