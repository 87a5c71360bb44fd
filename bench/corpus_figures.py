"""How much of each corpus program's possible overlap ``@jit`` finds, next to a hand-written pool.

For every program of ``bench/corpus.py`` this measures, against one local
OpenAI-compatible server (``tests/openai_server.py``) and one openai client:

* **plain**: the function as written (median of ``--repeat`` calls);
* **jit**: ``jit(fn)`` after up to three calls that let xcs trace and decide,
  then the median of ``--repeat`` calls;
* **pool**: the hand-written ``ThreadPoolExecutor`` version (64 threads);
* **critical**: ``depth`` x latency, the best any schedule can do.

Every result of the jitted and pooled versions must equal the plain result; a
mismatch (or an exception only one version raises) is reported and makes the
run exit with status 1.  Run it from the repository root::

    python -m bench.corpus_figures [--latency 0.06] [--repeat 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import openai

from bench import corpus
from tests.openai_server import ChatServer
from xcs import jit

POOL_THREADS = 64
WARM_CALLS = 3  # jitted calls before timing: the trial, then replays until xcs has decided


@dataclass
class Figures:
    """The measurements of one program (times in milliseconds)."""

    name: str
    kind: str
    calls: int
    depth: int
    plain_ms: float
    jit_ms: float
    pool_ms: float
    critical_ms: float
    status: str  # the signature's status after the timed calls: "optimized", "plain", ...
    reason: str | None
    deferred_sites: list[str]
    ok: bool  # jit and pool results equal the plain result
    error: str | None = None

    @property
    def speedup(self) -> float:
        return self.plain_ms / self.jit_ms

    @property
    def efficiency(self) -> float:
        return self.critical_ms / self.jit_ms

    @property
    def jit_vs_pool(self) -> float:
        return self.jit_ms / self.pool_ms


def _timed(fn: Any, *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn(*args)
    return (time.perf_counter() - start) * 1e3, result


def _median_ms(fn: Any, args: tuple[Any, ...], repeat: int, expected: Any, what: str,
               problems: list[str]) -> float:
    times = []
    for _ in range(repeat):
        ms, result = _timed(fn, *args)
        times.append(ms)
        if result != expected:
            problems.append(f"{what} returned a different result:\n  plain: {expected!r}\n"
                            f"  {what}: {result!r}")
    return statistics.median(times)


def _status(jitted: Any) -> tuple[str, str | None, list[str]]:
    sigs = jitted.stats().signatures
    if not sigs:
        return "none", jitted.stats().reason, []
    status = "/".join(dict.fromkeys(s.status for s in sigs))
    reasons = [s.reason for s in sigs if s.reason]
    sites = [site for s in sigs for site in s.deferred_sites]
    return status, "; ".join(reasons) or jitted.stats().reason, sites


def measure(program: corpus.Program, client: Any, pool: ThreadPoolExecutor, latency: float,
            repeat: int) -> Figures:
    """Time one program plain, jitted and pooled; check that all three agree."""
    args = (client, *program.args)
    problems: list[str] = []
    plain_times = []
    expected: Any = None
    for _ in range(repeat):
        ms, expected = _timed(program.fn, *args)
        plain_times.append(ms)
    plain_ms = statistics.median(plain_times)

    jitted = jit(program.fn)
    jit_ms = float("nan")
    try:
        for i in range(WARM_CALLS):
            _, result = _timed(jitted, *args)
            if result != expected:
                problems.append(f"jit call {i + 1} returned a different result:\n"
                                f"  plain: {expected!r}\n  jit:   {result!r}")
            if i >= 1 and _status(jitted)[0] in ("optimized", "plain"):
                break
        jit_ms = _median_ms(jitted, args, repeat, expected, "jit", problems)
    except Exception:
        problems.append("jit raised where plain did not:\n" + traceback.format_exc())

    pool_ms = float("nan")
    try:
        pool_ms = _median_ms(program.pooled, (pool, *args), repeat, expected, "pool", problems)
    except Exception:
        problems.append("the pooled version raised:\n" + traceback.format_exc())

    status, reason, sites = _status(jitted)
    return Figures(program.name, program.kind, program.calls, program.depth, plain_ms, jit_ms,
                   pool_ms, program.depth * latency * 1e3, status, reason, sites, not problems,
                   "\n".join(problems) or None)


def run(latency: float, repeat: int, names: list[str] | None = None) -> list[Figures]:
    programs = [p for p in corpus.CORPUS if not names or p.name in names]
    old = corpus.set_tool_latency(latency)
    try:
        with ChatServer(latency=latency) as server, \
                openai.OpenAI(base_url=server.base_url, api_key="bench", max_retries=0) as client, \
                ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="hand-pool") as pool:
            # One request first, so the client's connection setup is not in the first figure.
            client.chat.completions.create(model="warm-up", messages=[{"role": "user", "content": "hi"}])
            return [measure(p, client, pool, latency, repeat) for p in programs]
    finally:
        corpus.set_tool_latency(old)


# -- output ---------------------------------------------------------------------------------
COLUMNS = ("program", "plain ms", "jit ms", "pool ms", "critical ms", "jit speedup",
           "efficiency", "jit/pool", "xcs status")


def _row(f: Figures) -> tuple[str, ...]:
    status = f.status + ("" if f.ok else "  MISMATCH")
    return (f.name, f"{f.plain_ms:.0f}", f"{f.jit_ms:.0f}", f"{f.pool_ms:.0f}", f"{f.critical_ms:.0f}",
            f"{f.speedup:.2f}x", f"{f.efficiency:.0%}", f"{f.jit_vs_pool:.2f}", status)


def _means(figures: list[Figures]) -> tuple[float, float]:
    good = [f for f in figures if f.jit_ms == f.jit_ms and f.pool_ms == f.pool_ms]  # no NaN
    if not good:
        return float("nan"), float("nan")
    return (statistics.fmean(f.efficiency for f in good),
            statistics.fmean(f.jit_vs_pool for f in good))


def table(figures: list[Figures]) -> str:
    """A plain-text table of the figures, with the means of efficiency and jit/pool."""
    rows = [COLUMNS, *(_row(f) for f in figures)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]

    def line(r: tuple[str, ...]) -> str:
        cells = [r[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(r[1:-1], widths[1:-1])),
                 r[-1].ljust(widths[-1])]
        return "  ".join(cells).rstrip()

    out = [line(rows[0]), "  ".join("-" * w for w in widths), *(line(r) for r in rows[1:])]
    eff, ratio = _means(figures)
    out.append(f"mean efficiency (critical/jit): {eff:.0%}   mean jit/pool: {ratio:.2f}")
    reasons = [(f.name, f.reason) for f in figures if f.status != "optimized" and f.reason]
    if reasons:
        out.append("")
        out.extend(f"{name}: {reason}" for name, reason in reasons)
    return "\n".join(out)


def markdown(figures: list[Figures]) -> str:
    """The figures as a markdown table (for docs/benchmarks.md)."""
    head = ("| program | kind | requests | depth | plain ms | jit ms | pool ms | critical ms "
            "| jit speedup | efficiency | jit/pool | xcs |")
    lines = [head, "|" + "|".join(["---"] * 2 + ["--:"] * 9 + ["---"]) + "|"]
    for f in figures:
        status = f.status if f.ok else f"{f.status} (**mismatch**)"
        lines.append(f"| {f.name} | {f.kind} | {f.calls} | {f.depth} | {f.plain_ms:.0f} | {f.jit_ms:.0f} "
                     f"| {f.pool_ms:.0f} | {f.critical_ms:.0f} | {f.speedup:.2f}x | {f.efficiency:.0%} "
                     f"| {f.jit_vs_pool:.2f} | {status} |")
    eff, ratio = _means(figures)
    lines.append("")
    lines.append(f"Mean efficiency (critical path / jit time): {eff:.0%}; "
                 f"mean jit time / hand-written pool time: {ratio:.2f}.")
    return "\n".join(lines) + "\n"


def to_json(figures: list[Figures], latency: float, repeat: int) -> dict[str, Any]:
    eff, ratio = _means(figures)
    return {
        "python": ".".join(map(str, sys.version_info[:3])),
        "latency": latency,
        "repeat": repeat,
        "mean_efficiency": eff,
        "mean_jit_vs_pool": ratio,
        "programs": [{**asdict(f), "speedup": f.speedup, "efficiency": f.efficiency,
                      "jit_vs_pool": f.jit_vs_pool} for f in figures],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.06, help="seconds per request")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per version")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table as well")
    parser.add_argument("programs", nargs="*", help="only these programs (by name)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    unknown = set(args.programs) - {p.name for p in corpus.CORPUS}
    if unknown:
        parser.error(f"no such program: {', '.join(sorted(unknown))}")

    figures = run(args.latency, args.repeat, args.programs)
    version = ".".join(map(str, sys.version_info[:3]))
    print(f"Python {version}, {args.latency * 1e3:.0f} ms per request, median of {args.repeat}")
    print(table(figures))
    if args.markdown:
        print()
        print(markdown(figures), end="")
    if args.json:
        args.json.write_text(json.dumps(to_json(figures, args.latency, args.repeat), indent=2) + "\n")
    bad = [f for f in figures if not f.ok]
    for f in bad:
        print(f"\n!!! {f.name}: results differ or an exception was raised !!!\n{f.error}",
              file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
