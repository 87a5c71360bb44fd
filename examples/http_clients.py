"""The same pattern without an SDK: chat completions over plain httpx and requests.

Each document gets its own request (they overlap), then one request writes the
answer from all the notes (it waits for them).  ``answer_with_httpx`` shares one
``httpx.Client``, which is safe to use from several threads;
``answer_with_requests`` calls ``requests.post``, which opens a session per call,
because a shared ``requests.Session`` is not documented as thread-safe.

Run it offline (it starts the repository's test server, tests/openai_server.py,
on a free local port)::

    python examples/http_clients.py

or against any OpenAI-compatible endpoint (the key is read from OPENAI_API_KEY)::

    python examples/http_clients.py --base-url https://HOST/v1 --model MODEL

Needs xcs (``pip install .`` in the repository) and ``pip install httpx requests``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import requests

from xcs import jit

MODEL = "test-model"


def _payload(prompt: str, model: str) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": prompt}]}


def ask_httpx(http: httpx.Client, prompt: str, model: str = MODEL) -> str:
    """One completion through a shared httpx client (its base_url ends in /v1)."""
    response = http.post("chat/completions", json=_payload(prompt, model))
    response.raise_for_status()
    return response.json()["choices"][0]["message"]["content"]


def ask_requests(base_url: str, prompt: str, model: str = MODEL) -> str:
    """One completion through requests."""
    response = requests.post(f"{base_url}/chat/completions", json=_payload(prompt, model),
                             headers={"Authorization": f"Bearer {os.environ.get('OPENAI_API_KEY', 'test')}"},
                             timeout=60)
    response.raise_for_status()
    return response.json()["choices"][0]["message"]["content"]


@jit
def answer_with_httpx(http: httpx.Client, question: str, documents: list[str],
                      model: str = MODEL) -> str:
    """Notes from every document, then an answer written from the notes."""
    notes = [ask_httpx(http, f"What does this say about {question!r}?\n\n{doc}", model)
             for doc in documents]
    return ask_httpx(http, f"Answer {question!r} from these notes:\n" + "\n".join(notes), model)


@jit
def answer_with_requests(base_url: str, question: str, documents: list[str],
                         model: str = MODEL) -> str:
    """The same program on requests."""
    notes = [ask_requests(base_url, f"What does this say about {question!r}?\n\n{doc}", model)
             for doc in documents]
    return ask_requests(base_url, f"Answer {question!r} from these notes:\n" + "\n".join(notes),
                        model)


DOCUMENTS = [f"Meeting {i}: the team discussed item {i} and agreed to revisit it in week {i + 2}."
             for i in range(6)]


@contextlib.contextmanager
def endpoint(base_url: str | None, latency: float) -> Iterator[str]:
    """The given endpoint, or the repository's test server on a free local port."""
    if base_url:
        yield base_url.rstrip("/")
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
    question = "What was agreed?"
    ok = True
    with endpoint(args.base_url, args.latency) as base_url:
        key = os.environ.get("OPENAI_API_KEY", "test")
        with httpx.Client(base_url=base_url + "/", timeout=60,
                          headers={"Authorization": f"Bearer {key}"}) as http:
            for name, fn, fn_args in [("httpx", answer_with_httpx, (http, question, DOCUMENTS, args.model)),
                                      ("requests", answer_with_requests,
                                       (base_url, question, DOCUMENTS, args.model))]:
                expected, plain = timed(fn.__wrapped__, *fn_args)
                fn(*fn_args)  # the trial
                result, fast = timed(fn, *fn_args)
                line = f"{name:8}: plain {plain:.2f} s, jit {fast:.2f} s, speedup {plain / fast:.1f}x"
                if not args.base_url:
                    ok = ok and result == expected
                    line += f", identical to plain: {'yes' if result == expected else 'NO'}"
                print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
