"""The first call overlaps: once a callee has shown itself slow in this process, its
later calls are deferred at once, in the same call, under every rule of a replay."""

from __future__ import annotations

import threading
import time

import pytest

from xcs import _callees, jit

SLOW = 0.003
N = 6


@pytest.fixture(autouse=True)
def fresh_process():
    """Each test starts from a process that knows no callee."""
    _callees.clear()
    yield
    _callees.clear()


class Gated:
    """A slow callee whose calls after the first (the one the first call learns from)
    wait until ``parties`` of them run at once: a first call that makes them one after
    the other breaks the barrier."""

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties, timeout=10)
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, x):
        with self.lock:
            self.calls += 1
            first = self.calls == 1
        if not first:
            self.barrier.wait()
        # Each call is slow: the plan made from what the first call saw is clear of the
        # 1.2x bar (calls that only met at the barrier took ~0.1 ms, and a plan of
        # one 3 ms call and five of 0.1 ms estimated 1.20x).
        time.sleep(SLOW)
        return f"<{x}>"


def test_the_calls_after_the_first_slow_one_overlap_in_the_first_call():
    def body(m, xs):
        return [m(x) for x in xs]

    f = jit(body)
    got = f(Gated(N - 1), list(range(N)))
    assert got == [f"<{x}>" for x in range(N)]
    sig = f.stats().signatures[0]
    assert sig.first_deferred == N - 1, f.explain()
    assert sig.status == "optimized", f.explain()  # and the plan is made from what it saw
    assert f(Gated(N - 1), list(range(N))) == got  # a replay defers all of them


def test_a_loop_with_three_calls_an_iteration_overlaps_across_iterations():
    """The seed loop: ``a + b + c`` of results is computed when they arrive."""
    def body(m):
        out = []
        for i in range(3):
            a = m(i)
            b = m(i + 1)
            c = m(i + 2)
            out.append(a + b + c)
        return out

    expected = ["<0><1><2>", "<1><2><3>", "<2><3><4>"]
    f = jit(body)
    assert f(Gated(8)) == expected
    assert f.stats().signatures[0].first_deferred == 8


def slow_model(prompt):
    time.sleep(SLOW)
    return prompt.upper()


class Client:
    def __init__(self, gate=None):
        self.gate = gate

    def ask(self, prompt):
        if self.gate is not None:
            self.gate.wait()
        return slow_model(prompt)


def test_what_one_function_learned_informs_the_first_call_of_another():
    teach = jit(lambda c: c.ask("x"))
    assert teach(Client()) == "X"  # one call: it shows Client.ask slow

    @jit
    def other(c, ps):
        return [c.ask(p) for p in ps]

    # Every call of its first call is deferred: all N wait for each other.
    gate = threading.Barrier(N, timeout=10)
    assert other(Client(gate), [f"p{k}" for k in range(N)]) == [f"P{k}" for k in range(N)]
    assert other.stats().signatures[0].first_deferred == N


def test_a_failure_in_a_first_call_is_the_plain_failure():
    """The deferred calls fail as in plain: the first failure in program order."""

    class Flaky(Gated):
        def __call__(self, x):
            out = super().__call__(x)
            if x >= 2:
                raise ValueError(f"bad {x}")
            return out

    def body(m, xs):
        return [m(x) for x in xs]

    f = jit(body)
    with pytest.raises(ValueError, match="bad 2"):
        f(Flaky(3), [0, 1, 2, 3])  # 1, 2 and 3 run at once; 2 fails first in program order
    assert f.stats().signatures[0].first_deferred == 3


def test_a_first_call_never_shows_a_deferred_call_the_body_changing_its_argument():
    seen = []

    def record(tag, items):
        time.sleep(SLOW)
        seen.append((tag, list(items)))
        return tag

    def body(q):
        msgs = [q]
        a = record("a", msgs)  # made here: it shows ``record`` slow
        b = record("b", msgs)  # deferred: it owns msgs
        msgs.append("later")  # the body waits for b first
        return a, b, msgs

    f = jit(body)
    assert f("q") == ("a", "b", ["q", "later"])
    assert sorted(seen) == [("a", ["q"]), ("b", ["q"])]
    assert f.stats().signatures[0].first_deferred == 1


def test_a_callee_that_turns_out_fast_is_made_in_the_body_again():
    calls = []

    def sometimes(x):
        calls.append(x)
        if x == 0:
            time.sleep(SLOW)
        return x

    f = jit(lambda xs: [sometimes(x) for x in xs])
    assert f([0, 1, 2]) == [0, 1, 2]
    assert f.stats().signatures[0].first_deferred == 2
    assert _callees.lookup(sometimes) is None  # its deferred calls were fast: forgotten


def test_resolving_the_inputs_of_a_call_made_here_is_not_its_time(monkeypatch):
    """A fast call on results (a count, an outlined loop over them) is timed from when
    its inputs are there, as in plain: the first call's waiting for them and resolving
    them is not its time, else it looks slow, is kept in the body, and is deferred in
    the first calls of every other function."""
    from xcs import _trace

    alias = _trace.Recorder.alias

    def slow_alias(self, placeholder, value):  # resolving takes long: 2 ms an item
        time.sleep(0.002)
        alias(self, placeholder, value)

    monkeypatch.setattr(_trace.Recorder, "alias", slow_alias)

    def count(items):
        return len(items)

    def body(xs):
        results = [slow_model(x) for x in xs]
        return count(results), results

    f = jit(body)
    assert f(["a", "b", "c", "d"]) == (4, ["A", "B", "C", "D"])
    assert f.stats().signatures[0].first_deferred == 3, f.explain()
    assert _callees.lookup(slow_model) is not None
    assert _callees.lookup(count) is None, f.explain()  # never slow itself
    assert "count()" in f.explain() and "continue (when their inputs arrive)" in f.explain()


def test_making_a_deferred_call_is_not_the_bodys_time(monkeypatch):
    """What a first call spends making its deferred calls (a trampoline compiled per
    site, a pool starting a thread) is xcs's time, not the body's: a chain, whose
    every result is needed at once, is still planned plain."""
    from xcs import _tracebacks

    trampoline = _tracebacks.trampoline

    def slow_trampoline(*args):  # making each site's first deferral takes 10 ms
        time.sleep(0.01)
        return trampoline(*args)

    monkeypatch.setattr(_tracebacks, "trampoline", slow_trampoline)
    jit(lambda x: slow_model(x))("teach")  # the process knows slow_model is slow

    def chain(x):
        a = slow_model(x)
        b = slow_model(a)
        return slow_model(b)

    f = jit(chain)
    assert f("x") == "X"
    sig = f.stats().signatures[0]
    assert sig.first_deferred == 3, f.explain()
    assert sig.status == "plain", f.explain()


def test_explain_and_stats_say_what_the_first_call_deferred():
    def body(m, xs):
        return [m(x) for x in xs]

    f = jit(body)
    f(Gated(3), [0, 1, 2, 3])
    text = f.explain()
    assert "first call: " in text and "it deferred 3 calls at test_first_call.py:" in text, text
    assert "first call deferred 3 (" in str(f.stats())


def test_a_first_call_on_a_throttle_is_a_trial():
    """On a throttle every call in the body takes a slot: the first call makes them."""
    from xcs import throttle

    def body(m, xs):
        return [m(x) for x in xs]

    f = jit(body, executor=throttle(max_in_flight=4))
    assert f(lambda x: slow_model(str(x)), [1, 2]) == ["1", "2"]
    assert f.stats().signatures[0].first_deferred == 0


def test_a_chain_of_small_ints_is_a_chain():
    """``inc`` returns small ints, which CPython shares: their identity names no call.
    The links come from the code, so the plan sees a chain and stays plain (deferring
    the first two calls together would estimate 1.25x and overlap nothing)."""
    def inc(x):
        time.sleep(SLOW)
        return x + 1

    def chain(x):
        a = inc(x)
        b = inc(a)
        c = inc(b)
        d = inc(c)
        return inc(d)

    f = jit(chain)
    assert f(1) == 6
    assert "edges: #0->#1, #1->#2, #2->#3, #3->#4\n" in f.explain()
    assert f.stats().signatures[0].status == "plain", f.explain()
