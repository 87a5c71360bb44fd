"""Drafts, a critique and a final answer, and a map over documents, with the openai client.

Both workloads are plain functions that call the official ``openai`` client;
``@jit`` is the only change.  The drafts overlap, the critique waits for them,
the final answer waits for the critique; every document summary overlaps.

Run it offline (it starts the repository's test server, tests/openai_server.py,
on a free local port)::

    python examples/openai_ensemble.py

or against any OpenAI-compatible endpoint (the key is read from OPENAI_API_KEY)::

    python examples/openai_ensemble.py --base-url https://HOST/v1 --model MODEL

Needs xcs (``pip install .`` in the repository) and ``pip install openai``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from openai import OpenAI

from xcs import jit

MODEL = "test-model"


def ask(client: OpenAI, prompt: str, *, role: str = "a careful analyst", model: str = MODEL) -> str:
    """One chat completion: the slow call that xcs overlaps."""
    reply = client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": f"You are {role}."},
                  {"role": "user", "content": prompt}])
    return reply.choices[0].message.content or ""


@jit
def ensemble(client: OpenAI, question: str, n_drafts: int = 4, model: str = MODEL) -> str:
    """Several independent drafts, one critique of all of them, then the final answer."""
    drafts = [ask(client, question, role=f"drafter number {k}", model=model)
              for k in range(n_drafts)]
    numbered = "\n\n".join(f"Draft {k + 1}: {d}" for k, d in enumerate(drafts))
    critique = ask(client, f"List the errors in these drafts:\n\n{numbered}",
                   role="a strict reviewer", model=model)
    return ask(client, f"Question: {question}\n\n{numbered}\n\nReview:\n{critique}\n\n"
                       "Write the final answer.", model=model)


@jit
def summarize_all(client: OpenAI, documents: dict[str, str], model: str = MODEL) -> dict[str, str]:
    """A map over documents: one summary each, all independent."""
    summaries = {}
    for name, text in documents.items():
        summaries[name] = ask(client, f"Summarize in one sentence:\n\n{text}", model=model)
    return summaries


DOCUMENTS = {f"report-{i}.txt": f"Quarter {i % 4 + 1}: revenue moved by {i * 3 - 7}% in region {i}."
             for i in range(8)}


@contextlib.contextmanager
def endpoint(base_url: str | None, latency: float) -> Iterator[str]:
    """The given endpoint, or the repository's test server on a free local port."""
    if base_url:
        yield base_url
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.openai_server import ChatServer

    with ChatServer(latency=latency) as server:
        yield server.base_url


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="an OpenAI-compatible endpoint (default: a local test server)")
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--latency", type=float, default=0.2,
                        help="seconds per completion of the local test server (default: %(default)s)")
    args = parser.parse_args(argv)
    ok = True
    with endpoint(args.base_url, args.latency) as base_url:
        client = OpenAI(base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY", "test"))
        question = "Why did revenue move this quarter?"
        for name, fn, fn_args in [("ensemble of 4 drafts", ensemble, (client, question, 4, args.model)),
                                  ("summaries of 8 documents", summarize_all,
                                   (client, DOCUMENTS, args.model))]:
            expected, plain = timed(fn.__wrapped__, *fn_args)
            fn(*fn_args)  # the trial: runs plain and records the calls
            result, fast = timed(fn, *fn_args)
            print(f"{name}: plain {plain:.2f} s, jit {fast:.2f} s, speedup {plain / fast:.1f}x")
            if not args.base_url:  # a real model may answer differently every time
                same = result == expected
                ok = ok and same
                print(f"  results identical to plain: {'yes' if same else 'NO'}")
        print()
        print(ensemble.explain())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
