"""Speedups of the core patterns, plain vs jit (the figures of docs/benchmarks.md)."""

from __future__ import annotations

import pytest

from xcs import jit

from .conftest import LATENCY, model


def fan_out(n):
    return [model("item", i) for i in range(n)]


def drafts_and_judge(q):
    drafts = [model("draft", q, k) for k in range(3)]
    return model("judge", *drafts)


def chain(x):
    a = model(x)
    b = model(a)
    c = model(b)
    d = model(c)
    return model(d)


def loop(n):
    out = []
    for i in range(n):
        a = model(i)
        b = model(i + 1)
        c = model(i + 2)
        out.append(a + b + c)
    return out


WORKLOADS = {
    "fan-out 16": (fan_out, (16,), 1),
    "3 drafts + judge": (drafts_and_judge, ("q",), 2),
    "chain of 5": (chain, ("x",), 5),
    "loop a,b,c x4": (loop, (4,), 1),  # iterations are independent: one latency
}


@pytest.mark.parametrize("kind", ["plain", "jit"])
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_workload(measure, workload, kind):
    fn, args, depth = WORKLOADS[workload]
    target = jit(fn) if kind == "jit" else fn
    result = measure(target, *args, kind=kind, workload=workload, ideal=depth * LATENCY)
    assert result == fn(*args)
