"""Benchmark fixtures: a sleep-latency model and the helper that times plain vs jit."""

from __future__ import annotations

import sys
import time

import pytest

LATENCY = 0.05  # seconds per simulated model call


def model(*args):
    """A slow call: sleeps like a network round trip, returns a string."""
    time.sleep(LATENCY)
    return "|".join(map(str, args))


@pytest.fixture
def measure(benchmark):
    """Time ``fn`` (plain or jitted, after its trial) and record what is ideal."""

    def run(fn, *args, kind, workload, ideal, rounds=5):
        if kind == "jit":
            fn(*args)  # the trial call; its cost is measured separately
        benchmark.group = workload
        benchmark.extra_info.update({"kind": kind, "workload": workload, "ideal": ideal,
                                     "python": "%d.%d" % sys.version_info[:2]})
        return benchmark.pedantic(fn, args=args, rounds=rounds, iterations=1, warmup_rounds=1)

    return run
