"""What xcs costs: per call, per deferred call, per non-deferred call, per trial, rewrite, memory.

Each figure comes from pairs of benchmarks (xcs and the thing it is compared
with) that ``bench/report.py`` subtracts; the budgets are in BUDGETS there.
The memory figures are measured with tracemalloc inside a benchmark and kept
in its extra_info.
"""

from __future__ import annotations

import functools
import gc
import os
import statistics
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import pytest

from xcs import jit
from xcs._rewrite import Program, Variant

from .callees import SleepModel
from .conftest import PYTHON
from .workloads import diamond, map_items, map_pooled, mixed


def _info(benchmark, overhead, **info):
    benchmark.group = f"overhead: {overhead}"
    benchmark.extra_info.update({"overhead": overhead, "python": PYTHON,
                                 "load": os.getloadavg()[0], **info})


# -- a call whose plan is "plain" ------------------------------------------------------
def no_slow_calls(x):
    return len(str(x)) + abs(x)


@pytest.mark.parametrize("kind", ["plain", "jit"])
def test_call_when_plan_is_plain(benchmark, kind):
    """A function without slow calls runs its plain body; the cost is the dispatch."""
    fn = jit(no_slow_calls) if kind == "jit" else no_slow_calls
    for _ in range(5):  # the trials (a plan with no slow calls is retried a few times)
        fn(12345)
    if kind == "jit":
        sig = fn.stats().signatures[0]
        assert sig.status == "plain" and sig.reason, sig
    _info(benchmark, "plain-plan call", kind=kind)
    # Many calls per round: the JSON keeps every round's time, and the timer's own cost
    # is spread over the calls.
    result = benchmark.pedantic(fn, args=(12345,), rounds=30, iterations=20_000,
                                warmup_rounds=2)
    assert result == no_slow_calls(12345)


# -- a deferred call, against the same pool used by hand ----------------------------
DEFER_N = 256
DEFER_LATENCY = 0.002


def _with_cpu_time(fn, cpu):
    """``fn``, appending the process's CPU time (body and workers) of each call to ``cpu``."""

    def run(*args):
        start = time.process_time()
        try:
            return fn(*args)
        finally:
            cpu.append(time.process_time() - start)

    return run


@pytest.mark.parametrize("kind", ["pool", "jit"])
def test_deferred_call(benchmark, pool, kind):
    """map over 256 items of a 2 ms call: xcs on the pool vs the same pool by hand."""
    m = SleepModel(DEFER_LATENCY)
    if kind == "jit":
        fn, args = jit(map_items, executor=pool), (m, DEFER_N)
        fn(*args)  # the trial
    else:
        fn, args = map_pooled, (pool, m, DEFER_N)
    _info(benchmark, "deferred call", kind=kind, calls=DEFER_N, latency=DEFER_LATENCY)
    cpu: list[float] = []
    result = benchmark.pedantic(_with_cpu_time(fn, cpu), args=args, rounds=60, iterations=1,
                                warmup_rounds=3)
    # CPU time is not inflated by other processes, as wall-clock time is on a busy machine.
    benchmark.extra_info["cpu_median"] = statistics.median(cpu[3:])
    assert result == map_items(SleepModel(0), DEFER_N)
    if kind == "jit":
        assert fn.stats().signatures[0].status == "optimized"


# -- calls that are not deferred, inside a replayed body -----------------------------
FAST_CALLS = 10_000
TRIAL_BUDGET = 3.0  # seconds of trial rounds per size


def busy(m, n):
    acc = 0
    for i in range(n):  # n fast builtin calls, run by the replay body
        acc += abs(i - 5000)
    outs = [m("x", i) for i in range(16)]  # 16 slow independent calls: deferred
    return acc, outs


@pytest.mark.parametrize("n", [0, FAST_CALLS])
@pytest.mark.parametrize("kind", ["plain", "jit"])
def test_non_deferred_calls(benchmark, kind, n):
    """The same body with and without 10,000 fast calls: their cost in a replay vs plain."""
    m = SleepModel(DEFER_LATENCY)
    fn = jit(busy) if kind == "jit" else busy
    if kind == "jit":
        fn(m, 0)  # the trial, without the loop; n=10,000 replays the same plan
        assert fn.stats().signatures[0].status == "optimized"
    _info(benchmark, "non-deferred call", kind=kind, n=n)
    result = benchmark.pedantic(fn, args=(m, n), rounds=30, iterations=1, warmup_rounds=2)
    assert result == busy(SleepModel(0), n)
    if kind == "jit":
        assert fn.stats().signatures[0].replays >= 32


# -- the trial: linear in the number of calls ------------------------------------------
def tiny_calls(n):
    acc = 0
    for i in range(n):
        acc += abs(i)
    return acc


def _first_call(n):
    fn = jit(tiny_calls)
    start = time.perf_counter()
    fn(n)
    return time.perf_counter() - start


@pytest.mark.parametrize("n", [1_000, 10_000, 100_000])
@pytest.mark.parametrize("kind", ["plain", "trial"])
def test_trial(benchmark, kind, n):
    """The first call of a freshly jitted function (trial and planning) vs the plain call."""
    _info(benchmark, "trial", kind=kind, n=n)
    if kind == "plain":
        result = benchmark.pedantic(tiny_calls, args=(n,), rounds=15, iterations=1,
                                    warmup_rounds=1)
    else:
        if n > 10_000:
            ten_k = _first_call(10_000)
            if ten_k * n / 10_000 > 10:
                pytest.skip(f"a trial of 10,000 calls took {ten_k:.2f} s: "
                            f"{n:,} calls would take too long")
        once = _first_call(n)
        rounds = max(1, min(15, int(TRIAL_BUDGET / once)))
        result = benchmark.pedantic(lambda f: f(n), setup=lambda: ((jit(tiny_calls),), {}),
                                    rounds=rounds, iterations=1)
    assert result == tiny_calls(n)


# -- rewrite time ----------------------------------------------------------------------
def _generated(calls):
    """A function with ``calls`` slow call sites, branches and a loop (a long agent step)."""
    lines = ["def generated(m, q, flag):", "    out = []"]
    for k in range(calls):
        if k % 10 == 5:
            lines += [f"    if flag > {k}:", f"        out.append(m('branch', {k}, q))"]
        elif k % 10 == 9:
            lines += ["    for j in range(2):", f"        out.append(m('loop', {k}, j))"]
        else:
            lines.append(f"    r{k} = m('step', {k}, q)")
            lines.append(f"    out.append(r{k})")
    lines.append("    return out")
    namespace: dict = {}
    exec(compile("\n".join(lines), "<bench generated>", "exec"), namespace)
    return namespace["generated"]


REWRITE = {"diamond (6 sites)": diamond, "mixed (7 sites)": mixed,
           "generated (100 sites)": _generated(100)}


@pytest.mark.parametrize("stage", ["from_function", "combine", "jit()"])
@pytest.mark.parametrize("name", list(REWRITE))
def test_rewrite(benchmark, name, stage):
    """Program.from_function, combine (plain + trace + one replay body) and jit() as a whole."""
    fn = REWRITE[name]
    program = Program.from_function(fn)
    state = jit(fn).__xcs__
    deferred = frozenset(s.id for s in program.sites if s.deferrable)
    variants = [Variant("trace"), Variant("replay", deferred)]
    _info(benchmark, "rewrite", function=name, stage=stage, sites=len(program.sites))
    if stage == "from_function":
        result = benchmark(Program.from_function, fn)
        assert len(result.sites) == len(program.sites)
    elif stage == "combine":
        code = benchmark(program.combine, variants, functools.partial(state.dispatch, None),
                         state.hooks)
        assert code.co_name == fn.__name__
    else:
        jitted = benchmark(jit, fn)
        assert jitted.__wrapped__ is fn


# -- memory ------------------------------------------------------------------------------
PLANS = 64  # xcs keeps at most 64 signatures per function


def two_calls(m, x):
    a = m("a", x)
    b = m("b", x)
    return a, b


def _plan_memory():
    m = SleepModel(0.005)  # long enough that the plans defer a call
    types = [type(f"T{k}", (), {"__repr__": lambda self: type(self).__name__}) for k in range(PLANS)]
    args = [t() for t in types]
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fn = jit(two_calls)
        gc.collect()
        jitted = tracemalloc.get_traced_memory()[0]
        fn(m, args[0])
        gc.collect()
        first = tracemalloc.get_traced_memory()[0]
        for a in args[1:]:
            fn(m, a)
        gc.collect()
        last = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    stats = fn.stats()
    # A trial disturbed by the machine's load may estimate too little gain and stay plain.
    assert stats.cached == PLANS and stats.optimized >= PLANS // 2, str(stats)
    assert fn(m, args[-1]) == two_calls(m, args[-1])
    return {"function_bytes": jitted - base, "first_plan_bytes": first - jitted,
            "plan_bytes": (last - first) / (PLANS - 1), "plans": PLANS,
            "optimized": stats.optimized}


def test_memory_per_plan(benchmark):
    """Bytes per cached plan (64 signatures of one function), after the first."""
    _info(benchmark, "memory per plan")
    figures = benchmark.pedantic(_plan_memory, rounds=1, iterations=1)
    benchmark.extra_info.update(figures)
    assert figures["plan_bytes"] > 0


IN_FLIGHT = 10_000


class _CountingPool(ThreadPoolExecutor):
    """A pool that measures traced memory when its ``expect``-th task is submitted."""

    def __init__(self, workers, expect, gate, base):
        super().__init__(workers, thread_name_prefix="bench-gated")
        self.expect, self.gate, self.base = expect, gate, base
        self.submitted = 0
        self.in_flight = None

    def submit(self, fn, /, *args, **kwargs):
        future = super().submit(fn, *args, **kwargs)
        self.submitted += 1
        if self.submitted == self.expect:  # every call is queued or running, none finished
            gc.collect()
            self.in_flight = tracemalloc.get_traced_memory()[0] - self.base[0]
            self.gate.set()
        return future


class _GatedModel:
    def __init__(self, gate):
        self.gate = gate

    def __call__(self, *args):
        self.gate.wait()
        return SleepModel(0.0002)(*args)


def _in_flight_memory(kind):
    gate = threading.Event()
    m = _GatedModel(gate)
    base = [0]
    pool = _CountingPool(4, IN_FLIGHT, gate, base)
    try:
        if kind == "jit":
            fn = jit(map_items, executor=pool)
            gate.set()
            fn(m, 16)  # the trial, with the gate open
            pool.submitted, pool.expect = 0, IN_FLIGHT
            run = functools.partial(fn, m, IN_FLIGHT)
        else:
            run = functools.partial(map_pooled, pool, m, IN_FLIGHT)
        gate.clear()
        gc.collect()
        tracemalloc.start()
        try:
            base[0] = tracemalloc.get_traced_memory()[0]
            result = run()
        finally:
            tracemalloc.stop()
    finally:
        gate.set()
        pool.shutdown(wait=True)
    assert result == map_items(SleepModel(0), IN_FLIGHT)
    assert pool.in_flight is not None
    return {"in_flight_bytes": pool.in_flight / IN_FLIGHT, "calls": IN_FLIGHT}


@pytest.mark.parametrize("kind", ["pool", "jit"])
def test_memory_in_flight(benchmark, kind):
    """Bytes per call with 10,000 calls in flight: xcs's deferred calls vs bare futures."""
    _info(benchmark, "memory in flight", kind=kind)
    figures = benchmark.pedantic(_in_flight_memory, args=(kind,), rounds=1, iterations=1)
    benchmark.extra_info.update(figures)
    assert figures["in_flight_bytes"] > 0
