"""OpenTelemetry: a deferred call's spans are children of the span current at its call site.

xcs runs every deferred call, continuation and access on a result in a copy of the
body's ``contextvars`` context taken where the body made it, and OpenTelemetry keeps
its current span in a context variable: nothing needs configuring.  These tests use
the real SDK with a provider of their own (the global one can be set only once per
process) and an in-memory exporter.  Each final call is a replay whose slow calls
meet at a ``threading.Barrier`` (across processes: ``cpu_work.count_primes_met``),
so a replay that ran them one after the other fails (after a timeout) instead of
passing.

A ``with`` statement in a jitted body is a place where xcs waits and calls inside
it are never deferred (docs/contract.md), so the bodies below that need calls
under different spans to overlap switch spans with ``context.attach``/``detach``
(``enter`` and ``leave``).
"""

from __future__ import annotations

import inspect
import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import pytest
from opentelemetry import context, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from xcs import jit

from . import cpu_work
from .conftest import Forwarding, OwnThreads
from .test_contract import replays, warm

N = 4  # calls that must run at once in each final replay

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = provider.get_tracer(__name__)


class Gate:
    """Slow callees sleep; once ``open(n)``, each waits until n of them run at once."""

    def __init__(self) -> None:
        self.barrier: threading.Barrier | None = None
        self.loud = False  # llm returns Loud strings (a user type under an operator)
        # The fast helpers open their spans only in the final call: on a CPU that was
        # idle a span can take over 100 us, and the trial would then not find them fast
        # enough to be continuations.
        self.helpers_trace = False

    def open(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties, timeout=10)

    def close(self) -> None:
        self.barrier = None
        self.loud = False
        self.helpers_trace = False

    def wait(self) -> None:
        barrier = self.barrier
        if barrier is None:
            time.sleep(0.003)
            return
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            raise AssertionError(f"the {barrier.parties} calls did not run at once: the replay "
                                 "made them one after the other") from None


gate = Gate()


@pytest.fixture(autouse=True)
def fresh():
    exporter.clear()
    gate.close()
    yield
    gate.close()


# -- callees ----------------------------------------------------------------------------


class Loud(str):
    """A ``str`` whose ``+`` runs user code: it opens a span."""

    def __add__(self, other):
        with tracer.start_as_current_span("work", attributes={"prompt": str(self)}):
            return Loud(str(self) + other)


def llm(prompt):
    """A slow call that opens its own span, like an instrumented LLM client."""
    with tracer.start_as_current_span("llm", attributes={"prompt": prompt}):
        gate.wait()
        return Loud(prompt) if gate.loud else prompt


class Reply:
    """A response object whose accesses run user code that opens a span."""

    def __init__(self, prompt):
        self.prompt = prompt

    def _work(self):
        return tracer.start_as_current_span("work", attributes={"prompt": self.prompt})

    @property
    def text(self):
        with self._work():
            return self.prompt.upper()

    def __getitem__(self, i):
        with self._work():
            return self.prompt[i]

    def __iter__(self):
        with self._work():
            return iter((self.prompt, len(self.prompt)))


def create(prompt):
    """A slow call returning a response object."""
    with tracer.start_as_current_span("llm", attributes={"prompt": prompt}):
        gate.wait()
        return Reply(prompt)


def summarize(reply):
    """A fast helper on a result (a continuation) that opens a span."""
    if not gate.helpers_trace:
        return len(reply.prompt)
    with tracer.start_as_current_span("work", attributes={"prompt": reply.prompt}):
        return len(reply.prompt)


def enter(name):
    """Make a new span current in the caller's context, without a ``with`` block."""
    span = tracer.start_span(name)
    return span, context.attach(trace.set_span_in_context(span))


def leave(opened):
    span, token = opened
    context.detach(token)
    span.end()


def current():
    return trace.get_current_span().get_span_context().span_id


# -- helpers --------------------------------------------------------------------------------


def spans(name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def one(name: str) -> ReadableSpan:
    (span,) = spans(name)
    return span


def parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def by_prompt(name: str) -> dict[str, ReadableSpan]:
    found = spans(name)
    by = {s.attributes["prompt"]: s for s in found}
    assert len(by) == len(found), [s.attributes for s in found]
    return by


def sites_calling(fn, callee: str) -> set[str]:
    """``file:line`` of the lines of ``fn`` that call ``callee(`` (as ``stats()`` names them)."""
    lines, first = inspect.getsourcelines(fn)
    name = fn.__code__.co_filename.rsplit("/", 1)[-1]
    return {f"{name}:{first + i}" for i, line in enumerate(lines) if f"{callee}(" in line}


def replayed(f, *args, sites: set[str]) -> None:
    """Warm ``f`` up until its plan defers exactly ``sites``: a trial on a loaded machine
    can see a fast call (``enter``, a span) stall and defer it, or a slow one as fast."""
    for _ in range(5):
        warm(f, *args)
        sigs = f.stats().signatures  # none if warm gave up on an unlucky trial
        if [(s.status, set(s.deferred_sites)) for s in sigs] == [("optimized", sites)]:
            return
        f.__xcs__.entries.clear()
    pytest.fail(f"never deferred exactly {sorted(sites)}:\n{f.explain()}")


def through_gate(f, *args, parties: int = N, call=None):
    """One more call of ``f`` (through ``call``, a wrapper of it), a replay whose slow
    calls must all run at once."""
    before = replays(f)
    gate.open(parties)
    gate.helpers_trace = True
    try:
        got = (call or f)(*args)
    finally:
        gate.barrier = None
    assert replays(f) == before + 1, f.explain()
    return got


PROMPTS = [f"p{i}" for i in range(N)]


# -- deferred calls -------------------------------------------------------------------------


def fan_out(prompts):
    return [llm(p) for p in prompts]


def opens_its_own_span(prompts):
    outer = enter("outer")
    out = [llm(p) for p in prompts]
    leave(outer)
    return out


@pytest.fixture(params=["pool", "forwarding", "own-threads"])
def executor(request):
    """The shared thread pool, a wrapper forwarding to a pool, an executor of its own."""
    if request.param == "pool":
        yield None
        return
    pool = Forwarding(N) if request.param == "forwarding" else OwnThreads(N)
    yield pool
    pool.shutdown(wait=True)


@pytest.mark.parametrize("opened", ["with-around-the-call", "decorator-above-jit", "in-the-body"])
def test_the_spans_of_deferred_calls_are_children_of_the_span_current_at_the_call(
        opened, executor):
    body = opens_its_own_span if opened == "in-the-body" else fan_out
    f = jit(body, executor=executor)
    replayed(f, PROMPTS, sites=sites_calling(body, "llm"))
    exporter.clear()
    if opened == "with-around-the-call":
        with tracer.start_as_current_span("outer"):
            got = through_gate(f, PROMPTS)
    elif opened == "decorator-above-jit":
        got = through_gate(f, PROMPTS, call=tracer.start_as_current_span("outer")(f))
    else:
        with tracer.start_as_current_span("caller") as caller:
            got = through_gate(f, PROMPTS)
        assert parent(one("outer")) == caller.get_span_context().span_id
    assert got == PROMPTS
    outer = one("outer")
    calls = by_prompt("llm")
    assert sorted(calls) == PROMPTS
    for span in calls.values():
        assert parent(span) == outer.context.span_id
        assert span.context.trace_id == outer.context.trace_id


def under_two_spans(prompts):
    """The calls of ``a`` are still running when those of ``b`` are made."""
    a = enter("a")
    first = [llm("a" + p) for p in prompts]
    in_a = current()
    leave(a)
    b = enter("b")
    second = [llm("b" + p) for p in prompts]
    in_b = current()
    leave(b)
    return first + second, [in_a, in_b, current()]


def test_calls_under_different_spans_of_one_body_each_get_their_span_and_leave_the_body_alone():
    f = jit(under_two_spans)
    prompts = PROMPTS[:2]
    replayed(f, prompts, sites=sites_calling(under_two_spans, "llm"))
    exporter.clear()
    with tracer.start_as_current_span("caller") as caller:
        got, seen = through_gate(f, prompts, parties=2 * len(prompts))  # all four at once
        assert current() == caller.get_span_context().span_id
    assert got == ["a" + p for p in prompts] + ["b" + p for p in prompts]
    a, b = one("a"), one("b")
    # In the body the current span was its own while calls it had made ran in workers
    # under their "llm" spans, and is the caller's again once it left "b".
    assert seen == [a.context.span_id, b.context.span_id, caller.get_span_context().span_id]
    for prompt, span in by_prompt("llm").items():
        expected = a if prompt.startswith("a") else b
        assert parent(span) == expected.context.span_id, prompt
        assert span.context.trace_id == caller.get_span_context().trace_id


def stage_of(group):
    return [llm(p) for p in group]


stage = tracer.start_as_current_span("stage")(jit(stage_of))  # a span per call of the stage


def pipeline(groups):
    return [stage(g) for g in groups]


def test_a_jitted_stage_deferred_by_a_jitted_pipeline_nests_its_spans():
    """The pipeline defers the stage calls; in a worker each opens its "stage" span and
    replays, deferring its own calls: all four run at once, under their stage's span."""
    f = jit(pipeline)
    groups = [PROMPTS[:2], PROMPTS[2:]]
    inner = stage.__wrapped__
    replayed(inner, groups[0], sites=sites_calling(stage_of, "llm"))
    replayed(f, groups, sites=sites_calling(pipeline, "stage"))
    before = replays(inner)
    exporter.clear()
    with tracer.start_as_current_span("request") as request:
        got = through_gate(f, groups)
    assert replays(inner) == before + 2  # each stage call replayed, in a worker
    assert got == groups
    stages = spans("stage")
    assert len(stages) == 2
    for span in stages:
        assert parent(span) == request.get_span_context().span_id
    calls = by_prompt("llm")
    for group in groups:
        parents = {parent(calls[p]) for p in group}
        assert len(parents) == 1 and parents <= {s.context.span_id for s in stages}, parents
    assert parent(calls[groups[0][0]]) != parent(calls[groups[1][0]])
    assert {s.context.trace_id for s in exporter.get_finished_spans()} == {
        request.get_span_context().trace_id}


# -- work on results: continuations, accesses, lazy operators -------------------------------


def helper(prompts):
    out = []
    for p in prompts:
        r = create(p)
        item = enter("item " + p)  # the span current where the body works on the result
        out.append(summarize(r))
        leave(item)
    return out


def attribute(prompts):
    out = []
    for p in prompts:
        r = create(p)
        item = enter("item " + p)
        out.append(r.text)
        leave(item)
    return out


def subscript(prompts):
    out = []
    for p in prompts:
        r = create(p)
        item = enter("item " + p)
        out.append(r[0])
        leave(item)
    return out


def unpacking(prompts):
    out = []
    for p in prompts:
        r = create(p)
        item = enter("item " + p)
        _text, n = r
        out.append(n)
        leave(item)
    return out


@pytest.mark.parametrize("body", [helper, attribute, subscript, unpacking],
                         ids=lambda f: f.__name__)
def test_work_on_a_result_runs_under_the_span_current_where_the_body_wrote_it(body):
    """A fast helper on a result (a continuation) or an access whose user code opens a
    span (a property, ``__getitem__``, ``__iter__`` for unpacking) runs when the result
    arrives, in the worker that finished it, under the span current at its own line."""
    f = jit(body)
    expected = body(PROMPTS)
    replayed(f, PROMPTS, sites=sites_calling(body, "create"))
    exporter.clear()
    with tracer.start_as_current_span("caller") as caller:
        got = through_gate(f, PROMPTS)
    assert got == expected
    calls, work = by_prompt("llm"), by_prompt("work")
    assert sorted(calls) == sorted(work) == PROMPTS
    items = {p: one("item " + p) for p in PROMPTS}
    for p in PROMPTS:
        assert parent(calls[p]) == caller.get_span_context().span_id
        assert parent(work[p]) == items[p].context.span_id, p
        assert work[p].context.trace_id == caller.get_span_context().trace_id


def exclaim(prompts):
    out = []
    for p in prompts:
        r = llm(p)
        item = enter("item " + p)
        out.append(r + "!")  # lazy: computed when the result arrives, or when needed
        leave(item)
    return out


def test_a_user_types_operator_on_a_result_runs_under_the_span_of_its_line():
    """The trial saw ``str`` results, so ``r + "!"`` is a lazy operator; this replay's
    results are a user type, whose ``__add__`` the body runs when it needs the value
    (at the ``return``, when "item" spans are no longer current)."""
    f = jit(exclaim)
    replayed(f, PROMPTS, sites=sites_calling(exclaim, "llm"))
    exporter.clear()
    gate.loud = True
    with tracer.start_as_current_span("caller"):
        got = through_gate(f, PROMPTS)
    assert got == [p + "!" for p in PROMPTS] and all(type(r) is Loud for r in got)
    work = by_prompt("work")
    assert sorted(work) == PROMPTS
    for p in PROMPTS:
        assert parent(work[p]) == one("item " + p).context.span_id, p


# -- process pools ----------------------------------------------------------------------------


def counted(met):
    """A fast helper on a result that opens a span (in this process)."""
    if not gate.helpers_trace:
        return met[0]
    with tracer.start_as_current_span("work", attributes={"prompt": str(met[0])}):
        return met[0]


def primes_in_processes(limits, directory, parties):
    return [counted(cpu_work.count_primes_met(n, directory, parties)) for n in limits]


@pytest.fixture
def spawn_pool():
    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))
    list(pool.map(cpu_work.slow_square, [1, 2], [0.2, 0.2]))  # both workers started
    yield pool
    pool.shutdown(wait=True)


@pytest.mark.slow
def test_with_a_process_pool_the_work_on_results_in_this_process_has_the_callers_span(
        spawn_pool, tmp_path):
    """The call itself runs in another process, without the caller's context (it is not
    sent along); the helper on its result runs here, under the caller's span."""
    f = jit(primes_in_processes, executor=spawn_pool)
    limits = [20_000 + k for k in range(4)]
    trial, final = tmp_path / "trial", tmp_path / "final"
    trial.mkdir()
    final.mkdir()
    replayed(f, limits, str(trial), 1, sites=sites_calling(primes_in_processes, "count_primes_met"))
    exporter.clear()
    before = replays(f)
    gate.helpers_trace = True
    with tracer.start_as_current_span("caller") as caller:
        # each call waits until calls in both processes have started (TimeoutError if not)
        got = f(limits, str(final), 2)
    assert replays(f) == before + 1, f.explain()
    assert got == [cpu_work.count_primes(n) for n in limits]
    work = spans("work")
    assert len(work) == len(limits)
    for span in work:
        assert parent(span) == caller.get_span_context().span_id
