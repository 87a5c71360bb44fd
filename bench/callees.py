"""The slow callees of the benchmarks: a sleep-latency model, a real HTTP round trip, CPU work.

Every model answers deterministically: the answer to ``m(*args)`` is
``"|".join(map(str, args))``, so a jitted run can be compared for equality with
a plain one, and an ``instant`` model (no latency) gives the expected results
without paying for a plain run.  Each model has a synchronous form (for plain,
jit and hand-written pool code) and an asynchronous one (for ``asyncio.gather``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["AsyncHttpModel", "AsyncSleepModel", "HttpModel", "LatencyServer", "SleepModel",
           "burn", "prompt"]


def prompt(args: tuple[object, ...]) -> str:
    """The text a model receives for a call, and (these models echo) its answer."""
    return "|".join(map(str, args))


class SleepModel:
    """A model call that sleeps like a network round trip."""

    def __init__(self, latency: float) -> None:
        self.latency = latency

    def __call__(self, *args: object) -> str:
        if self.latency:
            time.sleep(self.latency)
        return prompt(args)

    def __repr__(self) -> str:
        return f"SleepModel({self.latency})"


class AsyncSleepModel:
    """The sleep model for asyncio code."""

    def __init__(self, latency: float) -> None:
        self.latency = latency

    async def __call__(self, *args: object) -> str:
        await asyncio.sleep(self.latency)
        return prompt(args)


class _Handler(BaseHTTPRequestHandler):
    """Echoes a POST body after the server's latency, over keep-alive HTTP/1.1."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle's
    # algorithm and the client's delayed ACK add ~40 ms to every response.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(self.server.latency)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class LatencyServer(ThreadingHTTPServer):
    """An echo server on 127.0.0.1 that sleeps ``latency`` seconds per request.

    One thread per connection (the clients keep connections alive), so as many
    requests run at once as clients open connections.
    """

    daemon_threads = True
    request_queue_size = 1024  # map 512 opens 512 connections at once

    def __init__(self, latency: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.latency = latency
        self.thread = threading.Thread(target=self.serve_forever, name="bench-http",
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1/complete"

    def __enter__(self) -> LatencyServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join()


class HttpModel:
    """A model call over HTTP with urllib3 (thread-safe, one pool of keep-alive connections)."""

    def __init__(self, url: str, connections: int) -> None:
        import urllib3

        self.url = url
        self.http = urllib3.PoolManager(maxsize=connections, block=False, retries=False)

    def __call__(self, *args: object) -> str:
        response = self.http.request("POST", self.url, body=prompt(args).encode())
        if response.status != 200:
            raise RuntimeError(f"model server answered {response.status}")
        return response.data.decode()

    def close(self) -> None:
        self.http.clear()

    def __repr__(self) -> str:
        return f"HttpModel({self.url!r})"


class AsyncHttpModel:
    """The HTTP model for asyncio code, with aiohttp (create and close it inside the loop)."""

    def __init__(self, url: str) -> None:
        import aiohttp

        self.url = url
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def __call__(self, *args: object) -> str:
        async with self.session.post(self.url, data=prompt(args).encode()) as response:
            if response.status != 200:
                raise RuntimeError(f"model server answered {response.status}")
            return await response.text()

    async def close(self) -> None:
        await self.session.close()


def burn(n: int) -> int:
    """Pure-Python CPU work (holds the GIL throughout); module level, so processes can run it."""
    acc = 0
    for i in range(n):
        acc = (acc * 31 + i) % 1_000_003
    return acc


def _serve(latency: float) -> None:
    """``python -m bench.callees LATENCY``: serve until stdin closes; print the URL first."""
    import sys

    with LatencyServer(latency) as server:
        print(server.url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    import sys

    _serve(float(sys.argv[1]))
