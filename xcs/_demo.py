"""``python -m xcs demo``: a compound-AI program on a simulated model, plain vs jit.

The simulated model answers deterministically (the text depends only on the
prompt) after a latency like a hosted LLM's, so the plain and jitted runs can
be compared for equality and timed without any network.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from xcs._jit import jit

_WORDS = ("context", "evidence", "answer", "source", "claim", "summary", "detail", "risk",
          "result", "method", "reason", "signal", "trend", "factor", "insight", "caveat")


class SimulatedModel:
    """A stand-in for an LLM client: deterministic text after a realistic delay."""

    def __init__(self, name: str, latency: float = 0.2, jitter: float = 0.25) -> None:
        self.name = name
        self.latency = latency
        self.jitter = jitter
        self.calls = 0
        self._lock = threading.Lock()
        self._rng = random.Random(name)

    def __call__(self, prompt: str) -> str:
        with self._lock:
            self.calls += 1
            delay = self.latency * (1 + self.jitter * (2 * self._rng.random() - 1))
        time.sleep(delay)
        digest = hashlib.sha256(f"{self.name}\0{prompt}".encode()).digest()
        words = " ".join(_WORDS[b % len(_WORDS)] for b in digest[:8])
        return f"[{self.name}] {words}"

    def __repr__(self) -> str:
        return f"SimulatedModel({self.name!r}, latency={self.latency})"


def research(question: str, docs: list[str], models: list[SimulatedModel],
             judge: SimulatedModel) -> dict[str, Any]:
    """Summarize each document, draft an answer with every model, let a judge pick."""
    notes = [models[0](f"Summarize for {question!r}: {doc}") for doc in docs]
    context = "\n".join(notes)
    drafts = [model(f"Answer {question!r} using:\n{context}") for model in models]
    verdict = judge("Pick the best answer:\n" + "\n---\n".join(drafts))
    return {"answer": verdict, "notes": notes, "drafts": drafts}


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


class ChatModel:
    """A model behind an OpenAI-compatible endpoint, through the official ``openai`` client."""

    def __init__(self, client: Any, model: str, name: str) -> None:
        self.client = client
        self.model = model
        self.name = name

    def __call__(self, prompt: str) -> str:
        reply = self.client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": prompt}])
        return str(reply.choices[0].message.content)

    def __repr__(self) -> str:
        return f"ChatModel({self.model!r})"


def _models(n_models: int, latency: float, base_url: str | None,
            model: str) -> tuple[list[Any], Any]:
    if base_url is None:
        return ([SimulatedModel(f"model-{k}", latency) for k in range(n_models)],
                SimulatedModel("judge", latency))
    import os

    from openai import OpenAI  # only needed with --base-url

    client = OpenAI(base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY", "unused"))
    return ([ChatModel(client, model, f"drafter-{k}") for k in range(n_models)],
            ChatModel(client, model, "judge"))


def run(latency: float = 0.2, n_docs: int = 8, n_models: int = 3, out: TextIO | None = None,
        base_url: str | None = None, model: str = "gpt-4o-mini") -> bool:
    """Run the demo; returns whether the jitted results equal the plain ones."""
    import sys


    out = out or sys.stdout
    models, judge = _models(n_models, latency, base_url, model)
    docs = [f"document {i}: notes about topic {i % 3}" for i in range(n_docs)]
    question = "What changed this quarter?"
    fast: Any = jit(research)
    calls = n_docs + n_models + 1
    where = f"the endpoint {base_url}" if base_url else f"a simulated model (~{latency * 1e3:.0f} ms a call)"
    print(f"xcs demo: {n_docs} document summaries, {n_models} drafts and a judge "
          f"({calls} model calls) on {where}", file=out)
    expected, plain = _timed(research, question, docs, models, judge)
    print(f"  plain             {plain:7.2f} s", file=out)
    first, trial = _timed(fast, question, docs, models, judge)
    print(f"  jit, first call   {trial:7.2f} s   speedup {plain / trial:4.1f}x (the trial: it "
          "defers the calls of a model once one call showed it slow)", file=out)
    times = []
    same = first == expected
    for _ in range(2):
        result, elapsed = _timed(fast, question, docs, models, judge)
        # A real model may answer differently each time; the simulated one may not.
        same = same and (result == expected or base_url is not None)
        times.append(elapsed)
    best = min(times)
    ideal = ("" if base_url else
             f" (ideal {plain / (3 * latency):4.1f}x: three calls on the critical path)")
    print(f"  jit, later calls  {best:7.2f} s   speedup {plain / best:4.1f}x{ideal}", file=out)
    if base_url is None:
        print(f"  results identical to plain: {'yes' if same else 'NO'}", file=out)
    stats = fast.stats()
    for sig in stats.signatures:
        print(f"  plan: {sig.status}; deferred call sites: {', '.join(sig.deferred_sites) or '-'}; "
              f"estimated {sig.estimated_speedup or 1:.1f}x", file=out)
    state = fast.__xcs__
    for entry in list(state.entries.values())[:1]:
        timeline = entry.last_timeline()
        if timeline is not None:
            print("\n  what overlapped in the last call (# a deferred model call; body: = running,"
                  " . waiting):", file=out)
            for line in timeline.as_text(width=56).splitlines():
                print("  " + line, file=out)
    return bool(same)
