"""Views of what xcs recorded and decided: Graphviz DOT, trace-event JSON, text lanes.

These are pure functions of the stage records (``Graph``, ``Plan``,
``Timeline``); ``_introspect`` calls them for ``f.explain(format="dot")`` and
``f.timeline()``, and the demo draws its text timeline with them.
"""

from __future__ import annotations

import os
from typing import Any

from xcs._analyze import Plan
from xcs._graph import Graph
from xcs._timeline import Span, Timeline

__all__ = ["dot", "timeline_from_graph", "trace_events"]


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot(name: str, signatures: list[tuple[str, Graph | None, Plan | None]],
        where: dict[int, str]) -> str:
    """A Graphviz digraph: one cluster per signature, one node per recorded call."""
    lines = [f"digraph {_quote(name)} {{", "  rankdir=LR;",
             '  node [shape=box, style="rounded,filled", fillcolor=white, fontname=Helvetica];']
    for k, (signature, graph, plan) in enumerate(signatures):
        lines.append(f"  subgraph cluster_{k} {{")
        state = "optimized" if plan is not None and plan.optimized else "plain"
        lines.append(f"    label={_quote(f'{name}{signature}: {state}')};")
        if graph is not None:
            deferred = plan.deferred if plan is not None and plan.optimized else frozenset()
            for node in graph.nodes:
                label = (f"{node.callee}\n{where.get(node.site, f'site {node.site}')}\n"
                         f"{node.duration * 1e3:.1f} ms")
                fill = ', fillcolor="#cfe8ff"' if node.site in deferred else ""
                lines.append(f"    s{k}n{node.id} [label={_quote(label)}{fill}];")
            for a, b in graph.edges():
                lines.append(f"    s{k}n{a} -> s{k}n{b};")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def timeline_from_graph(graph: Graph, started: float, thread: str) -> Timeline:
    """The trial's timeline: every call ran in the calling thread, one after the other."""
    spans = tuple(Span("call", n.callee, n.site, n.start, n.end, thread) for n in graph.nodes)
    return Timeline("trial", started, graph.duration, spans)


def trace_events(timeline: Timeline, name: str, where: dict[int, str]) -> dict[str, Any]:
    """Chrome/Perfetto trace-event JSON: one lane per thread, a complete event per span."""
    pid = os.getpid()
    lanes: dict[str, int] = {}
    events: list[dict[str, Any]] = []
    body = f"{name} ({timeline.kind})"
    base = timeline.started * 1e6

    def lane(thread: str) -> int:
        if thread not in lanes:
            lanes[thread] = len(lanes) + 1
            events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": lanes[thread],
                           "args": {"name": thread}})
        return lanes[thread]

    events.append({"name": body, "ph": "X", "pid": pid, "tid": lane("body"), "ts": base,
                   "dur": timeline.duration * 1e6, "args": {"kind": timeline.kind}})
    for span in sorted(timeline.spans, key=lambda s: s.start):
        tid = lane("body") if span.kind == "wait" else lane(span.thread)
        label = f"wait for {span.name}" if span.kind == "wait" else span.name
        events.append({"name": label, "ph": "X", "pid": pid, "tid": tid,
                       "ts": base + span.start * 1e6, "dur": (span.end - span.start) * 1e6,
                       "args": {"site": where.get(span.site, f"site {span.site}"),
                                "kind": span.kind}})
    return {"traceEvents": events, "displayTimeUnit": "ms"}
