"""Rewrite stage: call sites are found and rewritten without changing what code does."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import types
from pathlib import Path

import pytest

from xcs._rewrite import Program, RewriteError, Variant

GOLDEN = Path(__file__).parent / "golden"
VERSION = "py{}{}".format(*sys.version_info[:2])


def sample(llm, docs, opts):
    notes = [llm(d) for d in docs]
    out = []
    for d in docs:
        out.append(llm.ask(d, mode="x"))
    star = llm(*docs, **opts)
    star = f"[{star}]" + llm("tag")
    try:
        safe = llm("guarded")
    except ValueError:
        safe = None
    with opts.get("lock") or open(os.devnull) as handle:
        handle.name.upper()
    docs += notes  # the caller's list, when docs is one: a guard waits first
    return llm("judge", notes, out), star, safe


def _compare_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}-{VERSION}.txt"
    if os.environ.get("XCS_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text + "\n")
    assert path.exists(), f"no golden file {path.name}; run with XCS_UPDATE_GOLDEN=1 to create it"
    assert text + "\n" == path.read_text()


@pytest.mark.parametrize("mode", ["trace", "replay"])
def test_rewritten_call_sites_match_golden_listing(mode):
    """The trace and replay bodies of a sample function, per CPython version."""
    program = Program.from_function(sample)
    deferred = frozenset(s.id for s in program.sites if s.deferrable)
    lazy = frozenset(o.id for o in program.op_sites)
    _compare_golden(f"rewrite-{mode}", program.as_text(Variant(mode, deferred, lazy)))


def test_sites_know_where_they_are_and_what_may_be_deferred():
    """Each call site records its line and why it may not be deferred."""
    program = Program.from_function(sample)
    first = sample.__code__.co_firstlineno
    by_line: dict[int, list] = {}
    for site in program.sites:
        by_line.setdefault(site.line - first, []).append(site)
    assert [s.deferrable for s in by_line[1]] == [True]  # llm(d) in the comprehension
    assert sorted((s.append, s.deferrable) for s in by_line[4]) == [(False, True), (True, False)]
    # ``try: safe = llm(...) except ValueError: safe = None`` only gives a value: the
    # trace and replay bodies call it as one helper (_outline), which may be deferred
    assert [(s.protected, s.deferrable) for s in by_line[8]] == [(False, True)]
    assert all(s.protected for s in by_line[12])  # inside with
    assert any(s.in_place is False and s.deferrable for s in by_line[14])


def test_super_and_frame_builtins_are_never_deferred():
    """super(), locals(), print() and friends must run in the body's own frame."""

    class Base:
        def go(self):
            return "base"

    class Child(Base):
        def go(self):
            print(locals())
            return super().go()

    program = Program.from_function(Child.go)
    first = Child.go.__code__.co_firstlineno
    in_place = [s for s in program.sites if s.in_place]
    # print() and locals() on the first line; super() is a call only on 3.11
    # (3.12+ compile super().go to LOAD_SUPER_ATTR).
    assert [s.line - first for s in in_place][:2] == [1, 1]
    assert len(in_place) == (3 if sys.version_info < (3, 12) else 2)
    assert not any(s.deferrable for s in in_place)


def _run_all_modes(fn, *args):
    """Call fn's combined code once in each body: plain, trace, and replay (every deferrable
    site deferred, every operator site lazy).

    The code calls the ``dispatch`` it was built with (a partial of ``state.dispatch`` made
    by ``_build``), so the forcing dispatch is installed first and the code rebuilt.
    Returns each body's outcome and what each call saw: the body its dispatch chose, the
    calls the trace recorded, the calls the replay deferred.
    """
    from xcs._executors import default_executor
    from xcs._function import Function
    from xcs._introspect import Entry
    from xcs._replay import Invocation
    from xcs._trace import Recorder

    state = Function(fn, None)
    program = state.program
    assert program is not None
    replay = Variant("replay", frozenset(s.id for s in program.sites if s.deferrable),
                     frozenset(o.id for o in program.op_sites))
    state._install(replay)
    trace = state.variants[0]  # the first body: a trace that may defer (see test_first_call)
    assert trace.mode == "first"
    seen = {"chosen": [], "recorded": [], "deferred": []}
    forced = []

    def dispatch(layout, params):
        body = forced[-1]
        seen["chosen"].append(body)
        if body == "plain":
            return 0
        prev = state.tls.cur
        if body == "trace":
            rec = Recorder("x.")
            rec.context = (Entry("x"), prev)
            state.tls.cur = rec
            return layout.index[trace]

        def on_exit(inv, raised):
            seen["deferred"].append(sum(not t.inline for t in inv.tasks))
            state.tls.cur = prev

        state.tls.cur = Invocation(default_executor(), on_exit)
        return layout.index[replay]

    def end_trial(rec, raised):
        _, prev = rec.context
        state.tls.cur = prev
        seen["recorded"].append(len(rec.finish(raised).calls))

    state.dispatch = dispatch  # an instance attribute: the next _build binds it
    state.end_trial = end_trial  # looked up by the hooks at each call
    state.jitted.__code__ = state._build()
    results = []
    for body in ("plain", "trace", "replay"):
        forced.append(body)
        try:
            results.append(("ok", state.jitted(*args)))
        except Exception as exc:
            results.append(("raised", type(exc), str(exc)))
        assert state.tls.cur is None, body
    return results, seen


SHAPES = {
    "keywords": (lambda f: [f(1, b=2), f(*[1], **{"b": 3})], (lambda a, b=0: a + b,)),
    "methods": (lambda s: [s.upper(), s.split("-"), "-".join(s.split("-"))], ("a-b",)),
    "closures": (lambda x: (lambda y: [str(y), str(x)])(x * 2), (3,)),
    "dicts": (lambda xs: {k: str(k) for k in xs} | {"n": len(xs)}, ([1, 2],)),
    "tuples": (lambda xs: tuple(str(x) for x in xs) + (str(len(xs)),), ([1, 2],)),  # noqa: RUF005
    "unpack": (lambda xs: [a + b for a, b in [divmod(x, 3) for x in xs]], ([7, 8],)),
    "fstrings": (lambda x: f"{str(x)!r:>5}|{x!r}", (4,)),
    "exceptions": (lambda x: int(x), ("nope",)),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_body_computes_what_the_plain_function_computes(name):
    """Plain, trace and replay bodies agree on varied code shapes."""
    fn, args = SHAPES[name]
    results, seen = _run_all_modes(fn, *args)
    assert seen["chosen"] == ["plain", "trace", "replay"], seen
    assert len(seen["recorded"]) == 1 and seen["recorded"][0] >= 1, seen  # the trace recorded
    assert len(seen["deferred"]) == 1 and seen["deferred"][0] >= 1, seen  # the replay deferred
    assert results[0] == results[1] == results[2], results


STDLIB = ["json.decoder", "json.encoder", "textwrap", "difflib", "argparse", "fractions",
          "statistics", "csv", "shlex", "ipaddress", "calendar", "configparser", "pprint",
          "string", "email.message", "email._header_value_parser", "pathlib", "tarfile",
          "zipfile", "inspect", "dataclasses", "enum", "typing", "asyncio.tasks", "ast",
          "logging", "urllib.parse", "http.client", "tokenize", "traceback"]


def _stdlib_functions():
    for name in STDLIB:
        module = importlib.import_module(name)
        for value in vars(module).values():
            owners = [value] if isinstance(value, type) else []
            candidates = [value] + [v for o in owners for v in vars(o).values()]
            for fn in candidates:
                if isinstance(fn, (staticmethod, classmethod)):
                    fn = fn.__func__
                if (isinstance(fn, types.FunctionType) and fn.__module__ == module.__name__
                        and not (inspect.isgeneratorfunction(fn) or inspect.iscoroutinefunction(fn)
                                 or inspect.isasyncgenfunction(fn))):
                    yield fn


def test_stdlib_functions_rewrite_into_valid_code():
    """Every function of 30 stdlib modules yields trace and replay bodies that assemble."""
    from xcs._listing import NamedHooks

    count = 0
    failures = []
    for fn in _stdlib_functions():
        try:
            program = Program.from_function(fn)
            deferred = frozenset(s.id for s in program.sites if s.deferrable)
            program.combine([Variant("trace"), Variant("replay", deferred)],
                            lambda params: 0, NamedHooks())
        except RewriteError as exc:
            failures.append(f"{fn.__module__}.{fn.__qualname__}: {exc}")
        count += 1
    assert count > 1500
    assert failures == []
