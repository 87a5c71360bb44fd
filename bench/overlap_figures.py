"""Overlap figures for the shapes issue 14 had to keep: map, diamond, loop, openai-client map.

Each program is jitted and called twice (the trial, then a first replay); then the
median of 5 jitted calls is compared with the median of 2 plain calls.  The sleep
model waits 50 ms per call; the openai client talks to the repository's local
OpenAI-compatible server (50 ms per completion), and the jitted function owns the
client's ``completions`` object and each request's messages while they run.  Run
it from the repository root with xcs, openai and the test extras importable::

    python bench/overlap_figures.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from openai import OpenAI

from bench.callees import SleepModel
from bench.workloads import WORKLOADS
from tests.openai_server import ChatServer
from xcs import jit


def _seconds(fn: Any, *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def ask_all(client: OpenAI, docs: list[str]) -> list[str]:
    replies = [client.chat.completions.create(model="m", messages=[{"role": "user", "content": d}])
               for d in docs]
    return [r.choices[0].message.content or "" for r in replies]


def _row(name: str, fn: Any, plain_args: tuple[Any, ...], jit_args: tuple[Any, ...]) -> str:
    jitted = jit(fn)
    jitted(*jit_args)
    jitted(*jit_args)
    fast = statistics.median(_seconds(jitted, *jit_args) for _ in range(5))
    plain = statistics.median(_seconds(fn, *plain_args) for _ in range(2))
    assert jitted(*jit_args) == fn(*plain_args)
    status = jitted.stats().signatures[0].status
    version = ".".join(map(str, sys.version_info[:3]))
    return (f"{version} | {name} | plain {plain * 1e3:.1f} ms | jit {fast * 1e3:.1f} ms "
            f"| {plain / fast:.2f}x | {status}")


def main() -> None:
    model = SleepModel(0.05)
    for name in ("map 8", "map 64", "diamond", "loop a,b,c x4"):
        w = WORKLOADS[name]
        print(_row(name, w.fn, (model, *w.plain_args()), (model, *w.jit_args(jit))))
    with ChatServer(latency=0.05) as server:
        client = OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        docs = [f"doc {i}" for i in range(8)]
        print(_row("openai client map 8", ask_all, (client, docs), (client, docs)))


if __name__ == "__main__":
    main()
