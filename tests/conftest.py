"""Shared fixtures: leak checks, an executor matrix and simulated slow callees."""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

import pytest

from xcs import _scheduling


@pytest.fixture(autouse=True)
def no_leaks():
    """Fail a test that leaves a replay unfinished or a thread of its own running."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while _scheduling.live_invocations() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _scheduling.live_invocations() == 0, "a replayed call did not finish its deferred calls"
    while time.monotonic() < deadline:
        leaked = [t for t in threading.enumerate()
                  if t not in before and t.is_alive() and not t.name.startswith("xcs")]
        if not leaked:
            break
        time.sleep(0.01)
    else:
        pytest.fail(f"threads left running: {leaked}")


class Forwarding(Executor):
    """A thin wrapper that forwards to a thread pool (as instrumenting wrappers do)."""

    def __init__(self, workers):
        self.inner = ThreadPoolExecutor(workers, thread_name_prefix="fwd")

    def submit(self, fn, /, *args, **kwargs):
        return self.inner.submit(fn, *args, **kwargs)

    def shutdown(self, wait=True, *, cancel_futures=False):
        self.inner.shutdown(wait, cancel_futures=cancel_futures)


class OwnThreads(Executor):
    """An Executor subclass of its own: a queue and its own worker threads."""

    def __init__(self, workers):
        self.work: queue.SimpleQueue = queue.SimpleQueue()
        self.threads = [threading.Thread(target=self._run, name=f"own-{i}", daemon=True)
                        for i in range(workers)]
        for t in self.threads:
            t.start()

    def _run(self):
        while (item := self.work.get()) is not None:
            future, fn, args, kwargs = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as exc:
                    future.set_exception(exc)

    def submit(self, fn, /, *args, **kwargs):
        future: Future = Future()
        self.work.put((future, fn, args, kwargs))
        return future

    def shutdown(self, wait=True, *, cancel_futures=False):
        for _ in self.threads:
            self.work.put(None)
        if wait:
            for t in self.threads:
                t.join(30)  # bounded: a test that failed may have left a call stuck


@pytest.fixture(params=["default", "one-worker", "two-workers", "forwarding", "own-threads"])
def executor(request):
    """The executors every behaviour must hold on: the shared pool, tiny pools, and
    executors that are no ThreadPoolExecutor (a forwarding wrapper, one of its own)."""
    if request.param == "default":
        yield None
        return
    pool: Executor = {"one-worker": lambda: ThreadPoolExecutor(1, thread_name_prefix="test-pool"),
                      "two-workers": lambda: ThreadPoolExecutor(2, thread_name_prefix="test-pool"),
                      "forwarding": lambda: Forwarding(2),
                      "own-threads": lambda: OwnThreads(2)}[request.param]()
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
