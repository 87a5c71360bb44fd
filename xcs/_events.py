"""What a trial records: one event per call while it runs (``OpenCall``), and the
calls and timings of a finished trial (``Call``, ``Trace``), which the graph reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = ["Call", "OpenCall", "Trace"]


class Call(NamedTuple):
    """One call recorded by a trial.

    A named tuple rather than a frozen dataclass: a trial can record 10^5
    calls, and a tuple is built several times faster.
    """

    seq: int  # position in the trial's calls
    site: int
    callee: str
    start: float  # seconds since the trial began
    end: float  # when it returned, or when the body went on after it raised
    cpu: float | None  # CPU seconds of the calling thread during the call (None: not read)
    deps: tuple[int, ...]  # earlier calls whose results were among its operands
    first_use: float | None  # when the body first observed its result (not via an operator)
    parent: int | None  # the call that was running when this one was made
    raised: bool
    opaque: bool  # a generator or a closure of the body among its arguments
    stays: str | None  # why the callee must run in the body's thread (see ``stays_here``)
    op_uses: tuple[tuple[int, float], ...] = ()  # (op site, time) an operator first read it
    drained: bool = False  # made by a generator expression while a builtin drained it
    used_at: str | None = None  # where the body first needed its result (see describe_use)
    # its result was an object CPython shares (``None``, a small int): its identity names
    # no call, so the calls it reached are found from the code (``Graph.from_trace``)
    shared_result: bool = False

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Trace:
    """What one trial call did."""

    calls: tuple[Call, ...]
    duration: float
    raised: bool
    truncated: bool
    op_pure: dict[int, bool] = field(default_factory=dict)  # op site -> builtin operands only
    cpu: float = 0.0  # CPU time of the body's thread during the trial
    drains: frozenset[int] = frozenset()  # sites of builtins that drained a generator expression

    def as_text(self) -> str:
        lines = [f"trial: {len(self.calls)} calls in {self.duration * 1e3:.3f} ms"
                 + (" (raised)" if self.raised else "")]
        for c in self.calls:
            deps = ",".join(map(str, c.deps)) or "-"
            lines.append(f"  #{c.seq} site {c.site} {c.callee} {c.duration * 1e3:.3f} ms"
                         f" deps {deps}" + ("" if c.parent is None else f" in #{c.parent}"))
        return "\n".join(lines)


class OpenCall:
    """A call being recorded (mutable until the trial ends)."""

    __slots__ = (
        "cpu",
        "cpu0",
        "deps",
        "drained",
        "end",
        "first_use",
        "fn",
        "frame",
        "helper_args",
        "index",
        "op_uses",
        "opaque",
        "parent",
        "raised",
        "shared_result",
        "site",
        "start",
        "task",
        "used_at",
        "waited0",
        "waited_cpu0",
    )
    index: int
    site: int
    fn: Any
    frame: Any
    start: float
    cpu0: float | None
    deps: tuple[int, ...]
    parent: int | None
    opaque: bool
    drained: bool

    def __init__(self) -> None:
        self.end: float | None = None
        self.cpu: float | None = None
        self.raised = False
        self.shared_result = False
        self.first_use: float | None = None
        self.used_at: Any = None  # where the body first needed the result: (code, lasti, line)
        self.op_uses: dict[int, float] | None = None
        self.task: Any = None  # a first call deferred it: the task that made it
        self.waited0 = self.waited_cpu0 = 0.0  # what a first call had waited for before it
        self.helper_args: tuple[Any, ...] | None = None  # an outlined helper's, pending
