"""A throttle's slots and rate: when each call may start.

Calls wait in a queue ordered by rank, then by submission; ``Slots`` starts every
queued call that the cap (``max_in_flight``) and the rate allow, and lets a call
made in the calling thread take a slot and the rate too (``acquire``).  What
starting a call means, handing it to the wrapped executor, is ``Throttle``'s
(``_executors``).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

__all__ = ["Item", "Slot", "Slots", "held_slots"]


class Slot:
    """A slot of a throttle taken by a call running in some thread."""

    __slots__ = ("held", "throttle")

    def __init__(self, throttle: Slots) -> None:
        self.throttle = throttle
        self.held = True  # False once given back (the call ended, or it submits work)


class Held(threading.local):
    """The slots this thread's running calls hold, innermost last."""

    def __init__(self) -> None:
        self.stack: list[Slot] = []


held_slots = Held()


class Pumping(threading.local):
    def __init__(self) -> None:
        self.stack: list[Slots] = []  # the throttles this thread is starting calls of


pumping = Pumping()


class Item:
    """A call waiting in a throttle's queue."""

    __slots__ = ("args", "fn", "future", "key", "kwargs", "ran", "stolen")

    def __init__(self, key: tuple[float, int], fn: Callable[..., Any] | None, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> None:
        self.key = key  # (-rank, submission number): the smallest starts first
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.future: Future[Any] = Future()
        self.ran = False  # the wrapped executor started it
        self.stolen = False  # a waiting worker ran it instead (see ``run_one_here``)

    def __lt__(self, other: Item) -> bool:
        return self.key < other.key


class Slots:
    """The cap and the rate of a throttle, and its queue of calls waiting to start."""

    def __init__(self, executor: Executor, max_in_flight: int | None, interval: float) -> None:
        self.executor = executor  # where the calls run
        self.max_in_flight = max_in_flight
        self.interval = interval  # seconds between two starts; 0 for no rate limit
        chain = [self]  # this throttle and those it wraps, outermost first
        while isinstance(chain[-1].executor, Slots):
            chain.append(chain[-1].executor)
        self._chain = tuple(chain)
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[Item] = []  # a heap
        # Calls started (in a slot) and handed to the wrapped executor, no worker has
        # taken yet: a worker waiting for one may run it (``run_one_here``).
        self._handed: dict[Future[Any], Item] = {}
        self._count = itertools.count()
        self._running = 0  # calls started and not finished
        self._next = 0.0  # monotonic time before which no call may start
        self._starting = threading.Lock()  # held by the call that is starting
        self._last = -float("inf")  # when the latest call started (in this process)
        self._timer: threading.Thread | None = None  # starts queued calls when the rate allows
        self._closed = False

    def _start(self, item: Item) -> None:
        """Hand a call that may start now to the executor (``Throttle._start``)."""
        raise NotImplementedError

    def holds_slot(self) -> bool:
        """Whether the calling thread runs a call in a slot of this throttle or of one
        it wraps (a throttle over a throttle)."""
        chain = self._chain
        return any(slot.held and slot.throttle in chain for slot in held_slots.stack)

    def run_in_slot(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` in this thread, in the slot its current call holds.

        A call that waits for a call queued behind it (a jitted function on this
        throttle waiting for its own deferred call) runs that call itself: the
        slot stays taken by one running call, and the rate still applies.
        """
        self.acquire_rate()
        fn()

    def acquire(self) -> list[Slot] | None:
        """Wait for a slot and the rate for a call the calling thread makes itself.

        A trial runs its calls in the body's thread; they count against the cap
        and the rate (of this throttle and of those it wraps) like the calls
        queued here, ahead of them (the body waits).  None when this thread holds
        a slot already (a call of this throttle making its own): then only the
        rate applies.  Give what it returns to ``release``.
        """
        if self.holds_slot():
            self.acquire_rate()
            return None
        taken = []
        for throttle in self._chain:
            item = Item((-float("inf"), next(throttle._count)), None, (), {})
            with throttle._cond:
                heapq.heappush(throttle._queue, item)
            throttle._pump()
            item.future.result()  # set when the slot is taken (never cancelled)
            throttle._gate()
            slot = Slot(throttle)
            held_slots.stack.append(slot)
            taken.append(slot)
        return taken

    def acquire_rate(self) -> None:
        """Wait for the rate only, for a call made in a slot this thread holds."""
        for throttle in self._chain:
            throttle._gate()

    def release(self, taken: list[Slot] | None) -> None:
        """Give back the slots ``acquire`` took."""
        for slot in reversed(taken or ()):
            held_slots.stack.remove(slot)
            if slot.held:
                slot.held = False
                slot.throttle._finished()

    # -- internals -------------------------------------------------------------
    def _pump(self) -> None:
        """Start every queued call that the cap and the rate allow now.

        An executor that runs a call inside ``submit`` (or a call that ends at
        once) comes back here from ``_start``: that inner call only asks the
        outer loop to go on, so a long queue is a loop, not a recursion.
        """
        if self in pumping.stack:  # the loop below takes the next call after this one
            return
        pumping.stack.append(self)
        try:
            while True:
                with self._cond:
                    item = self._take()
                if item is None:
                    return
                if item.future.set_running_or_notify_cancel():
                    self._start(item)
                else:
                    with self._cond:
                        self._running -= 1
        finally:
            pumping.stack.remove(self)

    def _take(self) -> Item | None:
        """Under the lock: the next call to start now, or None (then arm the timer)."""
        queue = self._queue
        while queue and queue[0].future.cancelled():
            heapq.heappop(queue)
        if not queue:
            self._cond.notify_all()  # shutdown(wait=True) may be waiting
            return None
        if self.max_in_flight is not None and self._running >= self.max_in_flight:
            return None
        now = time.monotonic()
        if now < self._next:
            if self._timer is None:
                self._timer = threading.Thread(target=self._wait_for_rate, daemon=True,
                                               name="xcs-throttle")
                self._timer.start()
            return None
        self._running += 1
        self._next = now + self.interval
        return heapq.heappop(queue)

    def _wait_for_rate(self) -> None:
        while True:
            with self._cond:
                delay = self._next - time.monotonic()
                if delay <= 0 or not self._queue:
                    self._timer = None
                    break
            time.sleep(delay)
        self._pump()

    def _gate(self) -> None:
        """Wait until this call may start: the start times themselves are spaced.

        The queue spaces the submissions to the wrapped executor; a call that
        waited there for a worker could start right after another one, so the
        start is checked again where it happens, one call at a time.
        """
        if not self.interval:
            return
        with self._starting:
            delay = self._last + self.interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._last = time.monotonic()

    def _finished(self) -> None:
        with self._cond:
            self._running -= 1
        self._pump()
