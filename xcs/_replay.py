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

import contextvars
import operator
from typing import Any

from xcs import _owners
from xcs._codes import WRITERS, is_writer
from xcs._frames import Frames
from xcs._scheduling import C_CALLABLES
from xcs._tasks import (
    ANYWHERE,
    CANCELLED,
    DONE,
    FAILED,
    FINISHED,
    OPERATOR,
    Pending,
    Skipped,
    Task,
    pending_in,
    resolve,
    resolved,
)
from xcs._values import stays_here
from xcs._waiting import Waiting

# Builtins whose result never holds their arguments' items: ``len(results)`` on
# a list holding placeholders needs none of them.
_SHALLOW_RESULT = frozenset(map(id, (len, isinstance, issubclass, id, type, callable, hasattr,
                                     bool)))
_new = object.__new__


class Invocation(Waiting):
    """The deferred calls of one replayed call of a jitted function."""

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
        deps = pending_in(args, kwargs, scan)
        if type(fn) is Pending:  # ``r.strip`` of a result: called when it exists
            deps.append(fn.task)
        if self.writers and _owners.OWNED:
            deps += self._after_writers((fn, *args, *kwargs.values()), deps)
        if WRITERS and is_writer(fn):  # a filter deferred whole: in order too
            self.writers.add(task)
        if self.claimable:
            task.ctx = contextvars.copy_context()
        return self._enqueue(task, deps)

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
        deps = pending_in(args, kwargs, scan)
        if type(fn) is Pending:
            deps.append(fn.task)
        # Continuations that run Python code (a helper may print, log or count) run in
        # program order, one after the other: their own effects keep plain's order.
        python = type(fn) not in C_CALLABLES and not isinstance(fn, type)
        previous = self.ordered if python else None
        if previous is not None and previous.state not in FINISHED:
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
            deps += [t for t in found if t.state not in FINISHED and t not in deps]
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
        deps = pending_in(operands, {})
        previous = self.ordered if kind == ANYWHERE else None
        if previous is not None and previous.state not in FINISHED:
            deps.append(previous)
        elif all(dep.state == DONE for dep in deps):
            return fn(*map(resolved, operands))
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
                    task.error = Skipped()
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
