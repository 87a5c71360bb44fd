"""What a deferred call costs in CPU instructions, a figure the machine's load cannot move.

Wall-clock and CPU-time figures of a deferred call (``first_call_figures``,
``test_overhead``) swing by 2-3x on a shared machine.  This counts instructions
instead, under valgrind's callgrind: the process runs a replayed body of ``N``
deferred calls on an executor that runs each call inside ``submit`` (so one
thread does all the work, and no thread waits or switches), and the same calls
submitted by hand to the same executor.  Each is run with ``R`` and ``4 * R``
rounds and the difference taken, so that start-up and the trial cancel out::

    python -m bench.instructions          # needs valgrind on PATH

The figure is the extra instructions per deferred call (xcs's bookkeeping: the
task record, ownership keys, the placeholder, the hooks), against the hand-driven
executor's per-call count.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

N = 256  # calls per round
ROUNDS = 2  # rounds of the shorter run; the longer one runs 4x as many

slow = True


def work(x: int) -> int:
    if slow:  # slow while the trial learns the plan; then as cheap as a call can be
        time.sleep(0.002)
    return x


def map_items(xs: list[int]) -> list[int]:
    return [work(x) for x in xs]


class Inline(ThreadPoolExecutor):
    """Runs each call inside ``submit``: the whole path of a deferred call on one thread.
    A ThreadPoolExecutor, so that xcs treats it as the pool it stands for (it starts no
    thread)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed over, as a pool would
            future.set_exception(exc)
        return future


def _run(mode: str, rounds: int) -> None:
    """One measured process: plan with a slow ``work``, then ``rounds`` fast rounds."""
    global slow
    from xcs import jit

    executor = Inline()
    xs = list(range(N))
    fn = jit(map_items, executor=executor)
    fn(xs)
    fn(xs)
    assert fn.stats().signatures[0].status == "optimized", fn.explain()
    slow = False
    if mode == "jit":
        for _ in range(rounds):
            assert fn(xs) == xs
    else:
        for _ in range(rounds):
            assert [f.result() for f in [executor.submit(work, x) for x in xs]] == xs


def _count(mode: str, rounds: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        # One hash seed: with a random one, the count of the same code moves by 10-15k
        # per call from run to run (set and dict probes, the gc's timing).
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
             sys.executable, "-m", "bench.instructions", "--run", mode, str(rounds)],
            capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": "0"})
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no count:\n{proc.stderr}")
    return int(found.group(1))


def per_call(mode: str) -> float:
    """Instructions per call of ``mode`` ("jit" or "hand"), start-up subtracted."""
    short, long = _count(mode, ROUNDS), _count(mode, 4 * ROUNDS)
    return (long - short) / (3 * ROUNDS * N)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", nargs=2, metavar=("MODE", "ROUNDS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        _run(args.run[0], int(args.run[1]))
        return
    if shutil.which("valgrind") is None:
        sys.exit("bench.instructions needs valgrind (e.g. apt install valgrind)")
    hand, jitted = per_call("hand"), per_call("jit")
    version = ".".join(map(str, sys.version_info[:3]))
    print(f"{version}: a call submitted by hand {hand / 1e3:.1f}k instructions, deferred by "
          f"xcs {jitted / 1e3:.1f}k: {(jitted - hand) / 1e3:.1f}k more per deferred call")


if __name__ == "__main__":
    main()
