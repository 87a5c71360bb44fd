"""Speedups of the workloads: plain, jit (after its trial), a hand-written pool, asyncio.gather.

Each benchmark records the ideal time in its extra_info: the critical path
(in calls) times the time of one call made alone (the sleep, or the HTTP round
trip with the server's latency).  ``bench/report.py`` turns them into speedup
and efficiency.
"""

from __future__ import annotations

import pytest

from xcs import jit

from .workloads import WORKLOADS

KINDS = ["plain", "jit", "pool", "gather"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(WORKLOADS))
def test_workload(measure, callee, pool, aio, name, kind):
    """Every version of every workload returns what the plain program returns."""
    w = WORKLOADS[name]
    expected = w.fn(callee.instant, *w.plain_args())
    if kind == "plain":
        target, args = w.fn, (callee.model, *w.plain_args())
    elif kind == "jit":
        target, args = jit(w.fn), (callee.model, *w.jit_args(jit))
    elif kind == "pool":
        target, args = w.pooled, (pool, callee.model, *w.args)
    else:
        def target(*args):
            return aio.run(w.gathered(*args))
        args = (callee.amodel, *w.args)
    per_run = (w.calls if kind == "plain" else w.depth) * callee.call_time
    result = measure(target, *args, kind=kind, expected=per_run, workload=name,
                     callee=callee.name, latency=callee.latency, call_time=callee.call_time,
                     calls=w.calls, depth=w.depth, ideal=w.depth * callee.call_time)
    assert result == expected
