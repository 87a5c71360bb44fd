"""What ran where and when in one call of a jitted function (``Timeline``), and
why the body waited (``Why``: described only when a timeline is drawn)."""

from __future__ import annotations

import linecache
import sys
from dataclasses import dataclass
from types import CodeType
from typing import Any, NamedTuple

from xcs._frames import HERE
from xcs._tasks import DONE, FAILED, Task, line_at
from xcs._uses import described_use


class Span(NamedTuple):
    """A stretch of time on one thread: a call, or the body waiting for one."""

    kind: str  # "call" (deferred call), "wait" (the body blocked on a result) or "body"
    name: str
    site: int
    start: float  # seconds since the invocation began
    end: float
    thread: str  # thread name ("executor" when the executor does not say)
    why: str = ""  # of a wait: where the body needed the result (``line 42: a branch ...``)


@dataclass(frozen=True, slots=True)
class Timeline:
    """What ran where and when during one call of a jitted function."""

    kind: str  # "replay" or "trial"
    started: float  # time.time() when the call began
    duration: float
    spans: tuple[Span, ...]

    def as_text(self, width: int = 60) -> str:
        """Lanes of bars, one per thread, for a terminal: what overlapped with what.

        ``#`` a deferred call on a worker; on the body's lane ``=`` the body running
        (its own code and the calls it makes itself) and ``.`` the body waiting.
        """
        total = max(self.duration, max((s.end for s in self.spans), default=0.0), 1e-9)
        body_end = min(width, round(self.duration / total * width))
        lanes: dict[str, list[str]] = {"body": ["="] * body_end + [" "] * (width - body_end)}
        order = sorted(self.spans, key=lambda s: (s.kind != "wait", s.thread, s.start))
        for span in order:
            key = "body" if span.kind == "wait" else span.thread
            row = lanes.setdefault(key, [" "] * width)
            a = min(width - 1, int(span.start / total * width))
            b = max(a + 1, min(width, round(span.end / total * width)))
            mark = "." if span.kind == "wait" else "#"
            for i in range(a, b):
                row[i] = mark
        name_width = max((len(k) for k in lanes), default=4)
        lines = [f"{'':{name_width}} |{'0 ms':<{width // 2}}{f'{total * 1e3:.0f} ms':>{width - width // 2}}|"]
        for key in sorted(lanes, key=lambda k: (k != "body", k)):
            lines.append(f"{key:{name_width}} |{''.join(lanes[key])}|")
        return "\n".join(lines)


# Why the body waited, as a wait records it: a text, or where the body's frame stood
# (``body_at``), described only when a timeline is drawn: describing reads the
# code's instructions (``_uses.describe_use``), which costs milliseconds the first
# time for each code, and a replay that waits does not draw its timeline.
Why = str | tuple[bool, CodeType, int]


def body_at(needed: bool) -> Why:
    """Where the body's frame stands now: it needs a result (``needed``), or it changes
    what others may see; "" when no frame of the body's is found."""
    frame: Any = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(HERE):
        frame = frame.f_back
    return "" if frame is None else (needed, frame.f_code, frame.f_lasti)


def why(where: Why) -> str:
    """``line 42: a branch tests it (...)`` or ``line 42: the body changes what others
    may see (...)``, for explain and the timeline."""
    if isinstance(where, str):
        return where
    needed, code, lasti = where
    line = line_at(code, lasti)
    if needed:
        return described_use((code, lasti, line)) or ""
    source = linecache.getline(code.co_filename, line).strip()
    return f"line {line}: {WAITS_FOR_ALL}" + (f" ({source})" if source else "")


WAITS_FOR_ALL = "the body changes what others may see, after every deferred call"


READS_OWNED = "the body reads an object a deferred call received, after that call"


def timeline_of(t0: float, wall0: float, end: float, tasks: list[Task],
              waits: list[tuple[float, float, Task, Why]], body: str) -> Timeline:
    spans = [Span("call", t.name, t.site, t.started - t0, t.ended - t0,
                  t.thread if type(t.thread) is str else t.thread.name)
             for t in tasks if t.state in (DONE, FAILED) and t.ended and not t.inline]
    spans += [Span("wait", t.name, t.site, a - t0, b - t0, body, why(where))
              for a, b, t, where in waits]
    return Timeline("replay", wall0, end - t0, tuple(spans))
