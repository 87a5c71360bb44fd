"""Deferred calls on a dask.distributed cluster, through ``Client.get_executor``.

``Client.get_executor(pure=False)`` wraps a dask client in the
``concurrent.futures.Executor`` interface, which is all ``jit`` asks for.
``pure=False`` matters: dask would otherwise treat two calls with equal
arguments as one task and run it once, while the plain function runs it twice.
Here the cluster is a ``LocalCluster`` of worker processes on this machine; the
same code runs on a remote cluster by passing its scheduler address to
``Client``.  Callees, arguments and results travel by pickle (cloudpickle).

Run it::

    python examples/scale_out_dask.py

Needs xcs (``pip install .`` in the repository) and ``pip install "dask[distributed]"``.
"""

from __future__ import annotations

import argparse
import sys
import time

from distributed import Client, LocalCluster

from xcs import jit


def count_primes(limit: int) -> int:
    """Count the primes below ``limit`` the slow way: pure Python, all CPU."""
    count = 0
    for n in range(2, limit):
        d = 2
        while d * d <= n:
            if n % d == 0:
                break
            d += 1
        else:
            count += 1
    return count


def fetch(page: int) -> str:
    """Stand-in for a slow download: waits, then returns the page's text."""
    time.sleep(0.3)
    return f"page {page}: " + " ".join(str(page * k) for k in range(5))


def crawl_and_count(pages: list[int], limits: list[int]) -> tuple[list[str], list[int]]:
    """Independent downloads and independent CPU-bound counts, in one plain function."""
    texts = [fetch(page) for page in pages]
    counts = [count_primes(limit) for limit in limits]
    return texts, counts


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default: 2)")
    parser.add_argument("--scheduler", help="address of an existing cluster's scheduler")
    args = parser.parse_args(argv)
    pages, limits = list(range(6)), [100_000 + k for k in range(4)]
    if args.scheduler:
        client = Client(args.scheduler)
        cluster = None
    else:
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address="127.0.0.1:0")
        client = Client(cluster)
    try:
        on_dask = jit(executor=client.get_executor(pure=False))(crawl_and_count)
        expected, plain = timed(crawl_and_count, pages, limits)
        on_dask(pages, limits)  # the trial
        result, fast = timed(on_dask, pages, limits)
        print(f"{len(pages)} downloads and {len(limits)} prime counts on "
              f"{len(client.scheduler_info()['workers'])} dask workers: plain {plain:.2f} s, "
              f"jit {fast:.2f} s ({plain / fast:.1f}x), "
              f"identical to plain: {'yes' if result == expected else 'NO'}")
        print(on_dask.stats())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return 0 if result == expected else 1


if __name__ == "__main__":
    sys.exit(main())
