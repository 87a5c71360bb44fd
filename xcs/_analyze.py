"""Analyze stage: which call sites to defer, and the speedup to expect.

The estimate replays the trial on paper.  The body's own work between calls
takes the time it took in the trial; a deferred call starts when its inputs
are ready and a worker is free, and the body waits for it only where it
first observed the result (or passed it to a call that is not deferred).
Calls that burn CPU in pure Python are not deferred to threads on a GIL
build: threads would not overlap them.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from xcs._callees import CPU_BOUND, MIN_DURATION
from xcs._graph import Graph, Node
from xcs._owners import MUTATORS
from xcs._values import FRAME

if TYPE_CHECKING:  # the rewrite stage needs bytecode support; analysis does not
    from xcs._rewrite import Site

__all__ = ["CPU_BOUND", "MIN_DURATION", "ExecutorFacts", "Plan"]

MIN_SPEEDUP = 1.2  # below this estimate, later calls run the plain function
SUBMIT_COST = 20e-6  # body time to defer one call (task, submit, placeholder)
CONTINUE_COST = 3e-6  # body time to make a continuation (a task, no submit)
FAST = "its calls are fast"  # how the note of a fast site starts
START_LATENCY = 60e-6  # from submit to the worker running the call


@dataclass(frozen=True, slots=True)
class ExecutorFacts:
    """What the analysis needs to know about the executor."""

    workers: int  # how many calls can run at once
    threads: bool  # workers are threads of this process
    gil: bool  # and pure-Python code in them is serialized by the GIL
    # a throttle: calls wait for its slots and start ``interval`` seconds apart; every
    # slow call that may be deferred is, so that the cap holds for all of them
    throttled: bool = False
    interval: float = 0.0


@dataclass(frozen=True)
class Plan:
    """The decision for one argument signature."""

    deferred: frozenset[int]
    plain_time: float
    estimated_time: float
    reason: str | None = None  # why later calls run plain
    tentative: bool = False  # too little evidence: trace a later call again
    notes: dict[int, str] = field(default_factory=dict)  # site -> why it is not deferred
    lazy: frozenset[int] = frozenset()  # op sites that combine placeholders lazily
    # fast sites whose calls take results: made when those arrive (continuations)
    continued: frozenset[int] = frozenset()
    cpu_time: float = 0.0  # CPU time of the trial: a floor under the GIL
    drains: frozenset[int] = frozenset()  # sites of builtins that drain a generator expression
    # sites of calls that stay in the body (print, a logger): the continuations made
    # before them run first, so that what those print or log comes first, as in plain
    settles: frozenset[int] = frozenset()
    # deferred site -> for each of its calls in the trial, the time of the longest
    # chain of calls from it to the end: on a throttle, the larger starts first
    ranks: dict[int, tuple[float, ...]] = field(default_factory=dict)

    @property
    def optimized(self) -> bool:
        return bool(self.deferred) and self.reason is None

    @property
    def speedup(self) -> float:
        return self.plain_time / self.estimated_time if self.estimated_time > 0 else 1.0

    @classmethod
    def plain(cls, reason: str, *, tentative: bool = False,
              notes: dict[int, str] | None = None, time: float = 0.0) -> Plan:
        return cls(frozenset(), time, time, reason, tentative, notes or {})

    @classmethod
    def from_graph(cls, graph: Graph, sites: list[Site] | tuple[Site, ...],
                   facts: ExecutorFacts, accesses: frozenset[int] = frozenset()) -> Plan:
        """Choose the deferred sites for the trial recorded in ``graph``.

        ``accesses``: the op sites that read a part of their operand (``r.choices``,
        ``d[k]``, unpacking): continuations wherever a placeholder reaches them,
        also on paths the trial did not take.
        """
        if graph.truncated:
            return cls.plain("the trial made too many calls to record", time=graph.duration)
        if graph.raised:
            return cls.plain("the trial call raised", tentative=True, time=graph.duration)
        notes = _site_notes(graph, sites, facts)
        by_site: dict[int, list[Node]] = defaultdict(list)
        for node in graph.nodes:
            by_site[node.site].append(node)
        candidates = sorted(s for s in by_site if s not in notes)
        slow = sum(len(by_site[s]) for s in candidates)
        if slow < 2 - facts.throttled:
            reason = ("no calls recorded" if not graph.nodes else
                      "fewer than two slow calls that could be deferred")
            kept = [why for why in notes.values() if "fast" not in why]
            if kept:  # slow calls there were, but none may be deferred: say why
                reason += f" ({max(set(kept), key=kept.count)})"
            return cls.plain(reason, tentative=True, notes=notes, time=graph.duration)
        gathers = frozenset(s for s in by_site if sites[s].append)
        # Operators saw only builtin immutable operands in the trial (str, int, ...):
        # they may combine placeholders without waiting for them; accesses always may.
        lazy = frozenset(op for op, pure in graph.op_pure.items() if pure) | accesses
        chosen = set(candidates)
        continued = _continuations(graph, chosen, notes)
        floor = max(_cpu_floor(graph, facts), slow * facts.interval)
        best = max(replay_time(graph, chosen, facts, gathers, lazy, continued), floor)
        # Drop sites whose deferral buys nothing (their result is used at once).
        for s in sorted(candidates, key=lambda s: sum(n.duration for n in by_site[s])):
            if facts.throttled:
                break  # on a throttle, a call in the body would not count against its cap
            rest = chosen - {s}
            trial = max(replay_time(graph, rest, facts, gathers, lazy,
                                    _continuations(graph, rest, notes)), floor)
            if trial <= best * 1.0001 + 1e-6:
                chosen.discard(s)
                best = trial
                notes[s] = "its result is needed at once: deferring would not overlap it"
                used = next((n.used_at for n in by_site[s] if n.used_at), None)
                if used:
                    notes[s] += f"; {used}{_hint(used)}"
        continued = _continuations(graph, chosen, notes)
        while True:  # a filter whose list a call in the body saw changes what others see
            seen = {s for s in continued if sites[s].writes
                    and not sites[s].handed_to <= chosen | continued}
            if not seen:
                break
            for s in seen:
                notes[s] = OUTSIDE
            continued = _continuations(graph, chosen, notes)
        for s in continued:
            notes.pop(s, None)
        plain_time = graph.duration
        drains = graph.drains if any(sites[s].genexpr for s in chosen) else frozenset()
        settles = frozenset(s for s, nodes in by_site.items()
                            if any(n.stays == FRAME for n in nodes)) if continued else frozenset()
        plan = cls(frozenset(chosen), plain_time, best, None, False, notes, lazy, continued,
                   graph.cpu, drains, settles, _ranks(graph, chosen))
        if not chosen or (plan.speedup < MIN_SPEEDUP and not facts.throttled):
            for s in chosen:  # why so little: where the body needed the results
                used = next((n.used_at for n in by_site[s] if n.used_at), None)
                if used:
                    notes[s] = f"its result is needed soon after: {used}{_hint(used)}"
            return cls(frozenset(), plain_time, best,
                       f"estimated speedup {plan.speedup:.2f}x is below {MIN_SPEEDUP}x",
                       False, notes, cpu_time=graph.cpu)
        return plan

    def __repr__(self) -> str:
        state = "optimized" if self.optimized else f"plain ({self.reason})"
        return (f"Plan({state}, defer sites {sorted(self.deferred)}, "
                f"estimated {self.speedup:.2f}x)")

    def as_text(self, where: dict[int, str] | None = None) -> str:
        where = where or {}
        deferred = ", ".join(where.get(s, f"site {s}") for s in sorted(self.deferred))
        lines = [f"plan: defer {deferred}" if self.optimized else "plan: plain"]
        if self.optimized and self.continued:
            lines.append("continue (when their inputs arrive): "
                         + ", ".join(where.get(s, f"site {s}") for s in sorted(self.continued)))
        if self.reason:
            lines.append(f"reason: {self.reason}")
        lines.append(f"estimated: {self.plain_time * 1e3:.1f} ms plain -> "
                     f"{self.estimated_time * 1e3:.1f} ms ({self.speedup:.2f}x)")
        for s in sorted(self.notes):
            lines.append(f"  not deferred: {where.get(s, f'site {s}')}: {self.notes[s]}")
        return "\n".join(lines)


def _ranks(graph: Graph, sites: set[int]) -> dict[int, tuple[float, ...]]:
    """For each call at ``sites``, in order, the duration of the longest chain of calls
    that starts with it (its "bottom level"): list scheduling's priority."""
    level = [0.0] * len(graph.nodes)
    for node in reversed(graph.nodes):  # a node's dependents come after it
        level[node.id] += node.duration
        for dep in node.deps:
            level[dep] = max(level[dep], level[node.id])
    ranks: dict[int, list[float]] = defaultdict(list)
    for node in graph.nodes:
        if node.site in sites:
            ranks[node.site].append(level[node.id])
    return {site: tuple(levels) for site, levels in ranks.items()}


def _mutator(node: Node) -> bool:
    """Was the call a mutating method of a builtin container (``list.append``,
    ``dict.update``)?  A Python function's effects are its own business (the contract)."""
    owner, _, method = node.callee.rpartition(".")
    return owner in _CONTAINERS and method in MUTATORS


_CONTAINERS = frozenset({"list", "dict", "set", "deque", "bytearray", "defaultdict",
                         "OrderedDict", "Counter"})


OUTSIDE = ("it changes an object others may see (a list the caller passed, a global): the "
           "body makes it, after every deferred call")


def _site_notes(graph: Graph, sites: list[Site] | tuple[Site, ...],
                facts: ExecutorFacts) -> dict[int, str]:
    """Why each site with recorded calls may not be deferred (absent: it may)."""
    notes: dict[int, str] = {}
    by_site: dict[int, list[Node]] = defaultdict(list)
    for node in graph.nodes:
        by_site[node.site].append(node)
    for s, nodes in by_site.items():
        site = sites[s]
        if site.protected:
            notes[s] = ("inside the function's own try/except/with -- to overlap, make the try"
                        " give one value ('v = f(x)' or 'out.append(f(x))', each except"
                        " storing a value there: see the note on that try), or put the call"
                        " and its except in a function of their own: calls of that function"
                        " are deferred whole")
        elif site.nested:
            notes[s] = ("in a nested function or generator expression (its calls run as"
                        " written; a slow call of the nested function is deferred whole)")
        elif site.genexpr and not all(n.drained for n in nodes):
            notes[s] = ("in a generator expression that no builtin consumed whole "
                        "(join, sum, list, tuple, set, sorted, min, max, dict)")
        elif site.append:
            notes[s] = "appends to a list the function builds"
        elif site.outside or (not site.private and any(map(_mutator, nodes))):
            # Not a continuation either: a later call may read the object (a saved
            # ``add = G.append`` is a mutator too, whatever the flow could see).
            notes[s] = OUTSIDE
        elif any(n.stays for n in nodes):
            notes[s] = next(n.stays for n in nodes if n.stays)
        elif any(n.opaque for n in nodes):
            notes[s] = "an argument is a generator or a closure of the body"
        elif site.writes and sum(n.duration for n in nodes) / len(nodes) >= MIN_DURATION:
            notes[s] = ("it fills a list the function builds, and what it calls is slow: the "
                        "body makes it, in order")
        elif sum(n.duration for n in nodes) / len(nodes) < MIN_DURATION:
            notes[s] = f"its calls are fast (under {MIN_DURATION * 1e6:.0f} us)"
        elif facts.threads and facts.gil and _cpu_bound(nodes):
            notes[s] = "CPU-bound in this thread: threads cannot overlap it under the GIL"
    return notes


def _hint(used: str) -> str:
    """A restructuring that would let the call overlap, for how the body used it."""
    if "a branch" in used:
        return (" -- to overlap, make the calls first (a list comprehension) and branch on"
                " their results in a second loop")
    if "not deferred receives it" in used:
        return " -- that call waits for it; if it is slow, it is deferred too once it is"
    return ""


def _continuations(graph: Graph, deferred: set[int], notes: dict[int, str]) -> frozenset[int]:
    """Fast sites whose calls took a result of a deferred call (or of another such
    site): in a replay they are made when their inputs arrive, without the body
    waiting.  Only sites kept plain for being fast: any other reason stands."""
    fast = {s for s, why in notes.items() if why.startswith(FAST)}
    site_of = [n.site for n in graph.nodes]
    sources = set(deferred)
    found: set[int] = set()
    grew = True
    while grew:
        grew = False
        for node in graph.nodes:
            if node.site in fast and node.site not in found and any(
                    site_of[d] in sources for d in node.deps):
                found.add(node.site)
                sources.add(node.site)
                grew = True
    return frozenset(found)


def _cpu_floor(graph: Graph, facts: ExecutorFacts) -> float:
    """The CPU time the trial spent in the body's thread (calls included): threads
    under the GIL run it on one core at a time, however the calls overlap."""
    return graph.cpu if facts.threads and facts.gil else 0.0


def _cpu_bound(nodes: list[Node]) -> bool:
    """Were most of the site's measured calls CPU-bound?  Most, not their sum: one
    garbage collection during one call of an I/O callee must not make the site look
    CPU-bound (a full collection of a large heap costs hundreds of milliseconds)."""
    measured = [n for n in nodes if n.cpu is not None and n.duration > 0]
    bound = sum(1 for n in measured if n.cpu is not None and n.cpu > CPU_BOUND * n.duration)
    return 2 * bound > len(measured)


def replay_time(graph: Graph, deferred: set[int] | frozenset[int], facts: ExecutorFacts,
                gathers: frozenset[int] = frozenset(), lazy: frozenset[int] = frozenset(),
                continued: frozenset[int] = frozenset()) -> float:
    """Estimated wall time of a replay that defers the calls at ``deferred`` sites.

    Calls at ``gathers`` sites (``list.append`` on a list the body built) and
    operators at ``lazy`` sites take placeholders without waiting for them; calls
    at ``continued`` sites run when their inputs are ready, on no worker.
    """
    deferred = set(deferred) | continued
    events: list[tuple[float, int, int]] = []  # (trial time, kind, node): 0 call, 1 use
    for n in graph.nodes:
        events.append((n.start, 0, n.id))
        forced = n.forced_at(lazy)
        if forced is not None:
            events.append((forced, 1, n.id))
    events.sort()
    done: dict[int, float] = {}  # node -> replay time at which its result exists
    is_deferred = [n.site in deferred for n in graph.nodes]
    free: list[float] = []  # worker free times, when bounded
    bounded = facts.workers < len(graph.nodes)
    t = 0.0  # the body's clock in the replay
    last = 0.0  # the trial time the body's clock corresponds to
    for when, kind, i in events:
        if when > last:
            t += when - last
            last = when
        node = graph.nodes[i]
        if kind == 1:
            if is_deferred[i]:
                t = max(t, done[i])
            continue
        ready = max((done[d] for d in node.deps if is_deferred[d]), default=0.0)
        if node.site in continued:
            done[i] = max(t, ready) + node.duration
            t += CONTINUE_COST
        elif is_deferred[i]:
            start = max(t, ready) + START_LATENCY
            if bounded:
                if len(free) >= facts.workers:
                    start = max(start, heapq.heappop(free))
                heapq.heappush(free, start + node.duration)
            done[i] = start + node.duration
            t += SUBMIT_COST
        else:
            t = (t if node.site in gathers else max(t, ready)) + node.duration
            done[i] = t
        last = max(last, node.end)
    t += max(0.0, graph.duration - last)
    return max([t, *(done[i] for i in done if is_deferred[i])])
