"""Speedup of ``@jit`` on the code shapes real LLM programs take, over 8 items.

Each shape is a loop (or comprehension) over 8 documents around a 50 ms call,
written as people write it: an attribute chain on a response, ``.strip()``,
``json.loads``, ``len``, unpacking a returned tuple, a dict of pending values
tested with ``in``, a fast helper, a generator expression joined, and two
``try``/``except`` forms (a ``try`` that only gives a value runs as one deferred call:
see docs/contract.md).
A hand-written pool gets about 8x on each.  Results must equal plain's; the
speedup is plain time over the jit time of the fourth call (after the trial)::

    python -m bench.shape_figures
"""

from __future__ import annotations

import json
import sys
import time

from xcs import jit

LATENCY = 0.05
N = 8


class Message:
    def __init__(self, content: str) -> None:
        self.content = content


class Choice:
    def __init__(self, content: str) -> None:
        self.message = Message(content)


class Completion:
    def __init__(self, content: str) -> None:
        self.choices = [Choice(content)]


def create(d):
    time.sleep(LATENCY)
    return Completion(f" answer {d} ")


def llm(d):
    time.sleep(LATENCY)
    return f' {{"doc": {d}}} '


def judge_pair(a, b):
    time.sleep(LATENCY)
    return f"w{a}", f"{a} vs {b}", "ok"


def clean(text):
    return text.strip().upper()


def attribute_chain(docs):
    out = []
    for d in docs:
        r = create(d)
        out.append(r.choices[0].message.content)
    return out


def str_method(docs):
    return [llm(d).strip() for d in docs]


def json_loads(docs):
    return [json.loads(llm(d)) for d in docs]


def length(docs):
    out = []
    for d in docs:
        r = llm(d)
        out.append((r, len(r)))
    return out


def unpacking(docs):
    out = []
    for a in docs:
        winner, _prompt, judgment = judge_pair(a, a + 1)
        out.append((winner, judgment))
    return out


def dict_of_pending(docs):
    cache, out = {}, []
    for y in docs + docs:
        if y in cache:
            v = cache[y]
        else:
            v = cache[y] = llm(y)
        out.append(v)
    return out


def helper(docs):
    out = []
    for d in docs:
        out.append(clean(llm(d)))
    return out


def genexpr_join(docs):
    return "|".join(llm(d) for d in docs)


def try_append(docs):
    out = []
    for d in docs:
        try:
            out.append(llm(d))
        except ValueError:
            out.append(None)
    return out


def try_loads(docs):
    out = []
    for d in docs:
        try:
            v = json.loads(llm(d))
        except json.JSONDecodeError:
            v = None
        out.append(v)
    return out


def if_filter(docs):  # the stretch shape: Mixture-of-Agents' reference loop
    refs = []
    for d in docs:
        r = llm(d)
        if r is not None:
            refs.append(r)
    return refs


def key_lambda(docs):  # Tree-of-Thoughts: a list the sort key's closure reads
    values = []
    for d in docs:
        values.append(llm(d))
    return sorted(range(len(docs)), key=lambda i: values[i])


def genexpr_per_group(docs):  # a generator expression per report, in a loop
    out = {}
    for half in (docs[: len(docs) // 2], docs[len(docs) // 2:]):
        out[half[0]] = "|".join(llm(d) for d in half)
    return out


def search(d):
    time.sleep(LATENCY)
    return [f"p{d}", f"p{d + 1}", "common"]


def loop_over_result(docs):  # Tree-of-Thoughts' proposals: a loop over each result
    candidates = []
    for d in docs:
        for thought in search(d):
            candidates.append(f"{d}:{thought}")
    return candidates


def loop_filter(docs):  # multi-hop QA: keep each search's new passages
    context = []
    for d in docs:
        for passage in search(d):
            if passage not in context:
                context.append(passage)
    return context


SHAPES = [attribute_chain, str_method, json_loads, length, unpacking, dict_of_pending, helper,
          genexpr_join, try_append, try_loads, if_filter, key_lambda, genexpr_per_group,
          loop_over_result, loop_filter]


def measure(fn, docs):
    start = time.perf_counter()
    expected = fn(docs)
    plain = time.perf_counter() - start
    jitted = jit(fn)
    for _ in range(3):
        assert jitted(docs) == expected
    start = time.perf_counter()
    got = jitted(docs)
    took = time.perf_counter() - start
    status = jitted.stats().signatures[0]
    return got == expected, plain / took, status.status, status.reason or ""


def main() -> int:
    docs = list(range(N))
    print(f"Python {sys.version.split()[0]}, {N} items of a {LATENCY * 1e3:.0f} ms call")
    bad = 0
    for fn in SHAPES:
        same, speedup, status, reason = measure(fn, docs)
        bad += not same
        print(f"  {fn.__name__:16} {speedup:5.2f}x  {'same' if same else 'DIFFERENT'}  {status}"
              + (f" ({reason})" if status != "optimized" else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
