"""Shared fixtures: leak checks, an executor matrix and simulated slow callees."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from xcs import _replay


@pytest.fixture(autouse=True)
def no_leaks():
    """Fail a test that leaves a replay unfinished or a thread of its own running."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while _replay.live_invocations() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _replay.live_invocations() == 0, "a replayed call did not finish its deferred calls"
    while time.monotonic() < deadline:
        leaked = [t for t in threading.enumerate()
                  if t not in before and t.is_alive() and not t.name.startswith("xcs")]
        if not leaked:
            break
        time.sleep(0.01)
    else:
        pytest.fail(f"threads left running: {leaked}")


@pytest.fixture(params=["default", "one-worker", "two-workers"])
def executor(request):
    """The executors every behaviour must hold on: the shared pool and tiny pools."""
    if request.param == "default":
        yield None
        return
    pool = ThreadPoolExecutor(1 if request.param == "one-worker" else 2,
                              thread_name_prefix="test-pool")
    yield pool
    pool.shutdown(wait=True)


class Model:
    """A simulated LLM: sleeps ``latency`` seconds, returns a string, logs its calls.

    ``barrier`` mode makes every call wait until ``parties`` calls run at once,
    which proves overlap without trusting wall-clock time.
    """

    def __init__(self, latency: float = 0.02, name: str = "m") -> None:
        self.latency = latency
        self.name = name
        self.calls: list[tuple[Any, ...]] = []
        self.lock = threading.Lock()
        self.barrier: threading.Barrier | None = None
        self.fail_on: dict[Any, BaseException] = {}
        self.counter = 0

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        with self.lock:
            self.calls.append(args + tuple(sorted(kwargs.items())))
            self.counter += 1
        if self.barrier is not None:
            self.barrier.wait()
        elif self.latency:
            time.sleep(self.latency)
        key = args[0] if args else None
        if key in self.fail_on:
            raise self.fail_on[key]
        return f"{self.name}({', '.join(map(str, args))})"

    def expect_overlap(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties, timeout=10)

    def sorted_calls(self) -> list[tuple[Any, ...]]:
        return sorted(self.calls, key=repr)


@pytest.fixture
def model():
    return Model()
