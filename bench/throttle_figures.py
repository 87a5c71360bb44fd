"""Critical path first: what ranking queued calls buys when calls compete for two slots.

The workload: a function makes 16 independent calls, then a chain of 8 calls
that each need the previous result (every call 30 ms), on an executor with two
slots.  Plain runs 24 calls one after the other.  A first-come-first-served
queue (a hand-written pool of two, or a throttle that ignores the ranks xcs
gives) starts the chain's first call only after the 16
independent ones, then runs the chain alone; ``xcs.throttle`` ranks each
deferred call by the longest chain behind it in the trial, so the chain keeps
one slot busy while the other drains the independent calls::

    python -m bench.throttle_figures [--latency 0.03] [--repeat 5]

Printed: the minimum over the repeats of each version's wall time, the
floors (critical path 8 calls; 24 calls on 2 slots), and the gain of ranking
over the first-come-first-served throttle.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

import xcs
from xcs import jit
from xcs._executors import Throttle, default_executor

SIDE, CHAIN, SLOTS = 16, 8, 2
LATENCY = 0.03


def call(x: Any) -> Any:
    time.sleep(LATENCY)
    return x


def step(x: int) -> int:
    time.sleep(LATENCY)
    return x + 1


def workload(n_side: int, n_chain: int) -> tuple[list[str], int]:
    sides = [call(f"side {i}") for i in range(n_side)]
    x = 1000
    for _ in range(n_chain):
        x = step(x)
    return sides, x


def by_hand(pool: Executor, n_side: int, n_chain: int) -> tuple[list[str], int]:
    """The same calls on a pool, written by hand: first come, first served."""
    sides = [pool.submit(call, f"side {i}") for i in range(n_side)]
    x = 1000
    for _ in range(n_chain):
        x = pool.submit(step, x).result()
    return [f.result() for f in sides], x


class Unranked(Throttle):
    """A throttle that ignores the ranks xcs gives: first come, first served."""

    def submit_ranked(self, rank: float, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        return super().submit_ranked(0.0, fn, *args, **kwargs)


def best(fn: Any, *args: Any, repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv: list[str] | None = None) -> None:
    global LATENCY
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=LATENCY, help="seconds per call")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    LATENCY = args.latency
    expected = workload(SIDE, CHAIN)
    ranked = jit(executor=xcs.throttle(max_in_flight=SLOTS))(workload)
    fifo = jit(executor=Unranked(default_executor(), SLOTS, 0.0))(workload)
    for fn in (ranked, fifo):  # the trials
        assert fn(SIDE, CHAIN) == expected
    rows = [("plain", *best(workload, SIDE, CHAIN, repeat=1))]
    with ThreadPoolExecutor(SLOTS) as pool:
        rows.append(("hand-written pool of 2 (FIFO)", *best(by_hand, pool, SIDE, CHAIN,
                                                              repeat=args.repeat)))
    rows.append(("jit, throttle without ranks (FIFO)", *best(fifo, SIDE, CHAIN, repeat=args.repeat)))
    rows.append(("jit, xcs.throttle (critical path first)", *best(ranked, SIDE, CHAIN,
                                                                   repeat=args.repeat)))
    assert all(result == expected for _, _, result in rows), "a version returned another result"
    python = "{}.{}".format(*sys.version_info[:2])
    print(f"Python {python}: {SIDE} independent calls + a chain of {CHAIN}, "
          f"{LATENCY * 1e3:.0f} ms each, {SLOTS} slots")
    floor = max(CHAIN, (SIDE + CHAIN) / SLOTS) * LATENCY
    for name, seconds, _ in rows:
        print(f"  {name:42s} {seconds * 1e3:7.1f} ms  ({seconds / floor:.2f}x the floor)")
    print(f"  floor: max(critical path {CHAIN * LATENCY * 1e3:.0f} ms, "
          f"{SIDE + CHAIN} calls on {SLOTS} slots {(SIDE + CHAIN) / SLOTS * LATENCY * 1e3:.0f} ms)"
          f" = {floor * 1e3:.0f} ms")
    print(f"  gain of critical path first over FIFO: {rows[2][1] / rows[3][1]:.2f}x")


if __name__ == "__main__":
    main()
