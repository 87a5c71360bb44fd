"""CPU-bound callees: not deferred to threads under the GIL; faster on a process pool.

The callee (``callees.burn``) is pure Python and module level, so a process
pool can import it.  On a GIL build the default thread pool would not overlap
it: the trial sees a CPU-bound call and the plan stays plain.  With a process
executor the same program runs its calls on both cores.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from xcs import jit
from xcs._compat import gil_enabled

from .callees import burn
from .conftest import PYTHON

WORK = 400_000  # iterations of burn (tens of ms)
CALLS = 4
WORKERS = 2  # the machine's cores; more processes would not help


def crunch(n, k):
    return [burn(n + j) for j in range(k)]


def crunch_pooled(pool, n, k):
    return list(pool.map(burn, [n + j for j in range(k)]))


@pytest.fixture(scope="module")
def processes():
    """A ProcessPoolExecutor that starts its workers by spawning (this process has threads)."""
    with ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


@pytest.fixture(scope="module")
def loky_executor():
    loky = pytest.importorskip("loky")
    executor = loky.get_reusable_executor(max_workers=WORKERS)
    yield executor
    executor.shutdown(wait=True)


KINDS = ["plain", "jit threads", "jit loky", "jit processes", "threads by hand",
         "processes by hand"]


@pytest.mark.parametrize("kind", KINDS)
def test_cpu_bound(benchmark, request, kind):
    """Four pure-Python CPU-bound calls: plain, jit on threads and processes, by hand."""
    expected = crunch(WORK, CALLS)
    args = (WORK, CALLS)
    info = {"cpu": kind, "python": PYTHON, "gil": gil_enabled(), "calls": CALLS,
            "workers": WORKERS, "load": os.getloadavg()[0]}
    threads = None
    if kind == "plain":
        fn = crunch
    elif kind.startswith("jit"):
        executor = {"jit threads": None,
                    "jit loky": lambda: request.getfixturevalue("loky_executor"),
                    "jit processes": lambda: request.getfixturevalue("processes")}[kind]
        fn = jit(crunch, executor=executor() if executor else None)
        for _ in range(3):  # the trial (retried while the plan is tentative)
            assert fn(*args) == expected
    elif kind == "threads by hand":
        threads = ThreadPoolExecutor(WORKERS)
        fn, args = crunch_pooled, (threads, *args)
    else:
        fn, args = crunch_pooled, (request.getfixturevalue("processes"), *args)
    benchmark.group = "cpu-bound callee"
    benchmark.extra_info.update(info)
    try:
        result = benchmark.pedantic(fn, args=args, rounds=10, iterations=1, warmup_rounds=1)
    finally:
        if threads is not None:
            threads.shutdown()
    assert result == expected
    if kind.startswith("jit"):
        sig = fn.stats().signatures[0]
        # The plan is xcs's decision, recorded for the report rather than asserted: the
        # CPU-bound test compares CPU time with wall time, which a loaded machine skews.
        benchmark.extra_info.update({"status": sig.status, "reason": sig.reason,
                                     "cpu_bound_note": "CPU-bound" in fn.explain(),
                                     "explain": fn.explain()})
