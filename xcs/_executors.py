"""Executors: xcs's shared pool, what the replay must know of an executor, and ``throttle``.

A ``Throttle`` wraps another executor and decides *when* each call submitted
to it starts: never more than ``max_in_flight`` running, starts spaced at
least ``1 / rate`` apart.  Calls wait in a queue ordered by rank, then by
submission: the replay ranks a deferred call by the longest chain of calls
that depends on it in the trial (its "bottom level"), so that the critical
path gets a free slot first.  The throttle never changes what is called.
"""

from __future__ import annotations

import decimal
import heapq
import math
import numbers
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from xcs._errors import XcsTypeError, XcsValueError
from xcs._slots import Item, Slot, Slots, held_slots

__all__ = ["Throttle", "default_executor", "picklable", "remote", "throttle"]

DEFAULT_WORKERS = 512  # threads are started on demand; I/O-bound calls need many
_default: ThreadPoolExecutor | None = None
_default_lock = threading.Lock()
_CLOUDPICKLING = ("loky", "distributed", "dask")

P = ParamSpec("P")
T = TypeVar("T")


def default_executor() -> ThreadPoolExecutor:
    """The shared thread pool that jitted functions use unless given an executor."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = ThreadPoolExecutor(DEFAULT_WORKERS, thread_name_prefix="xcs")
    return _default


def remote(executor: Executor) -> bool:
    """Whether ``executor`` runs calls in other processes, so that they must be pickled.

    Every other executor (a thread pool, a forwarding wrapper, a user's own) runs
    them in this process: its tasks get the caller's contextvars, and a task not
    started yet can be taken back by a thread that waits for it.  A throttle
    runs calls where the executor it wraps runs them.
    """
    executor = _innermost(executor)
    return (isinstance(executor, ProcessPoolExecutor)
            or type(executor).__module__.split(".")[0] in _CLOUDPICKLING)


def _innermost(executor: Executor) -> Executor:
    """The executor that runs the calls, under any throttles wrapping it."""
    while isinstance(executor, Throttle):
        executor = executor.executor
    return executor


def picklable(executor: Executor, payload: Any) -> bool:
    """Whether a process or cluster executor will be able to send ``payload`` to a worker."""
    executor = _innermost(executor)
    if type(executor).__module__.split(".")[0] in _CLOUDPICKLING:
        try:
            import cloudpickle as pickler  # type: ignore[import-not-found,import-untyped,unused-ignore]
        except ImportError:
            import pickle as pickler
    else:
        import pickle as pickler
    try:
        pickler.dumps(payload)
    except Exception:
        return False
    return True


class Throttle(Slots, Executor):
    """An executor that starts the calls submitted to it within a cap and a rate.

    Made by ``xcs.throttle``; see there.  ``shutdown`` stops this throttle
    (and waits for its calls), not the executor it wraps, which others may share.
    """

    def __init__(self, executor: Executor, max_in_flight: int | None, interval: float) -> None:
        super().__init__(executor, max_in_flight, interval)
        self._remote = remote(executor)

    # -- Executor --------------------------------------------------------------
    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Queue ``fn(*args, **kwargs)``; it starts when the cap and the rate allow."""
        return self.submit_ranked(0.0, fn, *args, **kwargs)

    def submit_ranked(self, rank: float, fn: Callable[..., T], /, *args: Any,
                      **kwargs: Any) -> Future[T]:
        """``submit``, ahead of every queued call of a lower ``rank``.

        A call running in a slot of this throttle that submits more work to it
        gives its slot back first: it hands out work (it will wait for it) and
        is not a request itself; keeping the slot could leave none for the work.
        """
        item = Item((-rank, next(self._count)), fn, args, kwargs)
        with self._cond:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            heapq.heappush(self._queue, item)
        for slot in held_slots.stack:
            if slot.held and slot.throttle is self:
                slot.held = False
                with self._cond:
                    self._running -= 1
        self._pump()
        return item.future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._cond:
            self._closed = True
            if cancel_futures:
                for item in self._queue:
                    if item.fn is not None:  # not a trial's call waiting in ``acquire``
                        item.future.cancel()
            self._cond.notify_all()
        self._pump()  # drops the cancelled ones
        if wait:
            with self._cond:
                while self._queue or self._running:
                    self._cond.wait()

    def __repr__(self) -> str:
        limits = []
        if self.max_in_flight is not None:
            limits.append(f"max_in_flight={self.max_in_flight}")
        if self.interval:
            limits.append(f"per_second={1 / self.interval:g}")
        return f"<xcs.Throttle {', '.join(limits)} over {type(self.executor).__name__}>"

    # -- what the replay needs ---------------------------------------------------
    @property
    def _max_workers(self) -> int | None:
        """How many calls can run at once, for the replay's estimate."""
        inner = getattr(self.executor, "_max_workers", None)
        caps = [n for n in (self.max_in_flight, inner) if isinstance(n, int)]
        return min(caps) if caps else None

    def run_one_here(self, future: Future[Any]) -> bool:
        """Run, in this thread, a call that is started or may start now: ``future``'s own
        if it is one, else the next the cap and the rate allow, else any started call
        the wrapped executor has not given a worker.  False if there is none (every slot
        is taken by a running call: wait for one to end, then ask again).

        For a worker whose call gave its slot back (it submitted work here) and waits
        for ``future``: the wrapped executor may have no free worker (all of them
        waiting like this one) or run calls inside ``submit`` (then the call submitting
        them is still starting one); a call queued there holds a slot it cannot use.
        """
        with self._cond:
            item = self._handed.pop(future, None)
            if item is None:
                item = self._take()
                if item is None and self._handed:
                    item = self._handed.pop(next(iter(self._handed)))
            if item is None:
                return False
            item.stolen = True
        if not item.future.running() and not item.future.set_running_or_notify_cancel():
            self._finished()  # taken from the queue, cancelled there
            return True
        if item.fn is None:  # a trial's call waiting in ``acquire``: it has its slot now
            item.future.set_result(None)
            return True
        try:
            value = self._run(item, here=True)
        except BaseException as exc:
            item.future.set_exception(exc)
        else:
            item.future.set_result(value)
        return True

    def _start(self, item: Item) -> None:
        if item.fn is None:  # a thread waiting in ``acquire``: its slot is taken
            item.future.set_result(None)
            return
        try:
            assert item.fn is not None
            if self._remote:  # runs in another process: the throttle times the submission
                inner = self.executor.submit(item.fn, *item.args, **item.kwargs)
            else:
                with self._cond:
                    self._handed[item.future] = item
                inner = self.executor.submit(self._run, item)
        except BaseException as exc:
            with self._cond:
                if self._handed.pop(item.future, None) is None and item.stolen:
                    return  # a waiting worker ran it
            item.future.set_exception(exc)
            self._finished()
            return
        inner.add_done_callback(lambda done: self._relay(done, item))

    def _run(self, item: Item, here: bool = False) -> Any:
        """On the wrapped executor's worker (or ``here``, in a waiting worker that took
        it): start at the rate, hold the slot while running."""
        if not here:
            with self._cond:
                if item.stolen:
                    return None  # a waiting worker runs it (``_relay`` leaves it alone)
                del self._handed[item.future]
        item.ran = True
        slot = Slot(self)
        try:
            self._gate()
            held_slots.stack.append(slot)
            try:
                return item.fn(*item.args, **item.kwargs)  # type: ignore[misc]
            finally:
                held_slots.stack.remove(slot)
        finally:
            if slot.held:  # else given back when the call submitted work here
                slot.held = False
                self._finished()

    def _relay(self, inner: Future[Any], item: Item) -> None:
        if item.stolen:  # a waiting worker ran it, gave its slot back and set its future
            return
        outer = item.future
        if inner.cancelled():  # the wrapped executor dropped it (it is shutting down)
            outer.set_exception(CancelledError())
            with self._cond:
                self._running -= 1
            # Not from here: this callback runs inside the wrapped executor's
            # shutdown, and starting the next call would submit to it there.
            threading.Thread(target=self._pump, daemon=True, name="xcs-throttle").start()
            return
        if self._remote or not item.ran:  # else ``_run`` gave the slot back
            self._finished()
        error = inner.exception()
        if error is not None:
            outer.set_exception(error)
        else:
            outer.set_result(inner.result())


def throttle(executor: Executor | None = None, *, max_in_flight: int | None = None,
             per_second: float | None = None, per_minute: float | None = None) -> Throttle:
    """An executor that caps the calls in flight and their start rate, across all its users.

    Pass it to ``jit(executor=...)``: every jitted function and thread that
    shares it shares its limits.  Throttling changes when calls start, never
    what is called.  When calls queue for a slot, a jitted function's calls on
    the critical path of its plan (the longest chain of dependent calls) start
    first; other submitted calls start in the order they came.

    Args:
        executor: where the calls run (default: xcs's shared thread pool).
        max_in_flight: never more than this many calls running at once.
        per_second: starts spaced at least ``1 / per_second`` seconds apart (no
            bursts), so no window of a provider's rate limit is exceeded.
        per_minute: the same, per minute; with both, the stricter one holds.

    Returns:
        A ``concurrent.futures.Executor``.  Its ``shutdown`` stops the throttle
        and leaves the wrapped executor running.

    Raises:
        TypeError: ``executor`` is not an Executor, or a limit is not a number.
        ValueError: no limit is given, or a limit is not positive.
    """
    if executor is not None and not isinstance(executor, Executor):
        raise XcsTypeError("throttle() executor must be a concurrent.futures.Executor, "
                           f"not {type(executor).__name__}: {executor!r}")
    if max_in_flight is not None:
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, numbers.Integral):
            raise XcsTypeError("throttle() max_in_flight must be an int, "
                               f"not {type(max_in_flight).__name__}: {max_in_flight!r}")
        max_in_flight = int(max_in_flight)
        if max_in_flight < 1:
            raise XcsValueError(f"throttle() max_in_flight must be at least 1, not {max_in_flight}")
    interval = 0.0
    for name, value, seconds in (("per_second", per_second, 1.0), ("per_minute", per_minute, 60.0)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real | decimal.Decimal):
            raise XcsTypeError(f"throttle() {name} must be a number, "
                               f"not {type(value).__name__}: {value!r}")
        try:
            rate = float(value)  # OverflowError: an int past float's range; a signalling NaN
        except (ArithmeticError, ValueError):
            rate = math.nan
        if not rate > 0 or not math.isfinite(seconds / rate) or math.isinf(rate):
            raise XcsValueError(f"throttle() {name} must be a positive finite number, not {value!r}")
        interval = max(interval, seconds / rate)
    if max_in_flight is None and not interval:
        raise XcsValueError("throttle() needs a limit: max_in_flight, per_second or per_minute")
    return Throttle(executor if executor is not None else default_executor(), max_in_flight,
                    interval)
