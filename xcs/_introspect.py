"""What a jitted function tells about itself: ``stats()``, ``explain()``, ``timeline()``.

It reads the state of each argument signature (``Entry``), which the front
(``_function``) writes under its lock, and draws it with the stages' own ``as_text``
and ``_explain``'s graph and trace-event forms.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xcs import _explain
from xcs._errors import XcsValueError
from xcs._timeline import WAITS_FOR_ALL

if TYPE_CHECKING:
    from xcs._analyze import Plan
    from xcs._function import Function
    from xcs._graph import Graph
    from xcs._rewrite import Variant
    from xcs._timeline import Timeline

__all__ = ["Entry", "SignatureStats", "Stats", "Status", "check_format", "explain", "no_events", "saved",
           "sites_where", "stats", "timeline"]


class Status(enum.StrEnum):
    """Where one argument signature is (``SignatureStats.status`` gives its value)."""

    NEW = "new"  # seen, its trial not started
    TRACING = "tracing"  # its trial runs
    PLAIN = "plain"  # runs as written, for ``Entry.reason``
    OPTIMIZED = "optimized"  # its calls replay ``Entry.plan``


@dataclass(frozen=True)
class SignatureStats:
    """What xcs decided for one argument signature, and what happened since."""

    signature: str
    status: str  # a ``Status``'s value: "new", "tracing", "plain" or "optimized"
    reason: str | None
    calls: int
    trials: int
    replays: int
    deferred_sites: tuple[str, ...]
    estimated_speedup: float | None
    measured_speedup: float | None
    traced: int = 0  # calls that ran plain because a tracer or debugger was active
    first_deferred: int = 0  # calls the first call deferred (of callees known to be slow)
    first_speedup: float | None = None  # the trial's estimate of plain / the first call


@dataclass(frozen=True)
class Stats:
    """``f.stats()``: the signatures a jitted function has seen and their plans."""

    function: str
    reason: str | None  # why the whole function runs plain, if it does
    signatures: tuple[SignatureStats, ...]

    @property
    def cached(self) -> int:
        return len(self.signatures)

    @property
    def optimized(self) -> int:
        return sum(s.status == "optimized" for s in self.signatures)

    def __str__(self) -> str:
        lines = [f"{self.function}: {self.cached} signatures, {self.optimized} optimized"
                 + (f" (runs plain: {self.reason})" if self.reason else "")]
        for s in self.signatures:
            est = f", estimated {s.estimated_speedup:.2f}x" if s.estimated_speedup else ""
            got = f", measured {s.measured_speedup:.2f}x" if s.measured_speedup else ""
            why = f" ({s.reason})" if s.reason else ""
            traced = (f", {s.traced} ran plain under a trace function or sys.monitoring tool"
                      if s.traced else "")
            first = (f", first call deferred {s.first_deferred} ({s.first_speedup:.2f}x)"
                     if s.first_deferred and s.first_speedup else "")
            lines.append(f"  {s.signature}: {s.status}{why}; {s.calls} calls, "
                         f"{s.replays} replayed{est}{got}{first}{traced}")
        return "\n".join(lines)


class Entry:
    """The state of one argument signature."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.status = Status.NEW
        self.reason: str | None = None
        self.calls = 0
        self.trials = 0
        self.replays = 0
        self.traced = 0
        self.replay_time = 0.0
        self.plan: Plan | None = None
        self.graph: Graph | None = None
        self.variant: Variant | None = None
        # Of the last replay: drawn when asked for (``last_timeline``), not per replay.
        self.timeline: Timeline | Callable[[], Timeline] | None = None
        self.trial_started = 0.0
        self.trial_thread = ""
        self.first: Timeline | None = None  # of the first call, when it deferred calls
        self.first_deferred = 0  # calls the first call deferred
        self.first_sites: tuple[int, ...] = ()  # where

    def last_timeline(self) -> Timeline | None:
        """The last replay's timeline, else the trial's."""
        timeline = self.timeline
        if callable(timeline):
            timeline = self.timeline = timeline()
        if timeline is not None:
            return timeline
        if self.graph is not None:
            return _explain.timeline_from_graph(self.graph, self.trial_started, self.trial_thread)
        return None


def sites_where(fn: Function) -> dict[int, str]:
    """Site -> where it is (``file.py:12``), for the texts below."""
    if fn.program is None:
        return {}
    return {s.id: s.where() for s in fn.program.sites}


def stats(fn: Function) -> Stats:
    """The argument signatures seen so far and what was decided for each."""
    where = sites_where(fn)
    sigs = []
    with fn.lock:
        entries = list(fn.entries.values())
    for e in entries:
        plan = e.plan
        measured = None
        if e.replays and plan is not None and plan.optimized and e.status is Status.OPTIMIZED:
            measured = plan.plain_time / (e.replay_time / e.replays)
        sigs.append(SignatureStats(
            e.text, str(e.status), e.reason if e.status is not Status.OPTIMIZED else None, e.calls,
            e.trials, e.replays,
            tuple(where[s] for s in sorted(plan.deferred)) if plan and e.status is Status.OPTIMIZED
            else (),
            plan.speedup if plan is not None else None, measured, e.traced,
            e.first_deferred, _first_speedup(e)))
    return Stats(fn.name, fn.reason, tuple(sigs))


def timeline(fn: Function, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The last replay (else the last trial) as Chrome/Perfetto trace-event JSON.

    Args:
        path: also write the JSON there (open it in ui.perfetto.dev or chrome://tracing).
    """
    with fn.lock:
        timelines = [(t, e) for e in fn.entries.values()
                     if (t := e.last_timeline()) is not None]
    if not timelines:
        return saved(no_events(), path)
    latest, entry = max(timelines, key=lambda te: te[0].started + te[0].duration)
    return saved(_explain.trace_events(latest, fn.name + entry.text, sites_where(fn)), path)


def explain(fn: Function, format: str = "text") -> str:
    """Per signature: the recorded calls, edges, independent sets, critical path and plan.

    Args:
        format: ``"text"`` (default) or ``"dot"`` (a Graphviz digraph of the calls).

    Raises:
        ValueError: for another format.
    """
    check_format(format)
    where = sites_where(fn)
    if format == "dot":
        with fn.lock:
            entries = list(fn.entries.values())
        return _explain.dot(fn.name, [(e.text, e.graph, e.plan) for e in entries], where)
    lines = [str(stats(fn)).splitlines()[0]]
    if fn.program is not None and fn.program.notes:
        lines += [f"  note: {n}" for n in fn.program.notes]
    with fn.lock:
        entries = list(fn.entries.values())
    for e in entries:
        lines.append("")
        lines.append(f"signature {e.text}: {e.status}"
                     + (f" ({e.reason})" if e.reason and e.status is not Status.OPTIMIZED else ""))
        if e.graph is not None:
            lines += ["  " + ln for ln in e.graph.as_text(where).splitlines()]
        if e.plan is not None:
            lines += ["  " + ln for ln in e.plan.as_text(where).splitlines()]
        if e.first_deferred and e.first is not None:
            plain = f" against {e.plan.plain_time * 1e3:.1f} ms plain" if e.plan else ""
            lines.append(
                f"  first call: {e.first.duration * 1e3:.1f} ms{plain}; it deferred "
                f"{e.first_deferred} calls at {', '.join(where[s] for s in e.first_sites)}"
                " (of callees this process had seen slow; the others ran as in a trial)")
        if e.replays and e.plan is not None and e.plan.optimized:
            mean = e.replay_time / e.replays
            lines.append(f"  measured: {e.replays} replays, mean {mean * 1e3:.1f} ms "
                         f"({e.plan.plain_time / mean:.2f}x)")
            lines += _waits(e.last_timeline(), where)
    return "\n".join(lines)


def _first_speedup(entry: Entry) -> float | None:
    """The trial's plain time over the first call's own, when the first call deferred."""
    if not entry.first_deferred or entry.first is None or entry.plan is None:
        return None
    return entry.plan.plain_time / entry.first.duration if entry.first.duration > 0 else None


def check_format(format: str) -> None:
    if format not in ("text", "dot"):
        raise XcsValueError(f"explain() format must be 'text' or 'dot', not {format!r}")


def no_events() -> dict[str, Any]:
    """The trace-event JSON of a function with nothing recorded yet."""
    return {"traceEvents": [], "displayTimeUnit": "ms"}


def saved(events: dict[str, Any], path: str | os.PathLike[str] | None) -> dict[str, Any]:
    if path is not None:
        with open(path, "w") as f:
            json.dump(events, f)
    return events


def _waits(timeline: Timeline | None, where: dict[int, str], most: int = 8) -> list[str]:
    """Where the last replay's body waited, longest total first, and why."""
    if timeline is None:
        return []
    total: dict[tuple[str, str, int], list[float]] = {}
    for span in timeline.spans:
        if span.kind == "wait":
            total.setdefault((span.why, span.name, span.site), []).append(span.end - span.start)
    if not total:
        return []
    lines = ["  waits in the last replay:"]
    ranked = sorted(total.items(), key=lambda item: -sum(item[1]))
    for (why, name, site), times in ranked[:most]:
        at = where.get(site, f"site {site}")
        if WAITS_FOR_ALL in why:
            lines.append(f"    {why}: waited {len(times)}x, {sum(times) * 1e3:.1f} ms"
                         f" (the last, for {name}() at {at})")
            continue
        lines.append(f"    {why or 'the body'} needs the result of {name}() at "
                     f"{at}: waited {len(times)}x, {sum(times) * 1e3:.1f} ms")
    return lines
