"""The benchmarked programs, each written three ways.

* ``fn(m, *args)``: plain Python; the benchmarks time it as it is and under ``jit``;
* ``pooled(pool, m, *args)``: the same program by hand on a ``ThreadPoolExecutor``;
* ``gathered(am, *args)``: the same program by hand with ``asyncio.gather``.

The hand-written versions are the practical best a developer would write: they
start each call as soon as its inputs exist (for these programs, where all calls
take the same time, level by level is as good as that).  ``depth`` is the
length of the critical path in calls: the ideal time is ``depth`` latencies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["WORKLOADS", "Workload"]

gather = asyncio.gather


# -- map over n items --------------------------------------------------------------
def map_items(m, n):
    return [m("item", i) for i in range(n)]


def map_pooled(pool, m, n):
    futures = [pool.submit(m, "item", i) for i in range(n)]
    return [f.result() for f in futures]


async def map_gathered(am, n):
    return list(await gather(*(am("item", i) for i in range(n))))


# -- diamond: one retrieval, an ensemble of four models, a judge ----------------------
def diamond(m, q):
    context = m("retrieve", q)
    answers = [m("model", k, context) for k in range(4)]
    return m("judge", *answers)


def diamond_pooled(pool, m, q):
    context = m("retrieve", q)
    futures = [pool.submit(m, "model", k, context) for k in range(4)]
    return m("judge", *[f.result() for f in futures])


async def diamond_gathered(am, q):
    context = await am("retrieve", q)
    answers = await gather(*(am("model", k, context) for k in range(4)))
    return await am("judge", *answers)


# -- two-level fan-out: three drafts, two critiques of each, a merge -----------------
def drafts_critiques(m, q):
    drafts = [m("draft", q, k) for k in range(3)]
    critiques = [m("critique", d, j) for d in drafts for j in range(2)]
    return m("merge", *drafts, *critiques)


def drafts_critiques_pooled(pool, m, q):
    drafts = [f.result() for f in [pool.submit(m, "draft", q, k) for k in range(3)]]
    futures = [pool.submit(m, "critique", d, j) for d in drafts for j in range(2)]
    return m("merge", *drafts, *[f.result() for f in futures])


async def drafts_critiques_gathered(am, q):
    drafts = await gather(*(am("draft", q, k) for k in range(3)))
    critiques = await gather(*(am("critique", d, j) for d in drafts for j in range(2)))
    return await am("merge", *drafts, *critiques)


# -- the loop: three calls per iteration, combined at once ----------------------------
def loop(m, n):
    out = []
    for i in range(n):
        a = m(i)
        b = m(i + 1)
        c = m(i + 2)
        out.append(a + b + c)
    return out


def loop_pooled(pool, m, n):
    futures = [(pool.submit(m, i), pool.submit(m, i + 1), pool.submit(m, i + 2)) for i in range(n)]
    return [a.result() + b.result() + c.result() for a, b, c in futures]


async def loop_gathered(am, n):
    results = await gather(*(am(i + k) for i in range(n) for k in range(3)))
    return [results[3 * i] + results[3 * i + 1] + results[3 * i + 2] for i in range(n)]


# -- a dependent chain: nothing to overlap ------------------------------------------
def chain(m, x):
    a = m(x)
    b = m(a)
    c = m(b)
    d = m(c)
    return m(d)


def chain_pooled(pool, m, x):
    a = pool.submit(m, x).result()
    b = pool.submit(m, a).result()
    c = pool.submit(m, b).result()
    d = pool.submit(m, c).result()
    return pool.submit(m, d).result()


async def chain_gathered(am, x):
    a = await am(x)
    b = await am(a)
    c = await am(b)
    d = await am(c)
    return await am(d)


# -- mixed: a plan, searches chosen by control flow, scores, a branch on the scores ----
def mixed(m, q, docs):
    plan = m("plan", q)
    hits = []
    for d in docs:
        if d % 4 == 3:  # skipped by a branch on the input
            continue
        hits.append(m("search", plan, d))
    scores = {}
    for h in hits:
        scores[h] = m("score", h)
    best = [h for h in hits if len(scores[h]) % 2 == 0]  # a branch on the results
    if not best:
        return m("fallback", q)
    return m("answer", q, *best)


def mixed_pooled(pool, m, q, docs):
    plan = m("plan", q)
    hits = [f.result() for f in [pool.submit(m, "search", plan, d) for d in docs if d % 4 != 3]]
    futures = {h: pool.submit(m, "score", h) for h in hits}
    scores = {h: f.result() for h, f in futures.items()}
    best = [h for h in hits if len(scores[h]) % 2 == 0]
    if not best:
        return m("fallback", q)
    return m("answer", q, *best)


async def mixed_gathered(am, q, docs):
    plan = await am("plan", q)
    hits = await gather(*(am("search", plan, d) for d in docs if d % 4 != 3))
    scores = dict(zip(hits, await gather(*(am("score", h) for h in hits))))
    best = [h for h in hits if len(scores[h]) % 2 == 0]
    if not best:
        return await am("fallback", q)
    return await am("answer", q, *best)


# -- nested: each document summarized by a function with its own parallel calls --------
def summarize(m, doc):
    gist = m("gist", doc)
    keywords = m("keywords", doc)
    return m("polish", gist, keywords)


def nested(m, docs, summarize):
    parts = [summarize(m, d) for d in docs]
    return m("combine", *parts)


def nested_pooled(pool, m, docs):
    def summarize(doc):
        gist, keywords = pool.submit(m, "gist", doc), pool.submit(m, "keywords", doc)
        return m("polish", gist.result(), keywords.result())

    futures = [pool.submit(summarize, d) for d in docs]
    return m("combine", *[f.result() for f in futures])


async def nested_gathered(am, docs):
    async def summarize(doc):
        gist, keywords = await gather(am("gist", doc), am("keywords", doc))
        return await am("polish", gist, keywords)

    return await am("combine", *await gather(*(summarize(d) for d in docs)))


@dataclass(frozen=True)
class Workload:
    """One benchmarked program: its three versions, arguments and critical path."""

    name: str
    fn: Callable[..., Any]
    pooled: Callable[..., Any]
    gathered: Callable[..., Any]
    args: tuple[Any, ...]
    calls: int  # model calls per run
    depth: int  # calls on the critical path
    nested: Callable[..., Any] | None = None  # an inner function to pass plain or jitted

    def plain_args(self) -> tuple[Any, ...]:
        return self.args + ((self.nested,) if self.nested else ())

    def jit_args(self, jit: Callable[..., Any]) -> tuple[Any, ...]:
        return self.args + ((jit(self.nested),) if self.nested else ())


DOCS = tuple(range(8))  # mixed: 6 of them are searched

WORKLOADS = {w.name: w for w in [
    Workload("map 8", map_items, map_pooled, map_gathered, (8,), 8, 1),
    Workload("map 64", map_items, map_pooled, map_gathered, (64,), 64, 1),
    Workload("map 512", map_items, map_pooled, map_gathered, (512,), 512, 1),
    Workload("diamond", diamond, diamond_pooled, diamond_gathered, ("q",), 6, 3),
    Workload("two-level fan-out", drafts_critiques, drafts_critiques_pooled,
             drafts_critiques_gathered, ("q",), 10, 3),
    Workload("loop a,b,c x4", loop, loop_pooled, loop_gathered, (4,), 12, 1),
    Workload("chain of 5", chain, chain_pooled, chain_gathered, ("x",), 5, 5),
    Workload("mixed control flow", mixed, mixed_pooled, mixed_gathered, ("q", DOCS), 14, 4),
    Workload("nested jit", nested, nested_pooled, nested_gathered, (tuple(range(4)),), 13, 3,
             nested=summarize),
]}
