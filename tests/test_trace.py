"""Trace stage: calls, durations and identity dependencies of one trial."""

from __future__ import annotations

import time

from xcs._trace import MUTE_AFTER, Recorder


def probe(rec, site, fn, *args):
    """Play a site hook: Recorder.before looks two frames up for the calling code."""
    rec.before(site, fn, args)


def hook(rec, site, fn, *args):
    probe(rec, site, fn, *args)
    result = fn(*args)
    rec.after(site, result)
    return result


def test_string_and_int_results_are_tracked_as_dependencies():
    """A str or int returned by one call and passed to another is an edge."""
    rec = Recorder("t.")
    a = hook(rec, 0, lambda: "draft text")
    n = hook(rec, 1, lambda s: len(s) * 1000, a)
    hook(rec, 2, lambda s, k: None, "other", n)
    trace = rec.finish(raised=False)
    assert [c.deps for c in trace.calls] == [(), (0,), (1,)]


def test_results_inside_containers_and_bound_methods_count():
    """Results passed inside lists and dicts, or as ``self`` of a method, are edges."""
    rec = Recorder("t.")
    x = hook(rec, 0, lambda: "x-result")
    y = hook(rec, 1, lambda: ["y", "list"])
    hook(rec, 2, lambda items: None, [x, {"k": y}])
    hook(rec, 3, x.upper)
    trace = rec.finish(raised=False)
    assert trace.calls[2].deps == (0, 1)
    assert trace.calls[3].deps == (0,)


def test_durations_and_cpu_time_are_measured():
    """Wall and CPU time of each call are recorded."""
    rec = Recorder("t.")
    hook(rec, 0, time.sleep, 0.02)
    hook(rec, 1, lambda: sum(range(3_000_000)))  # ~20 ms of CPU (3.15 did 300,000 in 1.8)
    sleep, spin = rec.finish(raised=False).calls
    assert sleep.duration >= 0.018 and sleep.cpu < sleep.duration / 4
    # The spin's wall time depends on how busy the machine is; its CPU time does not.
    assert spin.cpu > 0.002 and spin.cpu > 10 * sleep.cpu


def test_calls_made_inside_a_call_are_nested():
    """A call made while another is running records that call as its parent."""
    rec = Recorder("t.")

    def outer():
        return hook(rec, 1, str, 5)

    hook(rec, 0, outer)
    calls = rec.finish(raised=False).calls
    assert [(c.site, c.parent) for c in calls] == [(0, None), (1, 0)]


def test_a_call_that_raised_is_closed_by_the_next_call_of_its_frame():
    """When a traced call raises and the body goes on, the next call is not nested in it."""
    rec = Recorder("t.")

    def boom():
        raise ValueError

    def body():
        probe(rec, 0, boom)
        try:
            boom()
        except ValueError:
            pass
        probe(rec, 1, str, 1)
        rec.after(1, str(1))

    body()
    calls = rec.finish(raised=False).calls
    assert calls[0].raised and calls[1].parent is None


def test_first_use_is_recorded_once():
    """use() marks the first time the body observed a result."""
    rec = Recorder("t.")
    a = hook(rec, 0, lambda: "value")
    rec.use(a)
    first = rec.events[0].first_use
    rec.use(a)
    assert rec.events[0].first_use == first is not None


def test_tracing_cost_is_linear_in_the_number_of_calls():
    """10x the calls costs about 10x the time (the predecessor was quadratic)."""

    def run(n):
        rec = Recorder("t.")
        start = time.perf_counter()
        value = 0
        for _ in range(n):
            value = hook(rec, 0, abs, value)
        rec.finish(raised=False)
        return time.perf_counter() - start

    run(3000)
    small = min(run(3000) for _ in range(5))
    large = min(run(30000) for _ in range(5))
    assert large < 40 * small  # linear is ~10x; quadratic would be ~100x


def test_a_site_of_many_fast_calls_is_muted_then_recorded_again_when_slow():
    """After 64 fast calls a site is only timed; a slow call brings it back."""
    rec = Recorder("t.")
    for k in range(100):
        hook(rec, 0, abs, -k)
    hook(rec, 0, time.sleep, 0.002)  # timed while muted: slow, so unmuted
    hook(rec, 0, time.sleep, 0.002)  # recorded again
    calls = rec.finish(raised=False).calls
    assert len(calls) == 65
    assert calls[-1].duration >= 0.002


def operator(rec, op, fn, *operands):
    """Play an operator probe: op_before, the operation, op_after."""
    rec.op_before(op, operands)
    result = fn(*operands)
    rec.op_after(op, result)
    return result


def test_an_accumulator_carries_its_sources_to_later_calls():
    """``acc = acc + f(x)`` in a loop: a call taking ``acc`` depends on the recorded
    calls (the latest MAX_SOURCES of them), each of which notes when the operator
    first read it.  Once the site is muted (64 fast calls) the parts carry no new
    source, and each new ``acc`` shares the previous one's set instead of a copy."""
    rec = Recorder("t.")
    acc = ""
    sets = []
    for k in range(100):
        part = hook(rec, 0, lambda k: f"<{k}>", k)
        acc = operator(rec, 7, lambda a, b: a + b, acc, part)
        sets.append(rec.derived[id(acc)])
    hook(rec, 1, len, acc)
    calls = rec.finish(raised=False).calls
    assert len(calls) == 65  # 64 recorded parts, then the muted site, then len
    assert calls[-1].deps == tuple(range(48, 64))  # the latest 16 recorded parts
    assert all(dict(c.op_uses).get(7) is not None for c in calls[:64])
    assert dict(calls[0].op_uses)[7] <= dict(calls[63].op_uses)[7]
    assert all(s is sets[-1] for s in sets[64:]) and sets[63] == sets[-1]


def test_small_ints_and_short_strings_name_no_call():
    """CPython shares small ints and one-character strings among all who make them: a
    call returning ``1`` is not the source of every later ``1``, so an operator that
    only ever sees such values goes quiet (and stops being probed) as for any other."""
    rec = Recorder("")
    for _ in range(3 * MUTE_AFTER):
        rec.before(0, len, ("ab",))
        rec.after(0, 2)  # len("ab"): the shared int 2
        rec.op_before(0, (2, "a"))
        rec.op_after(0, 4)
    assert rec.op_quiet[0] >= MUTE_AFTER
    assert rec.finish(False).calls[0].site == 0
