"""A deferred call (``Task``), its placeholder (``Pending``), and resolving placeholders.

A task moves WAITING (for its inputs) -> QUEUED (submitted) -> RUNNING -> DONE or
FAILED, or is CANCELLED; a lazy operator whose operands turned out not to be
builtin values is HELD for the body's thread.  ``resolve`` gives the value the
body observes: a placeholder's result, or a list or dict with theirs in place.
"""

from __future__ import annotations

import contextvars
import enum
import os
import threading
import time
from concurrent.futures import (
    Future,
)
from types import CodeType, TracebackType
from typing import TYPE_CHECKING, Any

from xcs import _owners
from xcs._frames import Frames

if TYPE_CHECKING:
    from xcs._replay import Invocation


class TaskState(enum.IntEnum):
    """Where a task is (``Task.state``)."""

    WAITING = 0  # for its inputs
    QUEUED = 1  # submitted to the executor
    RUNNING = 2
    DONE = 3
    FAILED = 4
    CANCELLED = 5
    # A lazy operator whose operands turned out not to be builtin values: only
    # the body's thread may compute it (when it needs it).
    HELD = 6


# The states by name, as the scheduling reads them on every task.
WAITING, QUEUED, RUNNING, DONE, FAILED, CANCELLED, HELD = TaskState


FINISHED = (DONE, FAILED, CANCELLED)


# Continuations (``Task.inline``): work on results that runs where its inputs
# arrive instead of on the executor.  An OPERATOR (``a + b``, a format) runs
# there only on builtin immutable operands (else the body computes it when it
# needs it: a user type's ``__add__`` stays in the body's thread); an access
# (``r.choices``, ``r[0]``, unpacking, ``r.strip``) or a call of a fast function
# on a result (``json.loads(r)``, ``clean(r)``) runs ANYWHERE, like a deferred
# callee, in the thread that finishes its last input.
OPERATOR, ANYWHERE = 1, 2


_clock = time.perf_counter


class WorkerState(threading.local):
    busy = 0  # > 0 while this thread runs a deferred call for an executor


worker = WorkerState()


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


class Unpicklable(Exception):
    """A deferred call cannot be sent to a process or cluster executor."""


class Skipped(Exception):
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
        self.pure = False  # a first call expects an immutable builtin from it (see _hooks)
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
        worker.busy += 1
        try:
            self.execute()
        finally:
            worker.busy -= 1

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

    where = f"process {os.getpid()} {threading.current_thread().name}"
    return value, started, time.time(), where


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
            elif type(item) is tuple and holds(item):  # ``out.append((r, len(r)))``
                value[i] = resolve(item)
    elif kind is dict:
        for key, item in value.items():
            if type(item) is Pending:
                value[key] = item.task.inv.force(item.task)
            elif type(item) is tuple and holds(item):
                value[key] = resolve(item)
    elif kind is tuple and holds(value):
        return tuple(resolve(item) if type(item) is Pending else item for item in value)
    return value


def holds(items: tuple[Any, ...]) -> bool:
    return any(type(item) is Pending for item in items)


def resolved(value: Any) -> Any:
    """Like ``resolve`` for a task whose inputs are known to be finished."""
    return resolve(value) if type(value) in (Pending, list, dict, tuple) else value


def pending_in(args: tuple[Any, ...], kwargs: dict[str, Any], scan: bool = True) -> list[Task]:
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
