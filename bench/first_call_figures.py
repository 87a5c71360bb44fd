"""The first call of a freshly jitted function, against the plain call.

Four programs on a sleep model of 50 ms a call: 16 independent calls, the seed
loop (three calls an iteration, four iterations, their sum appended), three drafts
and a judge, and a chain of five.  Each is jitted anew, in a process that has
forgotten every callee (``xcs._callees.clear()``): the first call learns from its
own first call of the model that the model is slow.  A second column gives the
first call of a second function over a model the process already knows.  Then
the trial's cost on 10,000 tiny calls, and the cost of a deferred call over a
hand-written ``ThreadPoolExecutor.map``.  Run it from the repository root::

    python -m bench.first_call_figures [--markdown]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from xcs import _callees, jit

LATENCY = 0.05
REPEAT = 3


def model(x: Any) -> Any:
    time.sleep(LATENCY)
    return x * 2


def sixteen(xs: list[int]) -> list[int]:
    return [model(x) for x in xs]


def seed_loop() -> list[int]:
    out = []
    for i in range(4):
        a = model(i)
        b = model(i + 1)
        c = model(i + 2)
        out.append(a + b + c)
    return out


def drafts_and_judge(q: str) -> str:
    d1 = model(q + " 1")
    d2 = model(q + " 2")
    d3 = model(q + " 3")
    return model("judge: " + d1 + d2 + d3)


def chain(x: int) -> int:
    a = model(x)
    b = model(a)
    c = model(b)
    d = model(c)
    return model(d)


PROGRAMS: list[tuple[str, Callable[..., Any], tuple[Any, ...]]] = [
    ("16 independent calls", sixteen, (list(range(16)),)),
    ("seed loop (12 calls)", seed_loop, ()),
    ("3 drafts + judge", drafts_and_judge, ("q",)),
    ("chain of 5", chain, (1,)),
]


def _timed(fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def _copy(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Another function with ``fn``'s code: freshly jitted, it has no plan of its own."""
    import types

    assert isinstance(fn, types.FunctionType)
    return types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__,
                              fn.__closure__)


def first_calls() -> list[tuple[str, float, float, float, bool]]:
    """(program, plain s, first call s with nothing known, first call s with the model
    known, results identical) for each program: medians of REPEAT."""
    rows = []
    for name, fn, args in PROGRAMS:
        plain, cold, warm = [], [], []
        same = True
        for _ in range(REPEAT):
            expected, t = _timed(fn, args)
            plain.append(t)
            _callees.clear()
            got, t = _timed(jit(_copy(fn)), args)
            cold.append(t)
            got2, t = _timed(jit(_copy(fn)), args)  # the model is known now
            warm.append(t)
            same = same and got == expected and got2 == expected
        rows.append((name, statistics.median(plain), statistics.median(cold),
                     statistics.median(warm), same))
    return rows


def tiny(x: str) -> str:
    return x


def tiny_loop(xs: list[str]) -> int:
    total = 0
    for x in xs:
        total += len(x) + len(tiny(x))
    return total


def trial_cost(n: int = 10_000) -> tuple[float, float]:
    """(plain s, first call s) of ``tiny_loop`` over ``n`` items: medians of 7."""
    xs = [str(i) for i in range(n)]
    plain = statistics.median(_timed(tiny_loop, (xs,))[1] for _ in range(7))
    first = statistics.median(_timed(jit(_copy(tiny_loop)), (xs,))[1] for _ in range(7))
    return plain, first


def sleep_10ms(x: int) -> int:
    time.sleep(0.01)
    return x


def map_items(xs: list[int]) -> list[int]:
    return [sleep_10ms(x) for x in xs]


def deferral_cost(n: int = 256, rounds: int = 15) -> tuple[float, float]:
    """Microseconds added per deferred call over ``pool.map`` (wall clock, CPU time), for
    ``n`` calls of 10 ms on a pool of ``n`` threads: medians over ``rounds``."""
    pool = ThreadPoolExecutor(n)
    xs = list(range(n))
    list(pool.map(sleep_10ms, xs))  # start the threads
    fn = jit(map_items, executor=pool)
    fn(xs)
    fn(xs)
    wall_pool, wall_jit, cpu_pool, cpu_jit = [], [], [], []
    for _ in range(rounds):
        c = time.process_time()
        _, t = _timed(lambda: list(pool.map(sleep_10ms, xs)), ())
        wall_pool.append(t)
        cpu_pool.append(time.process_time() - c)
        c = time.process_time()
        _, t = _timed(fn, (xs,))
        wall_jit.append(t)
        cpu_jit.append(time.process_time() - c)
    pool.shutdown()
    assert fn.stats().signatures[0].status == "optimized"
    per = 1e6 / n
    return ((statistics.median(wall_jit) - statistics.median(wall_pool)) * per,
            (statistics.median(cpu_jit) - statistics.median(cpu_pool)) * per)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="one table row per figure")
    args = parser.parse_args(argv)
    version = ".".join(map(str, sys.version_info[:3]))
    for name, plain, cold, warm, same in first_calls():
        text = (f"plain {plain * 1e3:.0f} ms, first call {cold * 1e3:.0f} ms "
                f"({plain / cold:.2f}x, {cold / LATENCY:.1f} latencies); model known: "
                f"{warm * 1e3:.0f} ms ({plain / warm:.2f}x); identical: {'yes' if same else 'NO'}")
        print(f"| {version} | {name} | {text} |" if args.markdown else f"{version} {name}: {text}")
    plain, first = trial_cost()
    text = f"plain {plain * 1e3:.2f} ms, first call {first * 1e3:.2f} ms: {first / plain:.0f}x"
    print(f"| {version} | trial of 10,000 tiny calls | {text} |" if args.markdown
          else f"{version} trial of 10,000 tiny calls: {text}")
    wall, cpu = deferral_cost()
    text = f"{wall:.1f} us wall clock, {cpu:.1f} us CPU time"
    print(f"| {version} | per deferred call over pool.map (256 x 10 ms) | {text} |"
          if args.markdown else f"{version} per deferred call over pool.map: {text}")


if __name__ == "__main__":
    main()
