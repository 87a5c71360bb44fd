"""Replay stage, scheduling: how an invocation's deferred calls reach the executor.

A task is submitted when its inputs are done (``_submit_ready``); a call into an
``lru_cache``d function waits for an earlier call with the same key
(``_follows``); on a throttle, calls are ranked by the longest chain behind them.  ``complete``
records a result or a failure and submits what it unblocks.  The body's side is
``_replay``'s; waiting (and a worker that waits running a queued task itself, so
that nested jitted functions on a one-worker pool cannot deadlock) ``_waiting``'s.
"""

from __future__ import annotations

import collections
import functools
import sys
import threading
import time
import weakref
from concurrent.futures import (
    CancelledError,
    Executor,
    Future,
    ThreadPoolExecutor,
)
from types import BuiltinFunctionType, FrameType, FunctionType, MethodType
from typing import Any

from xcs import _owners
from xcs._executors import Throttle, picklable, remote
from xcs._tasks import (
    CANCELLED,
    DONE,
    FAILED,
    FINISHED,
    HELD,
    OPERATOR,
    QUEUED,
    RUNNING,
    WAITING,
    Pending,
    Skipped,
    Task,
    Unpicklable,
    _clock,
    remote_call,
    resolved,
)
from xcs._timeline import Why
from xcs._values import pure_value, stays_here

# Callables that run no Python code of their own (``json.loads`` does: it is Python).
C_CALLABLES = (BuiltinFunctionType, type(str.strip), type("".strip), type(dict.__dict__["fromkeys"]))


LIVE: weakref.WeakSet[Scheduling] = weakref.WeakSet()  # invocations not yet finished








def live_invocations() -> int:
    """How many replays are in progress (tests check that none leak)."""
    return len(LIVE)


def _cache_key(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The key under which ``functools.lru_cache`` stores this call, else None."""
    try:  # runs in workers too, on any callable (whose __getattr__ may do anything)
        target = fn.__func__ if type(fn) is MethodType else fn
        info = getattr(target, "cache_parameters", None)
        if info is None or not callable(getattr(target, "cache_info", None)):
            return None
        if type(fn) is MethodType:
            args = (fn.__self__, *args)
        key: tuple[Any, ...] = (id(target), args, tuple(kwargs.items()))
        if info().get("typed"):
            key += (tuple(map(type, args)), tuple(map(type, kwargs.values())))
        hash(key)
    except Exception:  # unhashable: the cache raises in the callee, as in plain
        return None
    return key


class Scheduling:
    """An invocation's tasks and how they reach the executor: submitted when their
    inputs are done, in program order among those that must be, on a throttle by
    rank; and what happens when one completes."""

    placeholder = Pending  # what a deferred call returns to the body

    def __init__(self, executor: Executor, on_exit: Any = None,
                 ranks: dict[int, tuple[float, ...]] | None = None) -> None:
        self.executor = executor
        # A throttle queues calls: those with a longer chain behind them start first.
        self.throttle = executor if isinstance(executor, Throttle) else None
        self.ranks = ranks if self.throttle is not None else None  # site -> rank per call
        self.made: dict[int, int] = {}  # site -> calls deferred there so far (for ranks)
        self.claimable = not remote(executor)
        # A pool of ours runs every task it accepts; another executor may fail one
        # (a wrapper around a process pool cannot pickle it): watch its futures.
        self.watch = self.claimable and not isinstance(executor, ThreadPoolExecutor)
        self.tasks: list[Task] = []
        self.checked = 0  # tasks[:checked] are known to have succeeded
        # ``with self.lock`` is the C lock itself; ``with self.cond`` would add two Python
        # calls (Condition.__enter__/__exit__) to every round trip.  Re-entrant: cancelling
        # a throttle's future under it runs ``_lost``, which takes it again.
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.sleepers = 0  # threads in ``cond.wait`` (see ``_sleep``)
        self.on_exit = on_exit  # called with (invocation, raised) when the body is done
        self.refused: BaseException | None = None  # the executor would not take work
        self.t0 = _clock()
        self.wall0 = time.time()
        self.body = threading.get_ident()
        # the body blocked on these: (start, end, task, where the body needed it)
        self.waits: list[tuple[float, float, Task, Why]] = []
        self.draining: dict[int, collections.deque[Task]] = {}  # thread -> ready tasks to submit
        self.cached: dict[Any, Task] = {}  # (cache, key) -> the latest call made with it
        self.failed = sys.maxsize  # program-order position of the first call that failed
        self.drained: set[FrameType] = set()  # generator expressions a builtin is draining
        self.ordered: Task | None = None  # the latest continuation that runs Python code
        self.writers: set[Task] = set()  # continuations that change a list they receive
        # A first call: the recorder of the trial it is too (see ``_function``), and when the
        # body returned or raised, before waiting for the calls it deferred
        self.rec: Any = None
        self.body_end = 0.0
        self.waited = 0.0  # seconds the body has waited for deferred calls (``waits``)
        self.waited_cpu = 0.0  # and the CPU time it spent meanwhile
        LIVE.add(self)

    # -- workers' side ---------------------------------------------------------
    def complete(self, task: Task, value: Any, error: BaseException | None,
                 cancelled: bool = False, ended: float = 0.0) -> None:
        ready: list[Task] = []
        ended = ended or _clock()
        with self.lock:
            task.ended = ended
            if not task.started:
                task.started = ended
            if task.owns:
                _owners.disown(task)
            if error is None and not cancelled and task.dependents:
                for dep in task.dependents:  # the result now belongs to the calls it feeds
                    if dep.inline != OPERATOR and dep.state == WAITING:
                        _owners.own(dep, (value,))
            # The outcome before the state: ``force`` and ``resolve`` read a finished
            # task's value without the lock.
            if cancelled:
                task.state = CANCELLED
            elif error is None:
                task.value = value
                task.state = DONE
            else:
                task.error = error
                task.tb = error.__traceback__
                task.state = FAILED
                self.failed = min(self.failed, task.seq)
            task.fn = task.args = task.kwargs = task.ctx = None  # free the inputs
            if task.deps:
                task.deps = []
            if task.followers:  # calls of the same cache with the same key: a hit now
                ready += [t for t in task.followers if t.state == WAITING]
                task.followers = []
            stack = [task] if task.dependents else []
            while stack:  # settle dependents: ready to go, or skipped after a failure
                t = stack.pop()
                for dep in t.dependents:
                    if dep.state != WAITING:
                        continue
                    if t.state == DONE:
                        dep.deps_left -= 1
                        if dep.deps_left == 0:
                            ready.append(dep)
                    else:
                        dep.state = FAILED
                        dep.error = Skipped()
                        if dep.owns:
                            _owners.disown(dep)
                        stack.append(dep)
                t.dependents = []
            if self.sleepers:
                self.cond.notify_all()
        if ready:
            self._submit_ready(ready)

    def _submit_ready(self, ready: list[Task]) -> None:
        """Submit tasks whose inputs are done, without recursion.

        Submitting a lazy operator's task computes it at once, which completes it and
        readies the next one: ``x += i`` over 1,000 iterations is a chain of 1,000
        tasks.  The outermost call on a thread submits in a loop; inner ones queue.
        """
        ident = threading.get_ident()
        queue = self.draining.get(ident)
        if queue is not None:
            queue.extend(ready)
            return
        queue = self.draining[ident] = collections.deque(ready)
        try:
            while queue:
                self._submit(queue.popleft())
        finally:
            del self.draining[ident]

    # -- internals -------------------------------------------------------------
    def _submit(self, task: Task, fresh: bool = False) -> None:
        """Start ``task`` (its inputs are done).  ``fresh``: the body's thread made it
        just now with no pending input, so no other thread can know it yet."""
        if task.placeholders:  # placeholders among the inputs (done or not): put values in
            task.args = tuple(resolved(a) for a in task.args)
            for key, value in task.kwargs.items():
                task.kwargs[key] = resolved(value)
            if type(task.fn) is Pending:
                task.fn = resolved(task.fn)
            if self.writers and self._behind_writers(task):
                return  # submitted when they have run
        fn = task.fn
        target = fn.__func__ if type(fn) is MethodType else fn
        if (task.site >= 0 and task.after is None  # most callees: no attributes, no cache
                and (type(target) is not FunctionType or target.__dict__)
                and self._follows(task)):
            return
        if task.inline:
            if task.inline == OPERATOR:  # runs no user code on builtin immutable operands
                here = all(map(pure_value, task.args))
            else:  # a continuation: like a deferred callee, unless its callee must stay
                here = task.site < 0 or stays_here(task.fn) is None
            with self.lock:
                if task.state != WAITING:
                    return
                stopped = task.seq > self.failed  # plain stopped before it: never made
                if not stopped:
                    task.state = RUNNING if here else HELD
            if stopped:
                self.complete(task, None, None, cancelled=True)  # and what depends on it
            elif here:
                task.execute()
            return
        if fresh:
            task.state = QUEUED
        else:
            with self.lock:
                if task.state != WAITING:
                    return
                task.state = QUEUED
        try:
            future: Future[Any]
            if self.throttle is not None and self.claimable:
                future = task.future = self.throttle.submit_ranked(task.rank, task.run)
                future.add_done_callback(functools.partial(self._lost, task))
            elif self.claimable:
                future = self.executor.submit(task.run)
                if self.watch:
                    future.add_done_callback(functools.partial(self._lost, task))
            else:
                if not picklable(self.executor, (task.fn, task.args, task.kwargs)):
                    raise Unpicklable(f"cannot pickle {task.name}() to send it to the executor's "
                                       "workers")
                submit = (self.executor.submit if self.throttle is None
                          else functools.partial(self.throttle.submit_ranked, task.rank))
                future = task.future = submit(remote_call, task.fn, task.args, task.kwargs)
                future.add_done_callback(task.from_future)
        except BaseException as exc:
            self.refused = exc
            with self.lock:
                if task.state != QUEUED:
                    return
                # Run it as the plain function would: here if this is the body's
                # thread (program order), else when the body needs it.
                here = threading.get_ident() == self.body
                task.state = RUNNING if here else HELD
            if here:
                task.execute()

    def _follows(self, task: Task) -> bool:
        """Hold back a call into an ``lru_cache``/``cache``d function while a call with
        the same key is in flight: it starts when that one ends, and hits the cache
        as it would in the plain function (concurrent calls would all miss)."""
        key = _cache_key(task.fn, task.args, task.kwargs)
        if key is None:
            return False
        with self.lock:
            first = self.cached.get(key)
            self.cached[key] = task
            if first is None or first.state in FINISHED or first is task:
                return False
            task.after = first
            first.followers.append(task)
            return True

    def _lost(self, task: Task, future: Future[Any]) -> None:
        """Done-callback: the executor dropped ``task`` without running it."""
        if future.cancelled():
            error: BaseException | None = CancelledError()
        else:
            error = future.exception()
        if error is None:
            return
        with self.lock:
            if task.state != QUEUED:
                return
            self.refused = error
            task.state = HELD  # the body runs it when it needs it, as plain would
            self.cond.notify_all()

    def _after_writers(self, values: tuple[Any, ...], deps: list[Task]) -> list[Task]:
        """The unfinished continuations that fill a list this call receives (an
        outlined filter, ``_filters``): the call starts after them, as in plain."""
        self.writers = {t for t in self.writers if t.state not in FINISHED}
        if not self.writers:
            return []
        found = _owners.owners(values, 2, self)
        if found is _owners.ALL:
            found = list(self.writers)
        return [t for t in found if t in self.writers and t not in deps]

    def _behind_writers(self, task: Task) -> bool:
        """A call whose inputs just arrived may have received, through them, a list an
        earlier filter is still filling (a deferred call returned the list it was
        handed): it waits for that filter, as it would have come after it in plain."""
        found = [t for t in self._after_writers(
            (task.fn, *task.args, *task.kwargs.values()), []) if t.seq < task.seq]
        if not found:
            return False
        with self.lock:
            if task.state != WAITING:
                return True
            for dep in found:
                if dep.state not in FINISHED:
                    dep.dependents.append(task)
                    task.deps.append(dep)
                    task.deps_left += 1
            return task.deps_left > 0
