"""A small OpenAI-compatible chat-completions server for tests and examples.

``ChatServer`` answers ``POST /v1/chat/completions`` on 127.0.0.1 (a free port)
with a completion derived only from the request's model and messages, after
an injected latency, like a hosted model would.  It needs nothing beyond the
standard library and never reaches the network.  It counts the requests it
serves and the most it served at once, and with ``limit`` it answers 429 (as
a rate-limited API does) when more requests than that arrive together.

Run it on its own for the examples' ``--base-url``::

    python -m tests.openai_server --port 8000 --latency 0.2
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ChatServer", "completion_text"]

_WORDS = ("context", "evidence", "answer", "source", "claim", "summary", "detail", "risk",
          "result", "method", "reason", "signal", "trend", "factor", "insight", "caveat")


def completion_text(model: str, messages: list[dict[str, Any]]) -> str:
    """The text the server answers for ``model`` and ``messages``: a pure function of both."""
    canonical = json.dumps([model, messages], sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode()).digest()
    words = " ".join(_WORDS[b % len(_WORDS)] for b in digest[:10])
    return f"{words} ({digest.hex()[:8]})"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 30  # a client that connects and sends nothing cannot hold a thread forever

    def log_message(self, format: str, *args: Any) -> None:
        """Keep quiet: tests read results, not access logs."""

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._reply(404, _error(f"no route for POST {self.path}", "not_found"))
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"null")
            model = body["model"]
            messages = body["messages"]
            if not isinstance(model, str) or not isinstance(messages, list):
                raise TypeError("model must be a string and messages a list")
        except (ValueError, KeyError, TypeError) as exc:
            self._reply(400, _error(f"bad request: {exc}", "invalid_request_error"))
            return
        if body.get("stream"):
            self._reply(400, _error("streaming is not supported by the test server",
                                    "invalid_request_error"))
            return
        chat = self.server.chat
        if not chat.enter():
            self._reply(429, _error("rate limit exceeded", "rate_limit_exceeded"))
            return
        try:
            time.sleep(chat.latency)
            text = completion_text(model, messages)
        finally:
            chat.leave()
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages
                            if isinstance(m, dict))
        completion_tokens = len(text.split())
        self._reply(200, {
            "id": "chatcmpl-" + hashlib.sha256(text.encode()).hexdigest()[:24],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_xcs_test",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": "stop",
            }],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })

    def do_GET(self) -> None:
        self._reply(404, _error(f"no route for GET {self.path}", "not_found"))

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        # One request per connection: a handler thread ends with its response, so
        # stopping the server never waits on an idle keep-alive connection.
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


class _Server(ThreadingHTTPServer):
    chat: ChatServer
    daemon_threads = False  # server_close() joins the handler threads
    block_on_close = True
    # socketserver's default backlog of 5 drops connections when a jitted function
    # opens more at once, and the client's retry after a dropped SYN costs a second.
    request_queue_size = 128


class ChatServer:
    """An OpenAI-compatible ``/v1/chat/completions`` endpoint on 127.0.0.1.

    Args:
        latency: seconds each completion takes (settable while running).
        limit: answer 429 to a request that would make more than ``limit``
            requests run at once; ``None`` for no limit.
        port: the port to bind; 0 picks a free one.
        rate: ``(n, seconds)``: answer 429 to a request that arrives when ``n``
            requests were served in the last ``seconds`` (a provider's
            sliding-window rate limit); ``None`` for no limit.
    """

    def __init__(self, latency: float = 0.1, limit: int | None = None, port: int = 0,
                 rate: tuple[int, float] | None = None) -> None:
        self.latency = latency
        self.limit = limit
        self.rate = rate
        self._arrivals: collections.deque[float] = collections.deque()
        self._port = port
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    def reset(self) -> None:
        """Forget the counts of requests served, refused and run at once."""
        with self._lock:
            self.requests = 0  # completions served
            self.refused = 0  # requests answered 429
            self.running = 0
            self.peak = 0  # most completions in progress at the same time
            self._arrivals.clear()

    def enter(self) -> bool:
        with self._lock:
            if self.limit is not None and self.running >= self.limit:
                self.refused += 1
                return False
            if self.rate is not None:
                n, seconds = self.rate
                now = time.monotonic()
                arrivals = self._arrivals
                while arrivals and arrivals[0] <= now - seconds:
                    arrivals.popleft()
                if len(arrivals) >= n:
                    self.refused += 1
                    return False
                arrivals.append(now)
            self.running += 1
            self.requests += 1
            self.peak = max(self.peak, self.running)
            return True

    def leave(self) -> None:
        with self._lock:
            self.running -= 1

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the chat server is not running")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """The URL to give an OpenAI client as ``base_url``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> ChatServer:
        httpd = _Server(("127.0.0.1", self._port), _Handler)
        httpd.chat = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="chat-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wait for requests in progress, release the port."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per completion")
    parser.add_argument("--limit", type=int, default=None,
                        help="answer 429 above this many requests at once")
    args = parser.parse_args(argv)
    with ChatServer(args.latency, args.limit, args.port) as server:
        print(f"serving {server.base_url}/chat/completions (Ctrl-C stops)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
