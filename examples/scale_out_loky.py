"""CPU-bound callees on worker processes with loky's reusable executor.

Threads cannot run pure-Python CPU work side by side under the GIL, so on the
default thread pool xcs leaves such calls where they are (``explain()`` says
"CPU-bound").  Give ``jit`` a process pool and the same calls are spread over
the cores.  loky's executor pickles callees with cloudpickle, so functions
defined in ``__main__`` (and lambdas) travel to the workers; their arguments
and results must be picklable too.

Run it::

    python examples/scale_out_loky.py

Needs xcs (``pip install .`` in the repository) and ``pip install loky``.
The speedup grows with the number of free cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from loky import get_reusable_executor

from xcs import jit


def count_primes(limit: int) -> int:
    """Count the primes below ``limit`` the slow way: pure Python, all CPU."""
    count = 0
    for n in range(2, limit):
        d = 2
        while d * d <= n:
            if n % d == 0:
                break
            d += 1
        else:
            count += 1
    return count


def prime_table(limits: list[int]) -> dict[int, int]:
    """How many primes lie below each limit: independent CPU-bound calls."""
    counts = [count_primes(limit) for limit in limits]
    return dict(zip(limits, counts))


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--size", type=int, default=120_000, help="limit of each count")
    args = parser.parse_args(argv)
    limits = [args.size + k for k in range(2 * args.workers)]

    executor = get_reusable_executor(max_workers=args.workers)
    executor.submit(int).result()  # start the worker processes before timing anything

    on_threads = jit(prime_table)
    on_processes = jit(executor=executor)(prime_table)
    expected, plain = timed(prime_table, limits)
    print(f"{len(limits)} prime counts, plain: {plain:.2f} s")
    for name, fn in [("default thread pool", on_threads), (f"loky, {args.workers} processes", on_processes)]:
        fn(limits)  # the trial
        result, fast = timed(fn, limits)
        if fn.stats().optimized:
            plan = "calls deferred"
        else:  # explain() says why each call site stayed in place
            notes = [line.split(": ", 2)[-1] for line in fn.explain().splitlines()
                     if "not deferred" in line]
            plan = "stays plain: " + (notes[0] if notes else fn.stats().signatures[0].reason)
        print(f"  jit on {name}: {fast:.2f} s ({plain / fast:.1f}x), {plan}, "
              f"identical to plain: {'yes' if result == expected else 'NO'}")
        if result != expected:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
