"""Benchmark fixtures: the two slow callees, the hand-written pool, an event loop, ``measure``."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from xcs._executors import DEFAULT_WORKERS

from .callees import AsyncHttpModel, AsyncSleepModel, HttpModel, SleepModel

ROOT = Path(__file__).parent.parent
SLEEP_LATENCY = 0.05  # seconds per call of the sleep model
HTTP_LATENCY = 0.02  # seconds the HTTP server waits before it answers
ROUND_BUDGET = 1.5  # seconds of measured rounds per benchmark (at least one round)
MAX_ROUNDS = 15
PYTHON = "{}.{}".format(*sys.version_info[:2])


# Written by earlier benchmark runs: changes to them do not change the code measured.
GENERATED = ("bench/results", "docs/benchmarks.md", "docs/benchmarks.png")


def pytest_benchmark_update_commit_info(config: Any, commit_info: dict[str, Any]) -> None:
    """``dirty`` only for changes to what is measured, not for earlier runs' results.

    pytest-benchmark asks ``git describe --dirty``, which counts every tracked file: a
    run of several versions in a row would mark all but the first as uncommitted.
    """
    if not commit_info.get("dirty"):
        return
    try:
        changed = subprocess.run(
            ["git", "diff", "HEAD", "--name-only", "--", ".",
             *(f":(exclude){path}" for path in GENERATED)],
            cwd=ROOT, capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return  # keep pytest-benchmark's answer
    commit_info["dirty"] = bool(changed.strip())


@dataclass
class Callee:
    """A slow callee in its synchronous and asynchronous forms."""

    name: str  # "sleep" or "http"
    model: Any  # m(*args) -> str, blocking
    amodel: Any  # await am(*args) -> str
    latency: float  # injected: the sleep, or the server's wait
    call_time: float  # measured: one call alone, start to finish (the ideal's unit)
    instant = SleepModel(0)  # same answers, no latency: the expected results


def _call_time(model: Any) -> float:
    """The median time of one call made alone: what a call costs without contention."""
    model("warm-up")
    times = []
    for k in range(15):
        start = time.perf_counter()
        model("alone", k)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@pytest.fixture(scope="session")
def aio() -> Iterator[asyncio.Runner]:
    """One event loop for every ``asyncio.gather`` version (a running app has one)."""
    with asyncio.Runner() as runner:
        yield runner


@pytest.fixture(scope="session")
def pool() -> Iterator[ThreadPoolExecutor]:
    """The hand-written versions' pool: as many threads as xcs's default pool."""
    with ThreadPoolExecutor(DEFAULT_WORKERS, thread_name_prefix="bench-pool") as executor:
        yield executor


@pytest.fixture(scope="session")
def http_server() -> Iterator[str]:
    """An echo server on 127.0.0.1 with injected latency, in a child process.

    A child process rather than a thread of this one: its request parsing then
    does not compete with the benchmarked code for this interpreter's GIL (a
    real model server is not in the client's process either).
    """
    proc = subprocess.Popen([sys.executable, "-m", "bench.callees", str(HTTP_LATENCY)],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), f"the latency server did not start: {url!r}"
        yield url
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # the server stops when its stdin closes
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session", params=["sleep", "http"])
def callee(request: pytest.FixtureRequest, aio: asyncio.Runner) -> Iterator[Callee]:
    """The slow callee: ``sleep`` (a latency model) or ``http`` (a real round trip)."""
    if request.param == "sleep":
        model = SleepModel(SLEEP_LATENCY)
        yield Callee("sleep", model, AsyncSleepModel(SLEEP_LATENCY), SLEEP_LATENCY,
                     _call_time(model))
        return
    url = request.getfixturevalue("http_server")
    model = HttpModel(url, connections=2 * DEFAULT_WORKERS)

    async def amodel() -> AsyncHttpModel:
        return AsyncHttpModel(url)

    amodel_ = aio.run(amodel())
    try:
        yield Callee("http", model, amodel_, HTTP_LATENCY, _call_time(model))
    finally:
        aio.run(amodel_.close())
        model.close()


def rounds_for(expected: float) -> tuple[int, int]:
    """(rounds, warm-up rounds) for a run expected to take ``expected`` seconds."""
    if expected >= ROUND_BUDGET:
        return 1, 0
    return max(3, min(MAX_ROUNDS, int(ROUND_BUDGET / expected))), 1


@pytest.fixture
def measure(benchmark: Any) -> Any:
    """Time ``fn(*args)`` with pytest-benchmark and record what the report needs.

    A jitted function gets its trial call first (its cost is measured in
    ``test_overhead.py``); warm-up rounds start threads and connections.
    """

    def run(fn: Any, *args: Any, kind: str, expected: float, **info: Any) -> Any:
        if kind == "jit":
            fn(*args)  # the trial call
        benchmark.group = f"{info.get('callee', '')} {info.get('workload', '')}".strip()
        benchmark.extra_info.update({"kind": kind, "python": PYTHON, **info})
        rounds, warmup = rounds_for(expected)
        result = benchmark.pedantic(fn, args=args, rounds=rounds, iterations=1,
                                    warmup_rounds=warmup)
        benchmark.extra_info["load"] = os.getloadavg()[0]  # other work on the machine
        if kind == "jit" and hasattr(fn, "stats"):
            sig = fn.stats().signatures[-1]
            benchmark.extra_info.update({
                "status": sig.status, "reason": sig.reason, "deferred": len(sig.deferred_sites),
                "estimated_speedup": sig.estimated_speedup})
        return result

    return run


def pytest_benchmark_update_machine_info(config: Any, machine_info: dict[str, Any]) -> None:
    """Record how busy the machine was: the figures are wall-clock times."""
    machine_info["loadavg"] = list(os.getloadavg())
    machine_info["cpu_count"] = os.cpu_count()
