"""Callees for the process-executor tests, in a module that worker processes can import.

Functions defined in a test module would be pickled by reference to that
module, which a worker process would then import with all of pytest behind
it; these live on their own.
"""

from __future__ import annotations

import os
import time


def count_primes(limit: int) -> int:
    """Count the primes below ``limit`` in pure Python: CPU-bound, holds the GIL."""
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


def slow_square(x: int, delay: float = 0.2) -> int:
    """``x * x`` after ``delay`` seconds: an I/O-like call that any executor can run."""
    time.sleep(delay)
    return x * x


def fresh_token(delay: float = 0.05) -> str:
    """A new random token after ``delay`` seconds: equal calls, different answers."""
    time.sleep(delay)
    return os.urandom(8).hex()
