"""Stay under an API's concurrency limit by giving ``jit`` a smaller pool.

The default pool runs every independent call at once, which is what you want
until the API answers "429 Too Many Requests".  ``jit(executor=...)`` takes
any ``concurrent.futures.Executor``: a ``ThreadPoolExecutor(max_workers=4)``
keeps the deferred calls to four worker threads.

One detail makes the limit exact: while the calling thread waits for a result
that no worker has picked up yet, xcs may run that call in the calling thread
itself (this is what keeps nested jitted functions from deadlocking on a small
pool).  So a pool of N workers can have N + 1 requests in flight.  When the API
enforces its limit strictly, also guard the request with a semaphore, as
``ask`` does here; the pool then only decides how many threads wait.

Run it offline (it starts the repository's test server, which here refuses
more than 4 requests at once with a 429)::

    python examples/rate_limit.py

Needs xcs (``pip install .`` in the repository) and ``pip install openai``.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from openai import OpenAI, RateLimitError

from xcs import jit

LIMIT = 4  # requests the API accepts at the same time
MODEL = "test-model"
in_flight = threading.BoundedSemaphore(LIMIT)


def ask(client: OpenAI, prompt: str) -> str:
    """One completion, never more than LIMIT at once from this process."""
    with in_flight:
        reply = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt}])
    return reply.choices[0].message.content or ""


def ask_unguarded(client: OpenAI, prompt: str) -> str:
    """The same request without the semaphore, to show what the limit does."""
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": prompt}])
    return reply.choices[0].message.content or ""


def summarize(client, documents, ask=ask):
    """A summary of every document, then one overview of the summaries."""
    summaries = [ask(client, f"Summarize:\n\n{doc}") for doc in documents]
    return summaries, ask(client, "Write an overview of:\n" + "\n".join(summaries))


pool = ThreadPoolExecutor(max_workers=LIMIT, thread_name_prefix="api")
summarize_capped = jit(executor=pool)(summarize)  # at most LIMIT worker threads
summarize_unbounded = jit(summarize)  # the default pool: every document at once


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2,
                        help="seconds per completion of the local test server (default: %(default)s)")
    parser.add_argument("--documents", type=int, default=12)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.openai_server import ChatServer

    documents = [f"Ticket {i}: customer {i} reports issue {i % 5}." for i in range(args.documents)]
    with ChatServer(latency=args.latency, limit=LIMIT) as server:
        # max_retries=0: show the 429 instead of retrying it after a pause.
        client = OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        print(f"{args.documents} summaries and an overview; the API accepts {LIMIT} requests at once")

        start = time.perf_counter()
        expected = summarize(client, documents)
        print(f"  plain:              {time.perf_counter() - start:5.2f} s, "
              f"at most {server.peak} request(s) at once")

        server.reset()
        try:  # from its first call on: one request here teaches xcs that it is slow
            summarize_unbounded(client, documents, ask_unguarded)
            print("  jit, default pool:  no 429 this time")
        except RateLimitError:
            print(f"  jit, default pool:  RateLimitError after {server.peak} requests at once "
                  f"({server.refused} refused)")

        summarize_capped(client, documents)  # the first call: the plan is made
        server.reset()
        start = time.perf_counter()
        result = summarize_capped(client, documents)
        print(f"  jit, {LIMIT}-worker pool: {time.perf_counter() - start:5.2f} s, "
              f"at most {server.peak} at once, {server.refused} refused, "
              f"identical to plain: {'yes' if result == expected else 'NO'}")
    pool.shutdown()
    return 0 if result == expected and server.refused == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
