"""Graph stage: the dependency DAG of a trial's calls.

Nodes are the calls made by the body itself (calls made while another call
was running belong to that call).  An edge A -> B means that B received,
among its operands, an object that A returned: the identity links found by
the trace, strings and ints included.  Where A returned an object whose
identity names no call (``None``, ``True``, a small int), the code says
instead whether A's result may reach B's operands (``_provenance``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from xcs._trace import Trace

__all__ = ["Graph", "Node"]


class Node(NamedTuple):
    """One call of the body, as a node of the dependency graph (a tuple: see ``Call``)."""

    id: int
    call: int  # index of the call in the trace
    site: int
    callee: str
    start: float
    duration: float
    cpu: float | None  # None where the trace did not read the CPU clock
    deps: tuple[int, ...]  # ids of the nodes whose results it received
    first_use: float | None
    raised: bool
    opaque: bool
    stays: str | None  # why the callee must run in the body's thread
    op_uses: tuple[tuple[int, float], ...] = ()
    drained: bool = False  # made by a generator expression a builtin drained
    used_at: str | None = None  # where the body first needed the result

    def forced_at(self, lazy: frozenset[int] | set[int]) -> float | None:
        """When the body first needs this result, if operators at ``lazy`` sites wait for nothing."""
        times = [t for op, t in self.op_uses if op not in lazy]
        if self.first_use is not None:
            times.append(self.first_use)
        return min(times, default=None)

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass(frozen=True, slots=True)
class Graph:
    """The calls of one trial and the identity edges between them."""

    nodes: tuple[Node, ...]
    duration: float  # wall time of the whole trial
    raised: bool
    truncated: bool
    op_pure: dict[int, bool] = field(default_factory=dict)  # op site -> builtin operands only
    cpu: float = 0.0  # CPU time of the body's thread during the trial, its calls included
    drains: frozenset[int] = frozenset()  # sites of builtins that drained a generator expression

    @classmethod
    def from_trace(cls, trace: Trace,
                   fed_by: Callable[[], dict[int, frozenset[int]]] | None = None) -> Graph:
        """Keep the body's own calls; a nested call's result counts as its parent's.

        ``fed_by`` gives, per site, the sites whose results may reach its operands
        (``Program.fed_by``); it is asked only once a call's result was an object
        whose identity names no call, and links the latest such call of a feeding
        site to the calls of the sites it feeds.
        """
        top: dict[int, int] = {}  # call index -> node id, for the body's own calls
        owner: dict[int, int] = {}  # call index -> the body's call it happened in
        nodes: list[Node] = []
        shared: dict[int, int] = {}  # site -> its latest node, if its result was shared
        feeds: dict[int, frozenset[int]] | None = None
        for call in trace.calls:
            index = call.seq
            if call.parent is not None:
                owner[index] = owner.get(call.parent, call.parent)
                continue
            node_id = len(nodes)
            top[index] = node_id
            owner[index] = index
            deps: tuple[int, ...] = ()
            found = {top[owner[d]] for d in call.deps if owner.get(d) in top}
            if shared and fed_by is not None:
                feeds = fed_by() if feeds is None else feeds
                found.update(shared[s] for s in feeds.get(call.site, ()) if s in shared)
            if found:
                found.discard(node_id)
                deps = tuple(sorted(found))
            if call.shared_result:
                shared[call.site] = node_id
            else:
                shared.pop(call.site, None)
            nodes.append(Node(node_id, index, call.site, call.callee, call.start,
                              call.duration, call.cpu, deps, call.first_use,
                              call.raised, call.opaque, call.stays, call.op_uses,
                              call.drained, call.used_at))
        return cls(tuple(nodes), trace.duration, trace.raised, trace.truncated,
                   dict(trace.op_pure), trace.cpu, trace.drains)

    def edges(self) -> list[tuple[int, int]]:
        return [(d, n.id) for n in self.nodes for d in n.deps]

    def levels(self) -> list[list[int]]:
        """Independent sets: nodes grouped by the length of their longest dependency chain."""
        level: list[int] = []
        for n in self.nodes:
            level.append(1 + max((level[d] for d in n.deps), default=-1))
        groups: list[list[int]] = [[] for _ in range(max(level, default=-1) + 1)]
        for n, lv in zip(self.nodes, level):
            groups[lv].append(n.id)
        return groups

    def critical_path(self) -> tuple[float, list[int]]:
        """The chain of dependent calls with the largest total duration."""
        best: list[float] = []
        prev: list[int | None] = []
        for n in self.nodes:
            choice = max(n.deps, key=lambda d: best[d], default=None)
            best.append(n.duration + (best[choice] if choice is not None else 0.0))
            prev.append(choice)
        if not best:
            return 0.0, []
        end = max(range(len(best)), key=best.__getitem__)
        length = best[end]
        path = []
        last: int | None = end
        while last is not None:
            path.append(last)
            last = prev[last]
        return length, path[::-1]

    def __repr__(self) -> str:
        return (f"Graph({len(self.nodes)} calls, {len(self.edges())} edges, "
                f"{len(self.levels())} levels)")

    def as_text(self, where: dict[int, str] | None = None) -> str:
        """The calls, edges, independent sets and critical path, one per line."""
        where = where or {}
        lines = [f"calls ({len(self.nodes)}, trial {self.duration * 1e3:.1f} ms):"]
        for n in self.nodes:
            loc = where.get(n.site, f"site {n.site}")
            after = f" <- {', '.join(f'#{d}' for d in n.deps)}" if n.deps else ""
            lines.append(f"  #{n.id} {loc} {n.callee}() {n.duration * 1e3:.1f} ms{after}")
        edges = self.edges()
        lines.append("edges: " + (", ".join(f"#{a}->#{b}" for a, b in edges) if edges else "none"))
        lines.append("independent sets:")
        for k, group in enumerate(self.levels()):
            lines.append(f"  level {k}: " + " ".join(f"#{i}" for i in group))
        length, path = self.critical_path()
        lines.append(f"critical path: {' -> '.join(f'#{i}' for i in path) or '-'}"
                     f" ({length * 1e3:.1f} ms)")
        lines.append(f"floors: critical path {length * 1e3:.1f} ms, CPU {self.cpu * 1e3:.1f} ms"
                     " (threads under the GIL run the CPU time on one core)")
        return "\n".join(lines)
