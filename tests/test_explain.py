"""Views: explain text and DOT, the trace-event timeline, text lanes and logging."""

from __future__ import annotations

import json
import logging
import re
import time

import pytest

from xcs import XcsError, jit


@pytest.fixture
def answered(model):
    @jit
    def answer(m, q, docs):
        drafts = [m(q, d) for d in docs]
        return m("judge", *drafts)

    answer(model, "q", ["a", "b", "c"])
    answer(model, "q", ["a", "b", "c"])
    return answer


def test_dot_has_one_node_per_call_and_the_data_edges(answered):
    """The DOT view lists the recorded calls, marks the deferred ones and draws the edges."""
    text = answered.explain(format="dot")
    assert text.startswith('digraph "') and text.rstrip().endswith("}")
    nodes = re.findall(r"^\s+(s\d+n\d+) \[label=", text, re.M)
    edges = re.findall(r"^\s+(s\d+n\d+) -> (s\d+n\d+);", text, re.M)
    assert len(nodes) == 4
    assert sorted(edges) == [("s0n0", "s0n3"), ("s0n1", "s0n3"), ("s0n2", "s0n3")]
    # The three drafts were deferred (and the judge, when the trial estimated a few
    # microseconds' gain from it: its result is returned at once, either plan is fine).
    assert text.count('fillcolor="#cfe8ff"') == 3 + (len(answered.stats().signatures[0]
                                                         .deferred_sites) == 2)


def test_timeline_is_trace_event_json_with_a_lane_per_thread(answered, tmp_path):
    """timeline() gives loadable JSON: the replay, its calls on worker lanes, overlapping."""
    path = tmp_path / "timeline.json"
    events = answered.timeline(path)
    assert json.loads(path.read_text()) == events
    lanes = {e["tid"]: e["args"]["name"] for e in events["traceEvents"] if e["ph"] == "M"}
    calls = [e for e in events["traceEvents"] if e["ph"] == "X" and e["args"].get("kind") == "call"]
    # The three drafts; the judge too when the trial happened to estimate a few
    # microseconds' gain from deferring it (its result is returned at once: either is fine).
    drafts = {c["args"]["site"] for c in calls}
    assert len(drafts) <= 2 and len(calls) - 3 == len(drafts) - 1, calls
    calls = [c for c in calls if c["args"]["site"].endswith(
        f":{answered.__wrapped__.__code__.co_firstlineno + 2}")]
    assert len(calls) == 3 and len({c["tid"] for c in calls}) >= 2
    # Every deferred call ran on one of the shared pool's workers, none in the body's thread.
    assert all(lanes[c["tid"]].startswith("xcs") for c in calls), lanes
    first_end = min(c["ts"] + c["dur"] for c in calls)
    assert sum(c["ts"] < first_end for c in calls) >= 2  # at least two ran at once


def test_timeline_before_any_replay_shows_the_trial(model):
    """With only a trial so far, the timeline shows the trial's calls in order."""

    @jit
    def one(m, xs):
        return [m(x) for x in xs]

    one(model, [1, 2])
    events = one.timeline()["traceEvents"]
    assert any("(trial)" in e["name"] for e in events if e["ph"] == "X")


def test_text_lanes_show_overlap(model):
    """The text timeline draws one row per thread: the body's own work, the calls as bars."""

    @jit
    def answer(m, q, docs):
        drafts = [m(q, d) for d in docs]
        # The body's own work, 20 ms while the drafts run.  Without it the body may do
        # nothing but wait (the plan may defer the judge too): a row of "." and no "=".
        end = time.perf_counter() + 0.02
        while time.perf_counter() < end:
            pass
        return m("judge", *drafts)

    answer(model, "q", ["a", "b", "c"])
    answer(model, "q", ["a", "b", "c"])
    assert sum(s.replays for s in answer.stats().signatures) == 1, answer.explain()
    entry = next(iter(answer.__xcs__.entries.values()))
    timeline = entry.last_timeline()
    text = timeline.as_text(width=40)
    body, *workers = text.splitlines()[1:]
    assert body.startswith("body") and "=" in body, text  # the body's own work
    assert workers and all("#" in r and "=" not in r for r in workers), text


def test_unknown_explain_format_is_a_value_error(answered):
    """explain(format=...) accepts text and dot and names anything else."""
    with pytest.raises(ValueError, match="format must be 'text' or 'dot', not 'png'"):
        answered.explain(format="png")
    with pytest.raises(XcsError):
        answered.explain(format="png")


def test_decisions_are_logged_to_the_xcs_logger(model, caplog):
    """The trial and the optimization are logged under 'xcs'; nothing is printed."""
    caplog.set_level(logging.DEBUG, logger="xcs")

    @jit
    def f(m, xs):
        return [m(x) for x in xs]

    f(model, [1, 2, 3])
    messages = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert any(level == "DEBUG" and "trial of" in msg for _, level, msg in messages)
    assert any(level == "INFO" and "optimized" in msg for _, level, msg in messages)
    assert {name for name, _, _ in messages} == {"xcs"}
