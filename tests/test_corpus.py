"""Every program of the benchmark corpus returns under ``jit`` exactly what it returns plain.

The programs (``bench/corpus.py``) talk to the local chat server of
``tests/openai_server.py`` on 127.0.0.1 through the official openai client, and
to an in-process search index; nothing reaches the network.  Each program is
checked on its trial call and on three later calls (replays, or plain runs if
xcs decided so), and its hand-written thread-pool version must agree too.  The
requests each run makes are counted: ``jit`` must make the same ones as plain,
and the corpus's own ``calls`` figure must be right.  Then the same jitted
function gets the program's other inputs (the same argument types, so the plan
made from the first input is replayed on them), which take other paths through
the program, and must again return, or raise, what plain does.  No timing is
asserted.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from bench import corpus
from bench.corpus import CORPUS
from bench.corpus_figures import Figures, markdown, table
from xcs import jit

from .openai_server import ChatServer

LATENCY = 0.01  # seconds per completion and per search


@pytest.fixture(scope="module")
def server():
    old = corpus.set_tool_latency(LATENCY)
    try:
        with ChatServer(latency=LATENCY) as chat:
            yield chat
    finally:
        corpus.set_tool_latency(old)


@pytest.fixture(scope="module")
def client(server):
    with openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0) as c:
        yield c


def requests_made(server):
    return server.requests + corpus.WIKI.searches


def outcome(fn, *args):
    """What a call returned, or the type and message of what it raised."""
    try:
        return "returned", fn(*args)
    except Exception as exc:
        return "raised", type(exc), str(exc)


def test_the_corpus_has_ten_distinct_programs_with_sane_figures():
    assert len(CORPUS) >= 10
    assert len({p.name for p in CORPUS}) == len(CORPUS)
    for p in CORPUS:
        assert 1 <= p.depth <= p.calls, p.name


@pytest.mark.parametrize("program", CORPUS, ids=lambda p: p.name)
def test_jit_and_the_hand_written_pool_return_what_plain_returns(program, server, client):
    before = requests_made(server)
    expected = program.fn(client, *program.args)
    assert requests_made(server) - before == program.calls, "the corpus's `calls` is wrong"

    jitted = jit(program.fn)
    for call in range(1, 5):
        before = requests_made(server)
        assert jitted(client, *program.args) == expected, f"jit call {call} differs from plain"
        assert requests_made(server) - before == program.calls, f"jit call {call}: other requests"

    with ThreadPoolExecutor(16, thread_name_prefix="hand-pool") as pool:
        assert program.pooled(pool, client, *program.args) == expected

        for args in program.variants:
            plain = outcome(program.fn, client, *args)
            for call in range(1, 3):
                assert outcome(jitted, client, *args) == plain, f"{args!r:.80}: jit call {call}"
            assert outcome(program.pooled, pool, client, *args) == plain, f"{args!r:.80}: pooled"


def test_the_figures_render_as_text_and_markdown():
    f = Figures("demo", "a demo", calls=4, depth=2, plain_ms=240.0, jit_ms=130.0, pool_ms=125.0,
                critical_ms=120.0, status="optimized", reason=None, deferred_sites=["x.py:1"], ok=True)
    text = table([f])
    assert "demo" in text and "1.85x" in text and "92%" in text
    md = markdown([f])
    assert md.startswith("| program |") and "| demo | a demo | 4 | 2 |" in md
