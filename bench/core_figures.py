"""The core figures, without pytest-benchmark: 16 independent calls, drafts + judge, a chain.

Each program is jitted and called twice (the trial, then a first replay); then the
median of 5 jitted calls is compared with the median of 3 plain calls, and the
results with ``==``.  The sleep model waits 50 ms per call.  Run it from the
repository root with xcs importable::

    python bench/core_figures.py
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from xcs import jit

LATENCY = 0.05


def m(*args: Any) -> str:
    time.sleep(LATENCY)
    return f"m{args}"


def fan_out(m: Callable[..., str]) -> list[str]:
    return [m("item", i) for i in range(16)]


def drafts_and_judge(m: Callable[..., str], q: str) -> str:
    drafts = [m("draft", k, q) for k in range(3)]
    return m("judge", *drafts)


def chain(m: Callable[..., str], x: str) -> str:
    for k in range(5):
        x = m("step", k, x[:10])
    return x


def _seconds(fn: Callable[..., Any], args: tuple[Any, ...]) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    version = ".".join(map(str, sys.version_info[:3]))
    programs: list[tuple[str, Callable[..., Any], tuple[Any, ...]]] = [
        ("16 independent calls", fan_out, (m,)),
        ("3 drafts + judge", drafts_and_judge, (m, "q")),
        ("chain of 5", chain, (m, "x")),
    ]
    for name, fn, args in programs:
        jitted = jit(fn)
        jitted(*args)  # the trial
        jitted(*args)  # the first replay
        fast = statistics.median(_seconds(jitted, args) for _ in range(5))
        plain = statistics.median(_seconds(fn, args) for _ in range(3))
        assert jitted(*args) == fn(*args)
        status = jitted.stats().signatures[0].status
        print(f"{version} | {name} | plain {plain * 1e3:.1f} ms | jit {fast * 1e3:.1f} ms "
              f"| {plain / fast:.2f}x | {status}")


if __name__ == "__main__":
    main()
