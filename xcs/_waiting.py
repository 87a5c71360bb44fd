"""Replay stage, waiting: where the body meets the calls it deferred.

The body waits for a result it needs (``force``), for every call before what
others may see (``wait_all``), and for the owner of an object it reads
(``touch``).  When it returns every task is finished first; when it raises (or
a task failed), the exception of the first failing call in program order is
re-raised unchanged.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from xcs import _owners
from xcs._scheduling import LIVE, Scheduling
from xcs._tasks import (
    CANCELLED,
    DONE,
    FAILED,
    FINISHED,
    HELD,
    QUEUED,
    RUNNING,
    WAITING,
    Pending,
    Skipped,
    Task,
    _clock,
    worker,
)
from xcs._timeline import READS_OWNED, Timeline, Why, body_at, timeline_of
from xcs._tracebacks import OWN_CODE, with_site_traceback

_cpu = time.thread_time
# How long a worker waiting for a throttled call, with every slot in use, sleeps before it
# asks the throttle again (a slot freed by another function's call does not wake it).
_HELP_POLL = 0.005


class Waiting(Scheduling):
    """Where the body meets its deferred calls: it waits for a result it needs, for
    every call before it changes what others may see, for the owner of an object it
    reads; and it finishes or fails as the plain function would."""

    def touch(self, values: tuple[Any, ...], mode: int) -> None:
        """The body is about to read ``values``: wait for the calls that own them.

        If one of those calls failed, the body stops as the plain function would
        have: the first failure in program order is raised.
        """
        try:
            found = _owners.owners(values, mode, self)
        except Exception:  # cannot tell what they reach: wait for every owner
            found = _owners.ALL
        if found is _owners.ALL:
            found = [t for t in self.tasks if t.owns]
        for task in sorted(found, key=lambda t: t.seq):
            if task.state not in FINISHED:
                start, cpu = _clock(), _cpu()
                self.wait(task)
                self._waited(start, cpu, task, READS_OWNED)
            if task.state != DONE:
                self.barrier()

    def force(self, task: Task) -> Any:
        if task.state not in FINISHED:
            start, cpu = _clock(), _cpu()
            self.wait(task)
            self._waited(start, cpu, task, body_at(True))
        if task.state == DONE:
            return task.value
        raise task.error if task.error is not None else Skipped()

    def barrier(self) -> None:
        """Wait for every deferred call; raise the first failure in program order."""
        tasks = self.tasks
        while self.checked < len(tasks):
            task = tasks[self.checked]
            if task.state not in FINISHED:
                self.wait(task)
            if task.state != DONE:
                raise task.error if task.error is not None else Skipped()
            self.checked += 1

    def wait_all(self) -> None:
        """A barrier in the body's code: before it changes what others may see (a list
        the caller passed, a global, a cell a closure holds).  As ``barrier``; a wait
        is recorded, for explain, with the line that asked for it."""
        unfinished = [t for t in self.tasks[self.checked:] if t.state not in FINISHED]
        if not unfinished:
            self.barrier()
            return
        start, cpu = _clock(), _cpu()
        self.barrier()
        self._waited(start, cpu, unfinished[-1], body_at(False))

    def _waited(self, start: float, cpu: float, task: Task, why: Why) -> None:
        """The body waited for ``task`` from ``start`` (CPU time ``cpu``) until now."""
        end = _clock()
        self.waits.append((start, end, task, why))
        self.waited += end - start
        self.waited_cpu += _cpu() - cpu  # (running a call it waited for, on 3.11 ...)

    def wait(self, task: Task) -> None:
        """Wait until ``task`` is finished, running it here if no worker has taken it.

        A task waiting for its inputs is waited for through them, deepest first, with
        an explicit stack: a chain of lazy operators can be thousands of tasks long.
        """
        stack = [task]
        stop = False
        while stack:
            task = stack[-1]
            with self.lock:
                state = task.state
                if state in FINISHED:
                    stack.pop()
                    continue
                if task.seq > self.failed and state in (QUEUED, HELD):
                    stop = True  # it will never run: raise the failure that stopped it
                    break
                # A worker waiting for a queued call runs it itself, so that nested
                # jitted functions cannot deadlock a small pool; any other thread
                # waits, so that a pool of N workers never runs more than N calls.
                # On a throttle: a thread whose call holds a slot (a trial's call, a
                # deferred one) runs it in that slot, or the slot would never free.
                help_throttle = False
                if (state == QUEUED and self.claimable and (
                        worker.busy if self.throttle is None else self.throttle.holds_slot())) or (
                        state == HELD and threading.get_ident() == self.body):
                    task.state = RUNNING
                    run_here = True
                elif state == QUEUED and self.claimable and worker.busy:
                    # A worker whose call gave its throttle slot back: it runs what the
                    # throttle has started and no worker took (its own call first).
                    run_here = False
                    help_throttle = True
                elif state == WAITING:
                    dep = next((d for d in task.deps if d.state not in FINISHED), None)
                    if dep is None and task.after is not None and task.after.state not in FINISHED:
                        dep = task.after  # held back behind a call with the same cache key
                    run_here = False
                    if dep is None:
                        self._sleep()
                        continue
                else:
                    self._sleep()
                    continue
            if help_throttle:
                assert self.throttle is not None and task.future is not None
                if not self.throttle.run_one_here(task.future):
                    with self.lock:  # every slot is in use: one ends, or this task does
                        if task.state == QUEUED:
                            self._sleep(_HELP_POLL)
            elif run_here:
                if state == QUEUED and self.throttle is not None:
                    # In the slot this worker's call holds, at the throttle's rate; its
                    # place in the queue is given up (it would run nothing).
                    assert task.future is not None
                    task.future.cancel()
                    self.throttle.run_in_slot(task.execute)
                else:
                    task.execute()
            elif dep is not None:
                stack.append(dep)
        else:
            return
        if stop:
            self.barrier()  # raises the first failure in program order

    def finish(self, value: Any) -> Any:
        """The body returned ``value``: finish every deferred call first."""
        self.body_end = _clock()
        self.barrier()
        self._exit(raised=False)
        return value

    def abort(self, exc: BaseException, frame: FrameType | None) -> BaseException:
        """The body raised ``exc``: return the exception the plain function would raise."""
        self.body_end = self.body_end or _clock()
        try:
            if isinstance(exc, KeyboardInterrupt):
                self._cancel_unstarted()
                return exc  # propagate at once; calls already running cannot be stopped
            chosen = self._first_failure(exc, frame)
            self._cancel_unstarted()
            self._wait_running()
            return chosen
        finally:
            self._exit(raised=True)

    @staticmethod
    def outcome(placeholder: Pending) -> tuple[bool, Any]:
        """Whether the call behind ``placeholder`` succeeded, and its result."""
        task = placeholder.task
        return task.state == DONE, task.value

    def _cancel_unstarted(self) -> None:
        with self.lock:
            for task in self.tasks:
                if task.state in (WAITING, QUEUED, HELD):
                    if (not self.claimable and task.future is not None
                            and not task.future.cancel()):
                        continue  # already running in a foreign executor
                    task.state = CANCELLED
                    if self.throttle is not None and task.future is not None:
                        task.future.cancel()  # leave the throttle's queue: it would run nothing
                    task.fn = task.args = task.kwargs = task.ctx = None
                    if task.owns:
                        _owners.disown(task)
            self.cond.notify_all()

    def _wait_running(self) -> None:
        with self.lock:
            while any(t.state in (RUNNING, QUEUED) for t in self.tasks):
                self._sleep()

    def _sleep(self, timeout: float | None = None) -> None:
        """``cond.wait``, counted (the lock is held): a call that finishes wakes
        threads only when some are asleep."""
        self.sleepers += 1
        try:
            self.cond.wait(timeout)
        finally:
            self.sleepers -= 1

    def _first_failure(self, exc: BaseException, frame: FrameType | None) -> BaseException:
        for task in self.tasks:
            self.wait(task)
            if task.state == FAILED and not isinstance(task.error, Skipped):
                error = task.error
                assert error is not None
                return with_site_traceback(error, task, frame)
        return exc

    def timeline(self) -> Timeline:
        """The calls this invocation deferred and where its body waited, so far."""
        return self.draw_timeline()()

    def draw_timeline(self) -> Callable[[], Timeline]:
        """``timeline`` as of now, drawn when called: a replay of 256 calls costs one
        list of spans only when someone looks (the lists outlive ``_exit``)."""
        return functools.partial(timeline_of, self.t0, self.wall0, _clock(), self.tasks,
                                 self.waits, threading.current_thread().name)

    def _exit(self, raised: bool) -> None:
        LIVE.discard(self)
        if self.on_exit is not None:
            on_exit, self.on_exit = self.on_exit, None
            on_exit(self, raised)
        # Tasks and the invocation point at each other: let results and inputs go
        # now rather than at the next garbage collection.
        for task in self.tasks:  # (a timeline still to draw keeps them: see draw_timeline)
            task.value = task.tb = task.error = None
            task.fn = task.args = task.kwargs = task.ctx = task.frame = None
            if task.owns:  # e.g. a call still running when KeyboardInterrupt propagated
                _owners.disown(task)
        self.tasks = []
        self.waits = []
        self.cached = {}


# A failure's traceback leaves out the frames in which the body waited for the call.
OWN_CODE.update({Waiting.wait.__code__, Waiting.force.__code__})
