"""Replay stage: deferred calls, placeholders, failures and cancellation."""

from __future__ import annotations

import contextvars
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from xcs._replay import Invocation
from xcs._tasks import QUEUED, Pending, resolve


def _invocation(executor=None):
    return Invocation(executor or ThreadPoolExecutor(4, thread_name_prefix="test-pool"))


def test_deferred_calls_run_concurrently_and_resolve_to_their_results():
    """Two calls that can only finish together both complete, and resolve to their values."""
    barrier = threading.Barrier(2, timeout=5)

    def meet(x):
        barrier.wait()
        return x * 2

    inv = _invocation()
    a = inv.defer(0, 1, meet, (1,), {})
    b = inv.defer(0, 1, meet, (2,), {})
    assert type(a) is Pending and resolve(a) == 2 and resolve(b) == 4
    assert inv.finish("done") == "done"
    inv.executor.shutdown()


def test_a_call_waits_for_the_placeholders_in_its_arguments():
    """A deferred call receives resolved values, also inside lists and dicts."""
    inv = _invocation()
    a = inv.defer(0, 1, lambda: "a", (), {})
    b = inv.defer(0, 1, lambda: "b", (), {})
    c = inv.defer(1, 2, lambda xs, d: (xs, d), ([a, "z"],), {"d": {"k": b}})
    assert resolve(c) == (["a", "z"], {"k": "b"})
    inv.finish(None)
    inv.executor.shutdown()


def test_containers_are_resolved_in_place():
    """A list holding placeholders keeps its identity when resolved."""
    inv = _invocation()
    items = [inv.defer(0, 1, lambda: 1, (), {}), 2]
    same = resolve(items)
    assert same is items and items == [1, 2]
    inv.finish(None)
    inv.executor.shutdown()


def test_a_worker_waiting_for_a_queued_call_runs_it_itself():
    """Nested on a one-worker pool, the waiting worker runs the queued call (no deadlock)."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="test-pool")

    def nested():
        inner = Invocation(pool)
        p = inner.defer(0, 1, threading.get_ident, (), {})
        value = resolve(p)  # the only worker is this thread: it must run the call
        inner.finish(None)
        return value

    outer = Invocation(pool)
    p = outer.defer(0, 1, nested, (), {})
    worker = resolve(p)
    assert worker != threading.get_ident()
    outer.finish(None)
    pool.shutdown()


def test_a_pool_of_n_workers_never_runs_more_than_n_calls():
    """The body waits rather than running a queued call itself: the pool's cap holds."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="test-pool")
    release = threading.Event()
    busy = pool.submit(release.wait, 5)  # occupy the only worker
    inv = Invocation(pool)
    p = inv.defer(0, 1, threading.get_ident, (), {})
    timer = threading.Timer(0.2, release.set)
    timer.start()
    assert resolve(p) != threading.get_ident()  # ran on the worker, after it was free
    assert busy.result() is True
    inv.finish(None)
    timer.join()
    pool.shutdown()


def test_first_failure_in_program_order_is_reported_and_later_calls_cancelled():
    """abort() returns the earliest failing call's exception; unstarted calls never run."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="test-pool")
    gate = threading.Event()
    first, second = ValueError("first"), KeyError("second")
    ran = []

    def fail_late():
        gate.wait(5)
        raise first

    inv = Invocation(pool)
    inv.defer(0, 1, fail_late, (), {})
    later = inv.defer(0, 2, ran.append, ("never",), {})
    assert later.task.state == QUEUED  # not started: the only worker is in fail_late
    timer = threading.Timer(0.1, gate.set)  # fail_late fails after abort() has begun
    timer.start()
    chosen = inv.abort(second, None)
    timer.join()
    pool.shutdown(wait=True)  # the worker has taken every item off its queue
    assert chosen is first
    assert ran == []


def test_keyboard_interrupt_cancels_unstarted_and_returns_at_once():
    """KeyboardInterrupt does not wait for running calls and cancels the rest."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="test-pool")
    gate = threading.Event()
    inv = Invocation(pool)
    inv.defer(0, 1, gate.wait, (5,), {})
    later = inv.defer(0, 2, time.sleep, (5,), {})
    interrupt = KeyboardInterrupt()
    start = time.perf_counter()
    assert inv.abort(interrupt, None) is interrupt
    assert time.perf_counter() - start < 1
    assert later.task.state != 2  # never RUNNING
    gate.set()
    pool.shutdown()


def test_dependent_of_a_failed_call_is_skipped():
    """A call whose input failed is never made (the plain function never reached it)."""
    inv = _invocation()
    made = []
    a = inv.defer(0, 1, lambda: 1 / 0, (), {})
    inv.defer(1, 2, made.append, (a,), {})
    with pytest.raises(ZeroDivisionError):
        inv.barrier()
    inv.abort(ZeroDivisionError(), None)
    assert made == []
    inv.executor.shutdown()


def test_context_is_copied_into_deferred_calls():
    """contextvars set by the caller are visible in the deferred call."""
    var = contextvars.ContextVar("v")
    var.set("caller")
    inv = _invocation()
    p = inv.defer(0, 1, var.get, (), {})
    assert resolve(p) == "caller"
    inv.finish(None)
    inv.executor.shutdown()
