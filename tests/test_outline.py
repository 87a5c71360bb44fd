"""A ``try`` per item that only computes a value runs as one deferred call.

``try: v = json.loads(llm(d)) except ValueError: v = None`` and
``try: out.append(llm(d)) except ValueError: out.append(None)`` are outlined (see
xcs/_outline.py): the calls of a loop of them overlap (a ``Barrier`` opens only when
all eight run at once), the handler runs on the very exception object the callee
raised, an exception the handler does not catch is raised as plain raises it, and a
``try`` that does more keeps its protection, with the reason in ``explain()``.
"""

from __future__ import annotations

import inspect
import json
import queue
import sys
import traceback
import warnings

import pytest

import xcs
from xcs import jit
from xcs._outline import outline
from xcs._rewrite import Program

from .test_continuations import N, gate, through_gate
from .test_contract import outcome, replays, warm

DOCS = [f"d{i}" for i in range(N)]
MIXED = [*DOCS[:5], "bad", "boom", "d7"]  # "bad" is not JSON; "boom" raises KeyError


@pytest.fixture(autouse=True)
def closed_gate():
    gate.close()
    yield
    gate.close()


raised: list[BaseException] = []  # what ``llm`` raised, to compare identities


def llm(d):
    gate.wait(d)
    if d == "boom":
        exc = KeyError(d)
        raised.append(exc)
        raise exc
    return "not json" if d == "bad" else json.dumps({"t": d})


def strict(d):
    gate.wait(d)
    if d == "bad":
        exc = ValueError(f"bad input {d!r}")
        raised.append(exc)
        raise exc
    return d.upper()


def append_form(docs):
    out = []
    for d in docs:
        try:
            out.append(strict(d))
        except ValueError:
            out.append(None)
    return out


def store_form(docs):
    out = []
    for d in docs:
        try:
            v = json.loads(llm(d))
        except json.JSONDecodeError:
            v = None
        out.append(v)
    return out


def continuation_inside(docs):
    out = []
    for d in docs:
        try:
            out.append(json.loads(llm(d))["t"].upper())
        except (ValueError, KeyError) as e:
            out.append(str(e))
    return out


def keeps_the_exception(docs):
    out = []
    for d in docs:
        try:
            v = strict(d)
        except ValueError as e:
            v = e
        out.append(v)
    return out


def retry(d, again=False):
    gate.wait(d)
    if d == "hard" or (d == "bad" and not again):
        exc = ValueError(f"unparsable {d} {again}")
        raised.append(exc)
        raise exc
    return d.upper()


def retries(docs):
    """The classification loop with a retry (the handler makes a call of its own)."""
    out = []
    for d in docs:
        try:
            label = retry(d)
        except ValueError:
            label = retry(d, again=True)
        out.append(label)
    return out


FORMS = [append_form, store_form, continuation_inside, keeps_the_exception, retries]


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.__name__)
def test_the_calls_of_a_try_per_item_overlap(form):
    """Eight calls, each in its own try, run at once in a replay; the result is plain's."""
    f = jit(form)
    assert through_gate(f, DOCS, N) == form(DOCS)
    assert "<try at line" in f.explain()


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.__name__)
def test_the_handler_runs_where_plain_runs_it(form):
    """Items whose call fails get the handler's value, in their place, as in plain."""
    f = jit(form)
    docs = [*DOCS[:5], "bad", "d6", "d7"] if form is not continuation_inside else MIXED
    def shown(values):  # exceptions compare by identity: compare what they say
        return [repr(v) if isinstance(v, BaseException) else v for v in values]

    expected = shown(form(docs))
    for _ in range(3):
        assert shown(f(docs)) == expected
    assert replays(f) >= 1, f.explain()


def test_the_handler_sees_the_very_exception_object():
    """``except ValueError as e: v = e`` stores the object the callee raised."""
    f = jit(keeps_the_exception)
    docs = [*DOCS[:5], "bad", "d6", "d7"]
    f(docs), f(docs)
    raised.clear()
    got = f(docs)
    assert replays(f) >= 1, f.explain()
    assert got[5] is raised[-1] and isinstance(got[5], ValueError)


def test_an_exception_the_handler_does_not_catch_is_raised_as_in_plain():
    """``boom`` raises KeyError, which ``except json.JSONDecodeError`` does not catch: the
    jitted function raises that very object, with plain's frames of the body."""
    f = jit(store_form)
    warm(f, DOCS)
    before = replays(f)
    raised.clear()
    plain = outcome(store_form, MIXED)
    jitted = outcome(f, MIXED)
    assert replays(f) == before + 1, f.explain()
    assert isinstance(plain[1], KeyError) and jitted[1] is raised[-1]
    assert raised[0] is not raised[-1]

    def frames(exc):
        return [(t.name, t.lineno) for t in traceback.extract_tb(exc.__traceback__)
                if t.filename == __file__]

    assert frames(jitted[1]) == frames(plain[1])


def test_the_trial_raises_as_plain_does():
    """The first call runs the helper in the body's thread: same exception, same frames."""
    raised.clear()
    plain = outcome(store_form, ["d0", "boom"])
    f = jit(store_form)
    jitted = outcome(f, ["d0", "boom"])
    assert jitted[1] is raised[-1] and type(plain[1]) is KeyError
    assert "store_form.<try at line" in f.explain()  # the trial called the helper

    def frames(exc):
        return [(t.name, t.lineno) for t in traceback.extract_tb(exc.__traceback__)]

    assert frames(jitted[1])[1:] == frames(plain[1])[1:]  # from this module's caller down


seen: list[tuple[str, int]] = []


def where(d):
    frame = sys._getframe(1)
    seen.append((frame.f_code.co_name, frame.f_lineno))
    return strict(d)


def caller(docs):
    out = []
    for d in docs:
        try:
            out.append(where(d))
        except ValueError:
            out.append(None)
    return out


def test_callees_see_the_function_calling_them():
    """The frame above a callee of the try is named like the function, at its line."""
    f = jit(caller)
    for _ in range(3):
        f(DOCS)
    assert replays(f) >= 1, f.explain()
    seen.clear()
    f(DOCS)
    line = caller.__code__.co_firstlineno + 4
    assert set(seen) == {("caller", line)}


def test_verify_accepts_an_outlined_try():
    """verify counts the calls made inside the outlined try as the function's own."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", xcs.XcsWarning)  # "no replay ran" would fail it
        assert xcs.verify(append_form, [*DOCS[:5], "bad", "d6", "d7"]) is None


# -- what is not outlined, and why -----------------------------------------------------------


def prints_in_handler(docs):
    out = []
    for d in docs:
        try:
            v = strict(d)
        except ValueError:
            print("bad", d)
            v = None
        out.append(v)
    return out


def maybe_unbound(docs, flag):
    out = []
    if flag:
        prefix = "p"
    for d in docs:
        try:
            v = strict(prefix + d)
        except ValueError:
            v = None
        out.append(v)
    return out


def with_finally(docs):
    out = []
    for d in docs:
        try:
            v = strict(d)
        except ValueError:
            v = None
        finally:
            out.append(d)
        out.append(v)
    return out


def bare_except(docs):
    out = []
    for d in docs:
        try:
            v = strict(d)
        except:  # noqa: E722
            v = None
        out.append(v)
    return out


def not_our_list(docs, out):
    for d in docs:
        try:
            out.append(strict(d))
        except ValueError:
            out.append(None)
    return out


def scoped_handler(docs):
    out = []
    for d in docs:
        try:
            v = strict(d)
        except ValueError:
            v = [strict(x) for x in (d, d)]
        out.append(v)
    return out


@pytest.mark.parametrize(("fn", "why"), [
    (prints_in_handler, "does more than give a value"),
    (maybe_unbound, "'prefix' may be unbound at the try"),
    (with_finally, "else or finally"),
    (bare_except, "bare 'except:'"),
    (not_our_list, "'out' is not a list the function builds"),
    (scoped_handler, "has a ListComp"),
], ids=lambda x: getattr(x, "__name__", ""))
def test_a_try_that_does_more_stays_as_written_and_says_why(fn, why):
    """Its calls stay protected (never deferred); explain names the try and the reason."""
    lines, first = inspect.getsourcelines(fn)
    line = first + next(i for i, text in enumerate(lines) if text.strip() == "try:")
    outlined = outline(fn)
    assert outlined.code is None and not outlined.outlines
    (note,) = outlined.notes
    assert why in note and f"the try at line {line} " in note, note
    calls = [s for s in Program.from_function(fn).sites if s.line == line + 1]
    assert calls and all(s.protected for s in calls)
    assert why in jit(fn).explain()


def test_a_function_without_source_keeps_its_try():
    """No source (exec'd code): nothing is outlined, and the function works as written."""
    namespace = {"strict": strict}
    exec("def f(docs):\n    out = []\n    for d in docs:\n        try:\n"
         "            out.append(strict(d))\n        except ValueError:\n"
         "            out.append(None)\n    return out\n", namespace)
    assert outline(namespace["f"]).code is None
    f = jit(namespace["f"])
    assert [f(["a", "bad"]) for _ in range(3)] == [["A", None]] * 3


def test_a_source_that_does_not_match_the_code_is_not_used():
    """A function whose file changed after it was compiled keeps its try as written."""
    import linecache

    source = ("def edited(docs):\n    out = []\n    for d in docs:\n        try:\n"
              "            out.append(strict(d))\n        except ValueError:\n"
              "            out.append(None); note(d)\n    return out\n")
    namespace = {"strict": strict, "note": print}
    exec(compile(source, "<edited-source>", "exec"), namespace)
    # The handler lost a statement in the file: the try, its types and its value still
    # match, only the whole function's code tells the difference.
    changed = source.replace("; note(d)", "")
    linecache.cache["<edited-source>"] = (len(changed), None, changed.splitlines(True),
                                          "<edited-source>")
    try:
        outlined = outline(namespace["edited"])
    finally:
        del linecache.cache["<edited-source>"]
    assert outlined.code is None
    assert "does not match" in outlined.notes[0]


def _body_frames(exc):
    return [(t.name, t.lineno) for t in traceback.extract_tb(exc.__traceback__)
            if t.filename == __file__]


def test_a_handler_that_raises_shows_its_own_line():
    """When the retry in the except clause fails too, the function raises that error,
    chained to the first as in plain, and its frame is at the except clause's line, on
    the trial and on a replay."""
    f = jit(retries)
    for _ in range(3):
        f(DOCS)
    assert replays(f) >= 1, f.explain()
    for attempt in ("replay", "trial"):
        if attempt == "trial":
            f = jit(retries)
        raised.clear()
        plain = outcome(retries, [*DOCS[:4], "hard", *DOCS[4:]])
        first_plain = raised[-2]
        jitted = outcome(f, [*DOCS[:4], "hard", *DOCS[4:]])
        assert jitted[1] is raised[-1] and jitted[1].__context__ is raised[-2]
        assert repr(plain[1]) == repr(jitted[1]) and plain[1].__context__ is first_plain
        assert _body_frames(jitted[1]) == _body_frames(plain[1]), attempt
        line = retries.__code__.co_firstlineno + 7  # label = retry(d, again=True)
        assert ("retries", line) in _body_frames(jitted[1])


# -- found by an adversarial run: each of these failed before its fix ---------------------


def reuses_its_name(docs):
    e = "before"
    out = []
    for d in docs:
        try:
            v = strict(d)
        except ValueError as e:
            v = str(e)
        out.append(v)
    return out, e  # plain: UnboundLocalError once a handler ran (it unbinds e)


def test_an_except_name_used_elsewhere_keeps_the_try():
    """Plain unbinds the ``as`` name after the handler: a function that reads it
    elsewhere keeps its try, and raises as plain does."""
    assert "binds 'e', which the function uses elsewhere" in outline(reuses_its_name).notes[0]
    f = jit(reuses_its_name)
    docs = [*DOCS[:5], "bad", "d6", "d7"]
    for _ in range(3):
        plain, jitted = outcome(reuses_its_name, docs), outcome(f, docs)
        assert type(plain[1]) is type(jitted[1]) is UnboundLocalError


def make_reader():
    last = None

    def tick(d):
        nonlocal last
        last = d
        return strict(d)

    def reader(docs):
        out = []
        for d in docs:
            try:
                v = tick(d)
            except ValueError:
                v = last  # tick set it just before failing
            out.append(v)
        return out

    return reader


def test_a_variable_shared_with_another_function_keeps_the_try():
    reader = make_reader()
    assert "a variable shared with another function" in outline(reader).notes[0]
    f, docs = jit(reader), [*DOCS[:5], "bad", "d6", "d7"]
    assert [f(docs) for _ in range(3)] == [reader(docs)] * 3


PREFIX = "p0"


def set_prefix(d):
    global PREFIX
    PREFIX = "p-" + d


def reads_a_global(docs):
    out = []
    for d in docs:
        try:
            v = strict(d + PREFIX)  # plain reads PREFIX here, before set_prefix(d)
        except ValueError:
            v = None
        out.append(v)
        set_prefix(d)
    return out


def test_globals_are_read_where_plain_reads_them():
    """A global the statement reads is loaded by the body at the try, not by the
    helper when it runs: a fast helper that rebinds it later does not change the call."""
    global PREFIX
    f = jit(reads_a_global)
    for _ in range(4):
        PREFIX = "p0"
        plain = reads_a_global(DOCS)
        PREFIX = "p0"
        assert f(DOCS) == plain
    assert replays(f) >= 1 and "<try at line" in f.explain(), f.explain()


def catches_interrupts(docs):
    out = []
    for d in docs:
        try:
            v = strict(d)
        except (ValueError, KeyboardInterrupt):
            v = None
        out.append(v)
    return out


def test_a_handler_of_keyboard_interrupt_keeps_the_try():
    """Ctrl-C reaches only the body's thread: that handler must stay in the body."""
    assert "KeyboardInterrupt" in outline(catches_interrupts).notes[0]


def reraise_later(docs):
    out = []
    for d in docs:
        try:
            v = strict(d)
        except ValueError as e:
            v = e
        out.append(v)
    for v in out:
        if isinstance(v, BaseException):
            raise v
    return out


def test_an_exception_kept_and_raised_later_has_plain_frames():
    """``except E as e: v = e`` then ``raise v``: the frame of the raise, then the
    function's at the try, then the callee's, as in plain."""
    f = jit(reraise_later)
    f(DOCS), f(DOCS)
    docs = [*DOCS[:5], "bad", "d6", "d7"]
    for _ in range(2):  # a replay, then a trial of a fresh function
        plain, jitted = outcome(reraise_later, docs), outcome(f, docs)
        assert _body_frames(jitted[1]) == _body_frames(plain[1]) and len(
            _body_frames(plain[1])) == 3
        f = jit(reraise_later)


emit = print  # an alias: only the trial can tell it is print


def prints_through_an_alias(docs):
    out = []
    for d in docs:
        try:
            v = (emit("in", d), strict(d))
        except ValueError:
            v = None
        out.append(v)
        print("after", d)
    return out


def test_a_try_that_calls_print_by_another_name_is_not_deferred(capsys):
    """The trial looks up what the helper calls directly: print stays in the body."""
    f = jit(prints_through_an_alias)
    for _ in range(3):
        f(DOCS[:4])
    capsys.readouterr()
    f(DOCS[:4])
    jitted = capsys.readouterr().out
    prints_through_an_alias(DOCS[:4])
    assert jitted == capsys.readouterr().out
    assert "its try calls emit: the callee depends on its caller" in f.explain()


def test_constants_that_changed_in_the_file_are_noticed():
    """``("x", 1)`` edited to ``("y", 2)``, or ``1`` to ``1.0``: the source is not the code."""
    import linecache

    for k, (old, new) in enumerate((('("x", 1)', '("y", 2)'), ("1", "1.0"))):
        source = ("def stale(docs):\n    out = []\n    for d in docs:\n        try:\n"
                  f"            out.append(strict(d + str({old})))\n"
                  "        except ValueError:\n            out.append(None)\n    return out\n")
        name = f"<stale-{k}>"
        namespace = {"strict": strict}
        exec(compile(source, name, "exec"), namespace)
        changed = source.replace(old, new)
        linecache.cache[name] = (len(changed), None, changed.splitlines(True), name)
        try:
            outlined = outline(namespace["stale"])
            linecache.cache[name] = (len(source), None, source.splitlines(True), name)
            assert outline(namespace["stale"]).outlines  # the file as it was: outlined
        finally:
            del linecache.cache[name]
        assert outlined.code is None and "does not match" in outlined.notes[0], outlined


def inside_a_with(docs, cm):
    out = []
    with cm:
        for d in docs:
            try:
                v = strict(d)
            except ValueError:
                v = None
            out.append(v)
    return out


def test_a_try_inside_a_with_keeps_its_protection_and_says_so():
    assert outline(inside_a_with).notes == (
        f"the try at line {inside_a_with.__code__.co_firstlineno + 4} runs as written: "
        "it is inside another try or a with",)


def test_a_failure_of_the_outlining_leaves_the_rest_of_the_function_optimized(monkeypatch):
    """Outlining is an extra: if it fails, the try runs as written (with the reason) and
    the function's other calls are still deferred."""
    from xcs import _outline

    def broken(*args):
        raise LookupError("simulated")

    monkeypatch.setattr(_outline, "shape", broken)

    def both(docs):
        first = [strict(d) for d in docs]
        out = []
        for d in docs:
            try:
                out.append(strict(d))
            except ValueError:
                out.append(None)
        return first, out

    f = jit(both)
    for _ in range(3):
        assert f(DOCS) == both(DOCS)
    assert replays(f) >= 1, f.explain()
    assert "its try statements run as written: LookupError: simulated" in f.explain()


JOBS: queue.Queue[int] = queue.Queue()


def takes_from_a_queue(docs):
    out = []
    for d in docs:
        try:
            v = (JOBS.get(timeout=0.001), strict(d))
        except queue.Empty:
            v = None
        out.append(v)
    return out


def test_a_try_that_takes_from_a_queue_is_not_deferred():
    """``q.get()`` waits for what the body puts: its try stays in the body's thread."""
    f = jit(takes_from_a_queue)
    for _ in range(3):
        assert f(DOCS[:3]) == [None] * 3
    assert "its try calls JOBS.get: the call blocks or waits" in f.explain()
    assert replays(f) == 0
