"""Callees for the process-executor tests, in a module that worker processes can import.

Functions defined in a test module would be pickled by reference to that
module, which a worker process would then import with all of pytest behind
it; these live on their own.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


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


def count_primes_met(limit: int, directory: str, parties: int,
                     timeout: float = 60.0) -> tuple[int, int]:
    """``count_primes(limit)`` and this process's id, once calls in ``parties`` processes
    have entered this function with ``directory``: a rendezvous across processes.

    Each call leaves a file named after its process in ``directory`` and waits until
    there are ``parties`` of them, so the first call of a process cannot return before a
    call in another process has started: the two ran at the same time.  Raises
    ``TimeoutError`` after ``timeout`` seconds rather than hang.
    """
    Path(directory, str(os.getpid())).touch()
    deadline = time.monotonic() + timeout
    while len(os.listdir(directory)) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no call in {parties} processes at once within {timeout} s")
        time.sleep(0.005)
    return count_primes(limit), os.getpid()


def slow_square(x: int, delay: float = 0.2) -> int:
    """``x * x`` after ``delay`` seconds: an I/O-like call that any executor can run."""
    time.sleep(delay)
    return x * x


def fresh_token(delay: float = 0.05) -> str:
    """A new random token after ``delay`` seconds: equal calls, different answers."""
    time.sleep(delay)
    return os.urandom(8).hex()
