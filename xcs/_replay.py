"""Replay stage: the real body runs while the chosen calls run on an executor.

A deferred call site hands its callee and arguments to ``Invocation.defer``,
which returns a ``Pending`` placeholder at once.  The rewritten body resolves
a placeholder where it observes it; ``force`` waits for the task.  A pool
worker that waits (a deferred call running a nested jitted function) runs a
task no worker has taken yet itself, so that nested jitted functions on a
one-worker pool cannot deadlock; the body's own thread only waits, so that a
pool of N workers never runs more than N calls (on a throttle: a thread whose
call holds a slot runs it in that slot).  A deferred call whose arguments hold
placeholders is submitted when those resolve.

When the body returns, every task is finished first; when it raises (or a
task failed), the exception of the first failing call in program order is
re-raised unchanged, tasks not started are cancelled and running ones are
waited for: no deferred call outlives its invocation.
"""

from __future__ import annotations

import collections
import contextvars
import functools
import linecache
import operator
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import (
    CancelledError,
    Executor,
    Future,
    ThreadPoolExecutor,
)
from dataclasses import dataclass
from types import BuiltinFunctionType, CodeType, FrameType, FunctionType, MethodType, TracebackType
from typing import Any, NamedTuple

from xcs import _owners
from xcs._codes import HELPERS, WRITERS, is_writer
from xcs._executors import Throttle, picklable, remote
from xcs._trace import described_use, pure_value, stays_here

__all__ = ["Invocation", "Pending", "Span", "Timeline", "resolve"]

# Task states.  HELD: a lazy operator whose operands turned out not to be
# builtin values; only the body's thread may compute it (when it needs it).
WAITING, QUEUED, RUNNING, DONE, FAILED, CANCELLED, HELD = range(7)
_FINISHED = (DONE, FAILED, CANCELLED)
# Continuations (``Task.inline``): work on results that runs where its inputs
# arrive instead of on the executor.  An OPERATOR (``a + b``, a format) runs
# there only on builtin immutable operands (else the body computes it when it
# needs it: a user type's ``__add__`` stays in the body's thread); an access
# (``r.choices``, ``r[0]``, unpacking, ``r.strip``) or a call of a fast function
# on a result (``json.loads(r)``, ``clean(r)``) runs ANYWHERE, like a deferred
# callee, in the thread that finishes its last input.
OPERATOR, ANYWHERE = 1, 2
# Builtins whose result never holds their arguments' items: ``len(results)`` on
# a list holding placeholders needs none of them.
_SHALLOW_RESULT = frozenset(map(id, (len, isinstance, issubclass, id, type, callable, hasattr,
                                     bool)))
# Callables that run no Python code of their own (``json.loads`` does: it is Python).
C_CALLABLES = (BuiltinFunctionType, type(str.strip), type("".strip), type(dict.__dict__["fromkeys"]))

_live: weakref.WeakSet[Invocation] = weakref.WeakSet()  # invocations not yet finished
_clock = time.perf_counter
_new = object.__new__
_cpu = time.thread_time
# How long a worker waiting for a throttled call, with every slot in use, sleeps before it
# asks the throttle again (a slot freed by another function's call does not wake it).
_HELP_POLL = 0.005


class _WorkerState(threading.local):
    busy = 0  # > 0 while this thread runs a deferred call for an executor


_worker = _WorkerState()


def live_invocations() -> int:
    """How many replays are in progress (tests check that none leak)."""
    return len(_live)


class Span(NamedTuple):
    """A stretch of time on one thread: a call, or the body waiting for one."""

    kind: str  # "call" (deferred call), "wait" (the body blocked on a result) or "body"
    name: str
    site: int
    start: float  # seconds since the invocation began
    end: float
    thread: str  # thread name ("executor" when the executor does not say)
    why: str = ""  # of a wait: where the body needed the result (``line 42: a branch ...``)


@dataclass(frozen=True, slots=True)
class Timeline:
    """What ran where and when during one call of a jitted function."""

    kind: str  # "replay" or "trial"
    started: float  # time.time() when the call began
    duration: float
    spans: tuple[Span, ...]


# The frames making a call when they are not the body's own (a 3.11 comprehension, a
# generator expression), innermost first, each at its instruction (``f_lasti``), and the
# code and instruction of the body's frame that made the outermost one.  Lines are
# worked out only for a failure's traceback (``f_lineno`` scans the line table).
Frames = tuple[tuple[tuple[FrameType, int], ...], tuple[CodeType, int]]


def line_at(code: CodeType, lasti: int) -> int:
    """The line of the instruction at byte offset ``lasti`` of ``code`` (``f_lineno``)."""
    for start, end, line in code.co_lines():
        if start <= lasti < end:
            return line if line is not None else code.co_firstlineno
    return code.co_firstlineno


class Pending:
    """The result of a deferred call that the body has not observed yet."""

    __slots__ = ("task",)

    def __init__(self, task: Task) -> None:
        self.task = task

    def __repr__(self) -> str:
        return f"<xcs pending result of {self.task.name}()>"


class _Unpicklable(Exception):
    """A deferred call cannot be sent to a process or cluster executor."""


class _Skipped(Exception):
    """A call that never ran because an earlier call it depends on failed."""


class Task:
    """One deferred call."""

    __slots__ = (
        "after",
        "args",
        "ctx",
        "dependents",
        "deps",
        "deps_left",
        "ended",
        "error",
        "fn",
        "followers",
        "frame",
        "future",
        "inline",
        "inv",
        "kwargs",
        "line",
        "name",
        "owns",
        "placeholders",
        "pure",
        "rank",
        "seq",
        "site",
        "started",
        "state",
        "tb",
        "thread",
        "value",
        "via",
    )

    def __init__(self, inv: Invocation, seq: int, site: int, line: int, fn: Any,
                 args: tuple[Any, ...], kwargs: dict[str, Any], via: Any = None,
                 frame: Frames | None = None) -> None:
        self.inv = inv
        self.seq = seq
        self.site = site
        self.line = line
        self.fn: Any = fn
        self.args: Any = args  # dropped (None) once the call is done
        self.kwargs: Any = kwargs
        self.ctx: contextvars.Context | None = None
        self.state = WAITING
        self.value: Any = None
        self.error: BaseException | None = None
        self.tb: TracebackType | None = None
        self.deps: list[Task] = []
        self.deps_left = 0
        self.dependents: list[Task] = []
        self.future: Future[Any] | None = None  # from a remote executor or a throttle
        self.rank = 0.0  # on a throttle: the trial's longest chain of calls from this one
        self.name = ("a method of a result" if type(fn) is Pending  # ``r.strip()``
                     else getattr(fn, "__qualname__", None) or type(fn).__qualname__)
        self.started = self.ended = 0.0
        self.thread: Any = "executor"  # or the Thread that ran it (named when drawn)
        self.inline = 0  # a continuation (OPERATOR or ANYWHERE), computed where inputs arrive
        self.placeholders = False  # some inputs were placeholders when it was made
        self.pure = False  # a first call expects an immutable builtin from it (see _jit)
        self.via: Any = via
        self.owns: list[int] | None = None  # keys of the objects it owns (see _owners)
        self.after: Task | None = None  # an earlier call of a cache with the same key
        self.followers: list[Task] = []  # later ones, started when this one ends
        # the frames making the call when they are not the body's own (``Frames``),
        # for the traceback of a failure
        self.frame = frame

    def run(self) -> None:
        """Executor entry point: run the call unless someone else has taken it."""
        inv = self.inv
        with inv.lock:
            # After a failure, a call later in program order that has not started
            # never starts: the plain function would not have made it.
            if self.state != QUEUED or self.seq > inv.failed:
                return
            self.state = RUNNING
        _worker.busy += 1
        try:
            self.execute()
        finally:
            _worker.busy -= 1

    def execute(self) -> None:
        args, kwargs, fn, ctx, via = self.args, self.kwargs, self.fn, self.ctx, self.via
        self.thread = threading.current_thread()
        self.started = _clock()
        try:
            if via is not None:
                value = ctx.run(via, fn, args, kwargs) if ctx is not None else via(fn, args, kwargs)
            else:
                value = ctx.run(fn, *args, **kwargs) if ctx is not None else fn(*args, **kwargs)
        except BaseException as exc:
            self.inv.complete(self, None, exc)
        else:
            self.inv.complete(self, value, None)

    def from_future(self, future: Future[Any]) -> None:
        """Done-callback of a future from an executor we cannot take tasks back from."""
        if future.cancelled():
            self.inv.complete(self, None, None, cancelled=True)
            return
        exc = future.exception()
        if exc is not None:
            self.inv.complete(self, None, exc)
            return
        value, started, ended, where = future.result()
        inv = self.inv
        self.started = inv.t0 + (started - inv.wall0)  # wall clock of the worker
        self.thread = where
        inv.complete(self, value, None, ended=inv.t0 + (ended - inv.wall0))


def remote_call(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """What a process or cluster executor runs: the call, and when and where it ran."""
    started = time.time()
    value = fn(*args, **kwargs)
    import os

    where = f"process {os.getpid()} {threading.current_thread().name}"
    return value, started, time.time(), where


class Invocation:
    """The deferred calls of one replayed call of a jitted function."""

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
        # A first call: the recorder of the trial it is too (see ``_jit``), and when the
        # body returned or raised, before waiting for the calls it deferred
        self.rec: Any = None
        self.body_end = 0.0
        self.waited = 0.0  # seconds the body has waited for deferred calls (``waits``)
        self.waited_cpu = 0.0  # and the CPU time it spent meanwhile
        _live.add(self)

    # -- the body's side -----------------------------------------------------
    def defer(self, site: int, line: int, fn: Any, args: tuple[Any, ...],
              kwargs: dict[str, Any], scan: bool = True, via: Any = None,
              frames: Frames | None = None) -> Any:
        """Submit ``fn(*args, **kwargs)`` and return its placeholder.

        ``scan`` says whether arguments may be containers holding placeholders
        (the stack simulation knows when they cannot: a list passed in from
        outside is then not searched); ``via`` runs the call (a trampoline
        that gives the callee the caller's name and line as its caller);
        ``frames``, when the call is not made by the body's own frame (a 3.11
        comprehension): the frames making it and the body's place (``Frames``), for
        the traceback of a failure.
        """
        task = Task(self, len(self.tasks), site, line, fn, args, kwargs, via, frames)
        if self.ranks is not None:
            n = self.made.get(site, 0)
            self.made[site] = n + 1
            levels = self.ranks.get(site)
            if levels:
                task.rank = levels[min(n, len(levels) - 1)]
        deps = _pending_in(args, kwargs, scan)
        if type(fn) is Pending:  # ``r.strip`` of a result: called when it exists
            deps.append(fn.task)
        if self.writers and _owners.OWNED:
            deps += self._after_writers((fn, *args, *kwargs.values()), deps)
        if WRITERS and is_writer(fn):  # a filter deferred whole: in order too
            self.writers.add(task)
        if self.claimable:
            task.ctx = contextvars.copy_context()
        return self._enqueue(task, deps)

    def _after_writers(self, values: tuple[Any, ...], deps: list[Task]) -> list[Task]:
        """The unfinished continuations that fill a list this call receives (an
        outlined filter, ``_filters``): the call starts after them, as in plain."""
        self.writers = {t for t in self.writers if t.state not in _FINISHED}
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
                if dep.state not in _FINISHED:
                    dep.dependents.append(task)
                    task.deps.append(dep)
                    task.deps_left += 1
            return task.deps_left > 0

    def continuation(self, site: int, line: int, fn: Any, args: tuple[Any, ...],
                     kwargs: dict[str, Any], scan: bool, via: Any,
                     frames: Frames | None) -> Any:
        """A fast call (``json.loads(r)``, ``clean(r)``, ``r.strip()``) on results.

        With its inputs known it is made now, in program order; else it becomes a
        task that runs, like a deferred callee, where its last input arrives, after
        the earlier calls that own what it receives (two ``f.write(r)`` keep their
        order).  ``len`` and friends of a container holding placeholders need none.
        """
        if type(fn) is not Pending:
            if id(fn) in _SHALLOW_RESULT and not any(type(a) is Pending for a in args):
                return self.call_here(fn, args, kwargs)
            if stays_here(fn):
                self.settle()
                return self.call_here(fn, args, kwargs)
        deps = _pending_in(args, kwargs, scan)
        if type(fn) is Pending:
            deps.append(fn.task)
        # Continuations that run Python code (a helper may print, log or count) run in
        # program order, one after the other: their own effects keep plain's order.
        python = type(fn) not in C_CALLABLES and not isinstance(fn, type)
        previous = self.ordered if python else None
        if previous is not None and previous.state not in _FINISHED:
            deps.append(previous)
        elif all(dep.state == DONE for dep in deps):
            return self.call_here(fn, args, kwargs)
        task = Task(self, len(self.tasks), site, line, fn, args, kwargs, via, frames)
        if python:
            self.ordered = task
            if WRITERS and is_writer(fn):
                self.writers.add(task)
        task.inline = ANYWHERE
        task.ctx = contextvars.copy_context()  # it runs in this process, whatever the executor
        if _owners.OWNED:  # after the earlier calls that own what it receives
            found = _owners.owners((fn, *args, *kwargs.values()), 2, self)
            if found is _owners.ALL:
                found = [t for t in self.tasks if t.owns]
            deps += [t for t in found if t.state not in _FINISHED and t not in deps]
        return self._enqueue(task, deps)

    def settle(self) -> None:
        """Before a call that stays in the body (``print``, a logger): the continuations
        that run Python code made so far run first, so that what they print or log
        comes before, as in plain; if one of them failed, raise the first failure."""
        task = self.ordered
        if task is None or task.state == DONE:
            return
        self.wait(task)
        if task.state != DONE:
            self.barrier()

    def derive(self, op: int, line: int, fn: Any, operands: tuple[Any, ...],
               kind: int = OPERATOR,
               frames: Frames | None = None) -> Any:
        """An operator or an access met a placeholder: compute it when its operands
        are ready (now, if they are).  An access may run Python code (a property, a
        ``__getitem__``): accesses run in program order among the continuations that
        may, as those do (``continuation``)."""
        deps = _pending_in(operands, {})
        previous = self.ordered if kind == ANYWHERE else None
        if previous is not None and previous.state not in _FINISHED:
            deps.append(previous)
        elif all(dep.state == DONE for dep in deps):
            return fn(*map(_resolved, operands))
        task = Task(self, len(self.tasks), -1 - op, line, fn, operands, {}, None, frames)
        if kind == ANYWHERE:
            self.ordered = task
        task.inline = kind
        # A property, ``__getitem__`` or ``__add__`` it runs sees the body's context here,
        # not the worker's or the body's when it needs the value.
        task.ctx = contextvars.copy_context()
        return self._enqueue(task, deps)

    def unpack(self, op: int, line: int, fn: Any, value: Pending, n: int,
               frames: Frames | None = None
               ) -> tuple[Any, ...]:
        """``a, b = r`` on a placeholder: one continuation unpacks (and raises what
        the body's UNPACK_SEQUENCE would), one per name takes its item."""
        whole = self.derive(op, line, fn, (value,), ANYWHERE, frames)
        if type(whole) is not Pending:
            return tuple(whole)
        return tuple(self.derive(op, line, operator.getitem, (whole, k), ANYWHERE, frames)
                     for k in range(n))

    def _enqueue(self, task: Task, deps: list[Task]) -> Pending:
        """Add ``task`` in program order; submit it now or when ``deps`` are done."""
        placeholder = _new(Pending)  # ``Pending(task)`` without a Python-level call
        placeholder.task = task
        self.tasks.append(task)
        task.placeholders = bool(deps)
        # What it received belongs to it; looked at outside the lock (it may be long).
        keys = None if task.inline == OPERATOR else _owners.keys_of(
            (task.fn, *task.args, *task.kwargs.values()))
        if not deps:  # the common case: no other thread can see the task yet
            if keys:
                _owners.own(task, keys=keys)
            self._submit(task, fresh=True)
            return placeholder
        with self.lock:
            done = []
            for dep in deps:
                if dep.state in (FAILED, CANCELLED):  # never made: an input failed
                    task.state = FAILED
                    task.error = _Skipped()
                    return placeholder
                if dep.state != DONE:
                    dep.dependents.append(task)
                    task.deps.append(dep)
                    task.deps_left += 1
                else:
                    done.append(dep.value)
            if keys is not None:
                # The results of its inputs are its own too: those done now, the
                # others when they arrive (see ``complete``).
                _owners.own(task, keys=keys + _owners.keys_of(done) if done else keys)
            # Decided under the lock: once it is released, the worker that finishes the
            # last input submits the task itself (``complete``), so reading deps_left
            # afterwards could submit it twice.
            ready = task.deps_left == 0
        if ready:
            self._submit(task)
        return placeholder

    def call_here(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Make a call in the body's thread, in program order, with its inputs resolved
        (the callee too: ``m = r.strip`` of a result is a placeholder, done or not)."""
        if type(fn) is Pending:
            fn = fn.task.inv.force(fn.task)
        args = tuple(resolve(a) for a in args)
        kwargs = {k: resolve(v) for k, v in kwargs.items()}
        values = (fn, *args, *kwargs.values())
        if _owners.OWNED and not _owners.clear(values, 2):
            self.touch(values, 2)
        return fn(*args, **kwargs)

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
            if task.state not in _FINISHED:
                start, cpu = _clock(), _cpu()
                self.wait(task)
                self._waited(start, cpu, task, READS_OWNED)
            if task.state != DONE:
                self.barrier()

    def force(self, task: Task) -> Any:
        if task.state not in _FINISHED:
            start, cpu = _clock(), _cpu()
            self.wait(task)
            self._waited(start, cpu, task, _body_at(True))
        if task.state == DONE:
            return task.value
        raise task.error if task.error is not None else _Skipped()

    def barrier(self) -> None:
        """Wait for every deferred call; raise the first failure in program order."""
        tasks = self.tasks
        while self.checked < len(tasks):
            task = tasks[self.checked]
            if task.state not in _FINISHED:
                self.wait(task)
            if task.state != DONE:
                raise task.error if task.error is not None else _Skipped()
            self.checked += 1

    def wait_all(self) -> None:
        """A barrier in the body's code: before it changes what others may see (a list
        the caller passed, a global, a cell a closure holds).  As ``barrier``; a wait
        is recorded, for explain, with the line that asked for it."""
        unfinished = [t for t in self.tasks[self.checked:] if t.state not in _FINISHED]
        if not unfinished:
            self.barrier()
            return
        start, cpu = _clock(), _cpu()
        self.barrier()
        self._waited(start, cpu, unfinished[-1], _body_at(False))

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
                if state in _FINISHED:
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
                        _worker.busy if self.throttle is None else self.throttle.holds_slot())) or (
                        state == HELD and threading.get_ident() == self.body):
                    task.state = RUNNING
                    run_here = True
                elif state == QUEUED and self.claimable and _worker.busy:
                    # A worker whose call gave its throttle slot back: it runs what the
                    # throttle has started and no worker took (its own call first).
                    run_here = False
                    help_throttle = True
                elif state == WAITING:
                    dep = next((d for d in task.deps if d.state not in _FINISHED), None)
                    if dep is None and task.after is not None and task.after.state not in _FINISHED:
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
                        dep.error = _Skipped()
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
            task.args = tuple(_resolved(a) for a in task.args)
            for key, value in task.kwargs.items():
                task.kwargs[key] = _resolved(value)
            if type(task.fn) is Pending:
                task.fn = _resolved(task.fn)
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
                    raise _Unpicklable(f"cannot pickle {task.name}() to send it to the executor's "
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
            if first is None or first.state in _FINISHED or first is task:
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
            if task.state == FAILED and not isinstance(task.error, _Skipped):
                error = task.error
                assert error is not None
                return _with_site_traceback(error, task, frame)
        return exc

    def timeline(self) -> Timeline:
        """The calls this invocation deferred and where its body waited, so far."""
        return self.draw_timeline()()

    def draw_timeline(self) -> Callable[[], Timeline]:
        """``timeline`` as of now, drawn when called: a replay of 256 calls costs one
        list of spans only when someone looks (the lists outlive ``_exit``)."""
        return functools.partial(_timeline, self.t0, self.wall0, _clock(), self.tasks,
                                 self.waits, threading.current_thread().name)

    def _exit(self, raised: bool) -> None:
        _live.discard(self)
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


_HERE = os.path.dirname(os.path.abspath(__file__)) + os.sep


# Why the body waited, as a wait records it: a text, or where the body's frame stood
# (``_body_at``), described only when a timeline is drawn: describing reads the
# code's instructions (``_trace.describe_use``), which costs milliseconds the first
# time for each code, and a replay that waits does not draw its timeline.
Why = str | tuple[bool, CodeType, int]


def _body_at(needed: bool) -> Why:
    """Where the body's frame stands now: it needs a result (``needed``), or it changes
    what others may see; "" when no frame of the body's is found."""
    frame: Any = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_HERE):
        frame = frame.f_back
    return "" if frame is None else (needed, frame.f_code, frame.f_lasti)


def _why(where: Why) -> str:
    """``line 42: a branch tests it (...)`` or ``line 42: the body changes what others
    may see (...)``, for explain and the timeline."""
    if isinstance(where, str):
        return where
    needed, code, lasti = where
    line = line_at(code, lasti)
    if needed:
        return described_use((code, lasti, line)) or ""
    source = linecache.getline(code.co_filename, line).strip()
    return f"line {line}: {WAITS_FOR_ALL}" + (f" ({source})" if source else "")


WAITS_FOR_ALL = "the body changes what others may see, after every deferred call"
READS_OWNED = "the body reads an object a deferred call received, after that call"


def resolve(value: Any) -> Any:
    """The value the body observes: a placeholder's result, containers resolved in place."""
    kind = type(value)
    if kind is Pending:
        task = value.task
        return task.inv.force(task)
    if kind is list:
        for i, item in enumerate(value):
            if type(item) is Pending:  # ``force``, inlined for a call that is done
                task = item.task
                value[i] = task.value if task.state == DONE else task.inv.force(task)
            elif type(item) is tuple and _holds(item):  # ``out.append((r, len(r)))``
                value[i] = resolve(item)
    elif kind is dict:
        for key, item in value.items():
            if type(item) is Pending:
                value[key] = item.task.inv.force(item.task)
            elif type(item) is tuple and _holds(item):
                value[key] = resolve(item)
    elif kind is tuple and _holds(value):
        return tuple(resolve(item) if type(item) is Pending else item for item in value)
    return value


def _holds(items: tuple[Any, ...]) -> bool:
    return any(type(item) is Pending for item in items)


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


def _resolved(value: Any) -> Any:
    """Like ``resolve`` for a task whose inputs are known to be finished."""
    return resolve(value) if type(value) in (Pending, list, dict, tuple) else value


def _timeline(t0: float, wall0: float, end: float, tasks: list[Task],
              waits: list[tuple[float, float, Task, Why]], body: str) -> Timeline:
    spans = [Span("call", t.name, t.site, t.started - t0, t.ended - t0,
                  t.thread if type(t.thread) is str else t.thread.name)
             for t in tasks if t.state in (DONE, FAILED) and t.ended and not t.inline]
    spans += [Span("wait", t.name, t.site, a - t0, b - t0, body, _why(where))
              for a, b, t, where in waits]
    return Timeline("replay", wall0, end - t0, tuple(spans))


def _pending_in(args: tuple[Any, ...], kwargs: dict[str, Any], scan: bool = True) -> list[Task]:
    found: list[Task] = []
    for value in (*args, *kwargs.values()) if kwargs else args:
        kind = type(value)
        if kind is Pending:
            found.append(value.task)
        elif scan and (kind is list or kind is tuple or kind is dict):
            for item in value.values() if kind is dict else value:
                if type(item) is Pending:
                    found.append(item.task)
                elif type(item) is tuple:  # a list may hold tuples holding placeholders
                    found.extend(i.task for i in item if type(i) is Pending)
    return found


_owners.NEVER_OWNED.add(Pending)

_OWN_CODE = frozenset({Task.execute.__code__, Task.run.__code__, Invocation.wait.__code__,
                       Invocation.force.__code__})


_TRAMPOLINES: set[CodeType] = set()


def trampoline(code_name: str, filename: str, line: int) -> Any:
    """A function that calls ``fn(*args, **kwargs)`` from a frame named like the call
    site's code, in its file, at its line: what a deferred callee finds as its caller
    (``warnings.warn(stacklevel=2)``, ``sys._getframe(1)``) is then the plain one."""
    name = code_name.rsplit(".", 1)[-1]
    ident = name if name.isidentifier() else "caller"
    source = "\n" * (line - 1) + f"def {ident}(fn, args, kwargs): return fn(*args, **kwargs)"
    namespace: dict[str, Any] = {}
    exec(compile(source, filename, "exec"), namespace)
    fn = namespace[ident]
    fn.__code__ = fn.__code__.replace(co_name=name, co_qualname=code_name)
    _TRAMPOLINES.add(fn.__code__)
    return fn


def _with_site_traceback(error: BaseException, task: Task,
                         frame: FrameType | None) -> BaseException:
    """Give ``error`` the traceback a plain call at the task's site would have had:
    the body's frame at the call's line, then the callee's own frames."""
    from xcs._v311 import UNPACK_CODES as helpers  # an access's own function (all versions)

    tb = task.tb
    while tb is not None and (tb.tb_frame.f_code in _OWN_CODE
                              or tb.tb_frame.f_code in _TRAMPOLINES
                              or tb.tb_frame.f_code in helpers):
        tb = tb.tb_next
    helper_line = None
    if tb is not None and id(tb.tb_frame.f_code) in HELPERS:  # an outlined try: plain's line
        helper_line, tb = tb.tb_lineno, tb.tb_next
    if frame is not None:
        try:
            if task.frame is not None:  # the comprehensions' frames, then the body's
                chain, (body_code, body_lasti) = task.frame
                for inner, lasti in chain:
                    tb = TracebackType(tb, inner, -1, line_at(inner.f_code, lasti))
                tb = TracebackType(tb, frame, -1, helper_line or line_at(body_code, body_lasti))
            else:
                tb = TracebackType(tb, frame, -1, helper_line or task.line)
        except (TypeError, ValueError):
            pass
    return error.with_traceback(tb)

