"""Objects the body shares with deferred calls, match patterns, blocking calls, any
executor, tracers: each behaviour of issue 14, checked against the plain function
on replays (every test asserts that the jitted function really replayed).

A deferred callee in these tests sleeps before it looks at its arguments again:
if the body touched them meanwhile, the callee would see it.  That makes the
tests fail on code that does not wait (almost always: the body runs in
microseconds), and never on code that does.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import heapq
import io
import queue
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import Executor, Future
from pathlib import Path

import pytest

from xcs import jit
from xcs._values import stays_here

from .conftest import Forwarding, OwnThreads
from .test_contract import warm

SLOW = 0.02  # long enough for a body that does not wait to run ahead of the callee


def replays(f) -> int:
    return sum(s.replays for s in f.stats().signatures)


def assert_same(f, argsets, *, min_replays=2):
    """``jit(f)`` returns and raises what ``f`` does for each argument tuple, and replays."""
    jitted = jit(f)
    for args in argsets:
        assert outcome(jitted, *args) == outcome(f, *args), args
    assert replays(jitted) >= min_replays, jitted.explain()
    return jitted


def outcome(fn, *args):
    try:
        return "returned", fn(*copy.deepcopy(args))
    except Exception as exc:
        return "raised", type(exc), str(exc)


class Seen:
    """A slow callee that records its arguments when called and again when it returns."""

    def __init__(self):
        self.lock = threading.Lock()
        self.log: list[tuple] = []

    def __call__(self, tag, obj=None):
        at_entry = copy.deepcopy(obj)
        time.sleep(SLOW)
        with self.lock:
            self.log.append((tag, at_entry, copy.deepcopy(obj)))
        return f"{tag}:{obj!r}"  # what the call saw when it ended

    def sorted(self):
        return sorted(map(repr, self.log))


# == the body changes an object handed to a deferred call ===========================

class Request:
    def __init__(self, url):
        self.url = url
        self.headers = []

    def add_header(self, h):
        self.headers.append(h)

    def __deepcopy__(self, memo):
        r = Request(self.url)
        r.headers = list(self.headers)
        return r

    def __repr__(self):
        return f"Request({self.url!r}, {self.headers!r})"


def _add(xs, x):
    xs.append(x)


def change_by_helper(seen, q):
    msgs = ["sys", q]
    a = seen("a", msgs)
    b = seen("b", [q])
    _add(msgs, "follow-up")
    return a, b, msgs


def change_by_heappush(seen, q):
    msgs = ["b", q]
    a = seen("a", msgs)
    b = seen("b", [q])
    heapq.heappush(msgs, "a")
    return a, b, msgs


def change_by_saved_method(seen, q):
    msgs = ["sys", q]
    push = msgs.append
    a = seen("a", msgs)
    b = seen("b", [q])
    push("follow-up")
    return a, b, msgs


def change_by_own_method(seen, q):
    req = Request(q)
    a = seen("a", req)
    b = seen("b", [q])
    req.add_header("retry")
    return a, b, req.headers


def change_by_closure(seen, q):
    msgs = ["sys", q]
    add = lambda x: msgs.append(x)  # noqa: E731
    a = seen("a", msgs)
    b = seen("b", [q])
    add("follow-up")
    return a, b, msgs


def change_through_a_container(seen, q):
    msgs = ["sys", q]
    a = seen("a", msgs)
    b = seen("b", [q])
    _add({"m": msgs}["m"], "x")
    return a, b, msgs


def _append_inside(box):
    box["m"].append("follow-up")


def change_through_a_fresh_container(seen, q):
    msgs = ["sys", q]
    a = seen("a", msgs)
    b = seen("b", [q])
    _append_inside({"m": msgs})  # a dict the body just built, holding what the call owns
    return a, b, msgs


def change_inside_a_container_argument(seen, q):
    inner = [q]
    a = seen("a", {"inner": inner})
    b = seen("b", [q])
    _add(inner, "x")
    return a, b, inner


# (Stores into attributes and outside containers waited before already: not repeated here.)
CHANGES = [change_by_helper, change_by_heappush, change_by_saved_method, change_by_own_method,
           change_by_closure, change_through_a_container, change_through_a_fresh_container,
           change_inside_a_container_argument]


@pytest.mark.parametrize("body", CHANGES, ids=lambda f: f.__name__)
def test_a_deferred_call_never_sees_the_body_change_its_arguments(body):
    """The callee sees its arguments as they were when the body made the call."""
    plain_seen, jit_seen = Seen(), Seen()
    jitted = jit(body)
    for q in ("q0", "q1", "q2", "q3"):
        plain_seen.log.clear()
        jit_seen.log.clear()
        assert jitted(jit_seen, q) == body(plain_seen, q)
        assert jit_seen.sorted() == plain_seen.sorted()
    assert replays(jitted) >= 2, jitted.explain()


# == the body reads an object that a deferred call changes ==========================

def _count(state, tag):
    time.sleep(SLOW)
    state["n"] += 1
    return tag


def read_counter(xs):
    state = {"n": 0}
    out = [_count(state, x) for x in xs]
    return out, state.get("n"), len(state), "n" in state


def _consume(it, tag):
    time.sleep(SLOW)
    return tag + ",".join(it)


def read_iterator(xs):
    it = iter(["p", "q"])
    a = _consume(it, xs[0])
    b = _consume(iter(["r"]), xs[1])
    return a, b, list(it)


def _upload(fh, tag):
    time.sleep(SLOW)
    return tag + fh.read()


def read_file(xs):
    fh = io.StringIO("hello world")
    a = _upload(fh, xs[0])
    b = _upload(io.StringIO("zz"), xs[1])
    fh.seek(0)
    return a, b, fh.read(5)


def _produce(q, x):
    time.sleep(SLOW)
    if x == "bad":
        raise ValueError(f"cannot produce {x}")
    q.put(x)
    return x


def read_queue(xs):
    q = queue.Queue()
    a = _produce(q, xs[0])
    b = _produce(queue.Queue(), xs[1])
    return a, b, q.get_nowait()  # plain has put (or raised in _produce) by now


def _mark(user, tag):
    time.sleep(SLOW)
    user.seen = tag
    return tag


class User:
    seen = None


def read_attribute(xs):
    user = User()
    a = _mark(user, xs[0])
    b = _mark(User(), xs[1])
    return a, b, user.seen


READS = [read_counter, read_iterator, read_file, read_queue, read_attribute]


@pytest.mark.parametrize("body", READS, ids=lambda f: f.__name__)
def test_the_body_reads_what_a_deferred_call_left_in_its_arguments(body):
    """What the body reads after a call is what the call left there, as in plain."""
    argsets = [(["a", "b"],), (["c", "d"],), (["e", "f"],), (["g", "h"],)]
    if body is read_queue:
        argsets += [(["bad", "x"],), (["y", "z"],)]
    assert_same(body, argsets)


# == match on a result ================================================================

class Point:
    __match_args__ = ("x", "y")

    def __init__(self, x, y):
        self.x, self.y = x, y


def _classify(x):
    time.sleep(0.005)
    return [{"kind": "a", "v": x}, [x, x + 1], Point(0, x), x, None, (x, "t")][x % 6]


def _side(x):
    time.sleep(0.005)
    return f"side{x}"


def match_every_kind(xs):
    out = []
    for x in xs:
        side = _side(x)  # deferred: the loop overlaps these
        match _classify(x):
            case {"kind": "a", "v": v}:
                out.append(("mapping", v))
            case [a, b]:
                out.append(("sequence", a, b))
            case Point(0, y):
                out.append(("class", y))
            case None:
                out.append(("none",))
            case 3 | 9:
                out.append(("literal",))
            case int(n) if n > 100:
                out.append(("guard", n))
            case (n, "t"):
                out.append(("tuple", n))
            case r:
                out.append(("other", r))
        out.append(side)
    return out


def test_match_patterns_of_every_kind_see_the_value():
    """Mapping, sequence, class, None, literal, guard and tuple patterns match the value."""
    assert_same(match_every_kind, [(list(range(6)),), (list(range(6, 12)),), ([102, 3, 5, 1],),
                                   (list(range(12)),)])


# == calls made to block ==============================================================

def test_sleeps_between_requests_keep_their_delay():
    """``time.sleep`` between deferred requests is not deferred: requests stay spaced."""
    def request(x):
        time.sleep(0.01)
        return f"r{x}"

    def f(xs):
        out = []
        for x in xs:
            out.append(request(x))
            time.sleep(0.03)
        return out

    jitted = jit(f)
    for _ in range(2):
        assert jitted([1, 2, 3]) == f([1, 2, 3])
    begun = time.monotonic()
    assert jitted([1, 2, 3]) == ["r1", "r2", "r3"]
    # The body sleeps three times in a row (a sleep lasts at least what it asks for);
    # deferred, the sleeps would overlap and the call would take about 40 ms.
    assert time.monotonic() - begun >= 0.09
    assert replays(jitted) >= 1, jitted.explain()
    assert "blocks or waits" in jitted.explain()


def _blocking_callees():
    lock, rlock, sem = threading.Lock(), threading.RLock(), threading.BoundedSemaphore()
    cond, event, barrier = threading.Condition(), threading.Event(), threading.Barrier(1)
    q, sq, fut, thread = queue.Queue(), queue.SimpleQueue(), Future(), threading.Thread()
    return {"time.sleep": time.sleep, "Lock.acquire": lock.acquire,
            "RLock.acquire": rlock.acquire, "Semaphore.acquire": sem.acquire,
            "Condition.wait": cond.wait, "Event.wait": event.wait, "Barrier.wait": barrier.wait,
            "Queue.get": q.get, "Queue.put": q.put, "SimpleQueue.get": sq.get,
            "Future.result": fut.result, "Thread.join": thread.join}


@pytest.mark.parametrize("name", sorted(_blocking_callees()))
def test_calls_that_block_or_wait_stay_in_the_body(name):
    """Waits, locks, queues, futures and joins are never deferred."""
    assert stays_here(_blocking_callees()[name])


# == any executor =====================================================================

@pytest.fixture(params=["forwarding", "own-threads"])
def foreign(request):
    pool = Forwarding(1) if request.param == "forwarding" else OwnThreads(1)  # from conftest
    yield pool
    pool.shutdown(wait=True)


REQUEST = contextvars.ContextVar("request", default="-")


def test_deferred_calls_see_contextvars_on_any_executor(foreign):
    """The caller's contextvars reach deferred calls on a wrapper or a custom executor."""
    def read(x):
        time.sleep(0.005)
        return f"{x}@{REQUEST.get()}"

    @jit(executor=foreign)
    def f(xs):
        return [read(x) for x in xs]

    token = REQUEST.set("req-42")
    try:
        for _ in range(3):
            assert f(["a", "b", "c"]) == ["a@req-42", "b@req-42", "c@req-42"]
    finally:
        REQUEST.reset(token)
    assert replays(f) >= 1, f.explain()


NESTED = """
import sys, time
from tests.conftest import Forwarding, OwnThreads
from xcs import jit

pool = Forwarding(1) if sys.argv[1] == "forwarding" else OwnThreads(1)

def leaf(x):
    time.sleep(0.005)
    return f"<{x}>"

@jit(executor=pool)
def inner(x):
    return [leaf(x + str(i)) for i in range(3)]

@jit(executor=pool)
def outer(xs):
    return [inner(x) for x in xs]

results = [outer(["p", "q"]) for _ in range(5)]
assert results == [outer.__wrapped__(["p", "q"])] * 5, results
replays = [sum(s.replays for s in f.stats().signatures) for f in (outer, inner)]
assert min(replays) >= 1, (outer.explain(), inner.explain())
pool.shutdown()
print("ok", replays)
"""


@pytest.mark.parametrize("kind", ["forwarding", "own-threads"])
def test_nested_jit_on_one_worker_of_any_executor_does_not_deadlock(kind):
    """Nested jitted functions on a one-worker wrapper or custom executor finish.

    In a child process: a deadlocked pool would keep this one from exiting.
    """
    root = Path(__file__).resolve().parent.parent
    try:
        done = subprocess.run([sys.executable, "-c", NESTED, kind], cwd=root, timeout=120,
                              capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        pytest.fail("nested jit deadlocked on a one-worker executor")
    assert done.returncode == 0 and done.stdout.startswith("ok"), done.stderr[-3000:]


def test_a_wrapper_that_cannot_run_a_call_falls_back_to_plain():
    """A wrapper whose futures fail (it cannot run the call) gives plain results, no hang."""
    class Refusing(Executor):
        def submit(self, fn, /, *args, **kwargs):
            future: Future = Future()
            future.set_exception(RuntimeError("cannot send this call"))
            return future

    def slow(x):
        time.sleep(0.003)
        return x * 2

    def f(xs):
        return [slow(x) for x in xs]

    jitted = jit(executor=Refusing())(f)
    jitted([1, 2, 3])  # the trial: the plan defers slow()
    with pytest.warns(Warning, match="refused"):
        assert jitted([4, 5, 6]) == [8, 10, 12]
    assert jitted([7, 8]) == [14, 16]


# == tracers and debuggers ============================================================

def _traced_body(m, xs):
    a = [m(x) for x in xs]
    b = a[0] + a[-1]
    return b


def _line_events(fn, *args):
    events = []
    pending = []

    def tracer(frame, event, arg):
        if frame.f_code.co_name == "_traced_body":
            events.append((event, frame.f_lineno - _traced_body.__code__.co_firstlineno))
            pending.extend(k for k, v in frame.f_locals.items() if "xcs pending" in repr(v))
            return tracer
        return None

    sys.settrace(tracer)
    try:
        fn(*args)
    finally:
        sys.settrace(None)
    return events, pending


def test_a_trace_function_sees_the_plain_function(model):
    """Under sys.settrace a jitted function reports the plain line events, no placeholder."""
    jitted = jit(_traced_body)
    for _ in range(3):
        jitted(model, ["a", "b", "c"])
    assert replays(jitted) >= 1, jitted.explain()
    want = _line_events(_traced_body, model, ["a", "b", "c"])
    for _ in range(2):
        assert _line_events(jitted, model, ["a", "b", "c"]) == want
    assert "under a trace function" in str(jitted.stats())


if hasattr(sys, "monitoring"):  # 3.12+ (defined only there: no skipped test on 3.11)
    def test_a_monitoring_tool_sees_the_plain_function(model):
        """A sys.monitoring LINE tool sees the plain function's lines (3.12+)."""
        mon = sys.monitoring
        tool = mon.DEBUGGER_ID
        jitted = jit(_traced_body)
        for _ in range(3):
            jitted(model, ["a", "b", "c"])
        assert replays(jitted) >= 1, jitted.explain()

        def lines(fn):
            seen = []
            first = _traced_body.__code__.co_firstlineno

            def on_line(code, line):
                if code.co_name == "_traced_body":
                    seen.append(line - first)

            mon.use_tool_id(tool, "xcs-test")
            try:
                mon.register_callback(tool, mon.events.LINE, on_line)
                mon.set_events(tool, mon.events.LINE)
                fn(model, ["a", "b", "c"])
            finally:
                mon.set_events(tool, 0)
                mon.register_callback(tool, mon.events.LINE, None)
                mon.free_tool_id(tool)
            return seen

        assert lines(jitted) == lines(_traced_body)


# == tracebacks, signatures, caches ===================================================

def _slow_or_bad(x):
    time.sleep(0.003)
    if x == "bad":
        raise ValueError(x)
    return x


def _in_a_comprehension(xs):
    out = [_slow_or_bad(x) for x in xs]
    return out


def _in_nested_comprehensions(xs):
    out = [[_slow_or_bad(x) for x in (y, y + "!")] for y in xs]
    return out


@pytest.mark.parametrize("f", [_in_a_comprehension, _in_nested_comprehensions],
                         ids=["comprehension", "nested"])
def test_a_failing_call_in_a_comprehension_has_the_plain_traceback(f):
    """The frames of a deferred call's failure inside comprehensions are plain's."""
    jitted = jit(f)
    for _ in range(3):
        jitted(["a", "b", "c", "d"])
    assert replays(jitted) >= 1, jitted.explain()
    frames = []
    for fn in (f, jitted):
        try:
            fn(["a", "bad", "c", "d"])
        except ValueError as exc:
            frames.append([(fs.name, fs.lineno) for fs in traceback.extract_tb(exc.__traceback__)])
    assert len(frames) == 2 and frames[0] == frames[1], frames


def test_star_args_of_any_length_share_one_signature(model):
    """f(*docs) with 4, 5, 6 or 7 docs is one signature, and replays."""
    @jit
    def f(*docs):
        return [model(d) for d in docs]

    for n in (4, 5, 6, 7):
        assert f(*map(str, range(n))) == f.__wrapped__(*map(str, range(n)))
    stats = f.stats()
    assert stats.cached == 1 and replays(f) >= 2, str(stats)


def test_a_cached_callee_runs_as_often_as_in_plain():
    """Duplicate calls into an lru_cache'd callee hit the cache as in plain."""
    runs: list[str] = []

    @functools.cache
    def cached(x):
        runs.append(x)
        time.sleep(0.01)
        return "c" + x

    def f(xs):
        return [cached(x) for x in xs]

    jitted = jit(f)
    keys = ["a", "b", "a", "c", "b", "a"]
    counts = []
    for fn in (f, jitted, jitted, jitted):
        cached.cache_clear()
        runs.clear()
        assert fn(keys) == ["ca", "cb", "ca", "cc", "cb", "ca"]
        counts.append(sorted(runs))
    assert counts == [["a", "b", "c"]] * 4
    assert replays(jitted) >= 2, jitted.explain()


# == what must keep overlapping =======================================================

def test_objects_shared_read_only_by_deferred_calls_still_overlap():
    """One prompt list passed to many calls, and a client's bound method, still overlap."""
    class Completions:
        def __init__(self):
            self.barrier = None

        def create(self, messages, prompt):
            if self.barrier is not None:
                self.barrier.wait()
            else:
                time.sleep(0.003)
            return prompt + messages[-1]["content"]

    class Client:
        def __init__(self):
            self.completions = Completions()

    client = Client()
    system = [{"role": "system", "content": "be brief"}]

    @jit
    def f(docs):
        prompt = system[0]["content"]  # read before the calls: the body reads nothing they own
        return [client.completions.create(messages=[*system, {"role": "user", "content": d}],
                                          prompt=prompt) for d in docs]

    docs = ["a", "b", "c", "d"]
    warm(f, docs, sites=1)  # (a trial on a loaded machine may misjudge: traced again)
    client.completions.barrier = threading.Barrier(4, timeout=10)
    assert f(docs) == ["be briefa", "be briefb", "be briefc", "be briefd"]
    assert replays(f) >= 2, f.explain()


def test_a_subscript_reads_the_container_not_the_callee_it_holds():
    """``models[0](prompt)`` in a loop overlaps: the subscript (BINARY_OP [] on 3.14+)
    looks at the list, not inside the model that the previous calls own."""
    from .conftest import Model

    models = [Model(latency=0.003)]

    @jit
    def f(docs):
        return [models[0](d) for d in docs]

    docs = ["a", "b", "c", "d"]
    warm(f, docs, sites=1)
    models[0].expect_overlap(4)
    assert f(docs) == ["m(a)", "m(b)", "m(c)", "m(d)"]
    assert replays(f) >= 2, f.explain()


# -- cells that closures read ------------------------------------------------------------
# A variable a lambda or an inner function reads is a cell.  While no closure holding
# it is alive it is the frame's own (its results need not be waited for); while one
# is, that closure must never find a placeholder in it, nor see it change under a
# deferred call.
def doubled(d):
    time.sleep(0.005)
    return d * 2


def seen_by_a_closure_made_before(docs):
    values = [0]
    kinds = lambda: [type(v).__name__ for v in values]  # noqa: E731
    values = []  # the closure sees the new list too
    for d in docs:
        values.append(doubled(d))
    return kinds(), values


def seen_by_a_closure_a_closure_made(docs):
    values = []
    make = lambda: (lambda: [type(v).__name__ for v in values])  # noqa: E731
    kinds = make()  # ``make`` is gone; what it made still holds the cell
    del make
    for d in docs:
        values.append(doubled(d))
    rest = [doubled(d) for d in docs]
    return kinds(), rest


def seen_by_a_kept_closure(docs):
    values = []
    keep = {"kinds": lambda: [type(v).__name__ for v in values]}
    for d in docs:
        values.append(doubled(d))
    rest = [doubled(d) for d in docs]
    return keep["kinds"](), rest


def rebound_to_a_result(docs):
    first = doubled(docs[0])
    kind = lambda: type(first).__name__  # noqa: E731
    first = doubled(docs[1])  # the closure reads the cell's new content
    rest = [doubled(d) for d in docs]
    return kind(), rest


def rebuilt_each_round(docs):
    best = []
    for _ in range(3):
        values = []
        for d in docs:
            values.append(doubled(d))
        best.append(max(range(len(docs)), key=lambda i: values[i]))
    return best


def called_by_a_deferred_call(docs):
    values = []
    count = lambda: len(values)  # noqa: E731
    out = []
    for d in docs:
        values.append(doubled(d))
        out.append(calls_it(count))  # the callee calls the closure on a worker
    rest = [doubled(d) for d in docs * 4]
    return out, rest


def calls_it(fn):
    time.sleep(0.005)
    return fn()


def read_by_a_generator_made_before_an_append(docs):
    values = []
    for d in docs:
        values.append(doubled(d))
    more = (v + 1 for v in values)  # reads ``values`` when consumed, after the append
    values.append(doubled(50))
    return list(more)


@pytest.mark.parametrize("body", [seen_by_a_closure_made_before, seen_by_a_closure_a_closure_made,
                                  seen_by_a_kept_closure, rebound_to_a_result, rebuilt_each_round,
                                  called_by_a_deferred_call,
                                  read_by_a_generator_made_before_an_append],
                         ids=lambda f: f.__name__)
def test_a_closure_never_sees_a_placeholder_in_a_cell_it_reads(body):
    docs = [3, 1, 2, 5]
    expected = body(docs)
    f = jit(body)
    for _ in range(4):
        assert f(docs) == expected
    assert replays(f) >= 1, f.explain()


# -- a mutating method on an object others may see ---------------------------------------
# ``self.history.append(llm(d))`` changes a list others can reach (through ``self``, a
# global, a closure): it is made in the body, after the deferred calls, never later as a
# continuation; a later call that reads the list finds every item, as in plain.
RESULTS: list[str] = []


class Agent:
    def __init__(self) -> None:
        self.history: list[str] = []

    def summary(self) -> str:
        return "|".join(self.history)

    def run(self, docs):
        for d in docs:
            self.history.append(doubled(d))
        return self.summary()


def into_a_global(docs):
    RESULTS.clear()
    for d in docs:
        RESULTS.append(doubled(d))
    return sorted(range(len(docs)), key=lambda i: RESULTS[i])


def into_the_callers_list(out, docs):
    for d in docs:
        out.append(doubled(d))
    return sorted(range(len(docs)), key=lambda i: out[i])


@pytest.mark.parametrize("case", ["attribute", "global", "caller"])
def test_a_later_call_sees_what_the_body_appended_to_a_list_others_see(case):
    docs = ["c", "a", "d", "b"]
    if case == "attribute":
        f, plain, args = jit(Agent.run), Agent.run, lambda: (Agent(), docs)
    elif case == "global":
        f, plain, args = jit(into_a_global), into_a_global, lambda: (docs,)
    else:
        f, plain, args = jit(into_the_callers_list), into_the_callers_list, lambda: ([], docs)
    expected = plain(*args())
    for _ in range(4):
        assert f(*args()) == expected


class Counter:
    def __init__(self) -> None:
        self.n = 0


def bumped(counter):
    time.sleep(SLOW)
    counter.n += 10
    return counter.n


def ranked_by_a_closure_over_an_owned_object(xs):
    counter = Counter()
    first = bumped(counter)  # deferred: it owns ``counter`` until it returns
    order = sorted(xs, key=lambda x: (x - counter.n) ** 2)  # the key reads counter.n
    rest = [doubled(x) for x in xs]
    return first, order, rest


def test_a_call_that_receives_a_closure_waits_for_the_owner_of_what_the_closure_reads():
    xs = [0, 4, 9, 12, 30]
    expected = ranked_by_a_closure_over_an_owned_object(xs)
    f = jit(ranked_by_a_closure_over_an_owned_object)
    for _ in range(4):
        assert f(xs) == expected
    assert replays(f) >= 1, f.explain()


def snapshot():
    return list(RESULTS)


def through_a_saved_bound_method(docs):
    RESULTS.clear()
    add = RESULTS.append  # the flow cannot see whose method it is: the trial can
    for d in docs:
        add(doubled(d))
    return snapshot()


class Holder:
    def __init__(self) -> None:
        self.items: list[str] = []

    def __repr__(self) -> str:
        return f"Holder({self.items})"


def filtered_into_a_list_others_see(docs):
    holder = Holder()
    kept = []
    holder.items = kept  # from here on ``kept`` is seen through ``holder`` too
    for d in docs:
        r = doubled(d)
        if r != "aa":
            kept.append(r)
    return repr(holder)


@pytest.mark.parametrize("body", [through_a_saved_bound_method, filtered_into_a_list_others_see],
                         ids=lambda f: f.__name__)
def test_a_later_read_through_another_name_sees_every_append(body):
    docs = ["c", "a", "d", "b"]
    expected = body(docs)
    f = jit(body)
    for _ in range(4):
        assert f(docs) == expected
