"""Write docs/benchmarks.md and docs/benchmarks.png from every bench/results/*.json.

Usage: ``python bench/report.py [RESULTS.json ...]`` (default: every
bench/results/py3XX.json, one per Python version, as written by ``python -m bench``).
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parent.parent
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "benchmarks.png"

GOAL_EFFICIENCY = 0.90  # ideal / jit, every workload
GOAL_MAP64_VS_POOL = 1.10  # jit / hand-written pool, map 64
GOAL_CHAIN_VS_PLAIN = 1.02  # jit / plain, chain of 5
BUDGET_PLAIN_CALL = 1e-6  # seconds added per call when the plan is plain
BUDGET_DEFERRED = 15e-6  # seconds added per deferred call over a hand-written pool
BUDGET_NON_DEFERRED = 50e-9  # seconds added per non-deferred call in a replayed body
BUDGET_TRIAL = 20.0  # first call (trial) of 10,000 tiny calls / the plain call

NA = "\N{EN DASH}"  # an empty table cell
KINDS = ("plain", "jit", "pool", "gather")
CALLEES = {"sleep": "sleep model", "http": "HTTP to 127.0.0.1"}


@dataclass
class Run:
    """One JSON file: one Python version."""

    python: str
    version: str
    machine: dict[str, Any]
    commit: dict[str, Any]
    datetime: str
    workloads: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    overhead: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    cpu: dict[str, dict[str, Any]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # workload names in run order
    loads: list[float] = field(default_factory=list)


def load(paths: list[Path]) -> list[Run]:
    runs = []
    for path in paths:
        data = json.loads(path.read_text())
        if any("workload" in b["extra_info"] and "callee" not in b["extra_info"]
               for b in data["benchmarks"]):
            print(f"skipping {path}: written by an older version of bench/", file=sys.stderr)
            continue
        machine = data.get("machine_info", {})
        version = machine.get("python_version", "?")
        run = Run(".".join(version.split(".")[:2]), version, machine, data.get("commit_info", {}),
                  data.get("datetime", ""))
        for bench in data["benchmarks"]:
            info, stats = bench["extra_info"], bench["stats"]
            row = {**info, "min": stats["min"], "median": stats["median"],
                   "rounds": stats["rounds"]}
            if "load" in info:
                run.loads.append(info["load"])
            if "workload" in info:
                run.workloads.setdefault((info["callee"], info["workload"]), {})[info["kind"]] = row
                if info["workload"] not in run.order:
                    run.order.append(info["workload"])
            elif "overhead" in info:
                run.overhead[info["overhead"]].append(row)
            elif "cpu" in info:
                run.cpu[info["cpu"]] = row
        runs.append(run)
    return sorted(runs, key=lambda r: tuple(int(p) for p in r.python.split(".")))


# -- figures --------------------------------------------------------------------------
def efficiency(kinds: dict[str, dict[str, Any]], kind: str = "jit") -> float | None:
    if kind not in kinds:
        return None
    return kinds[kind]["ideal"] / kinds[kind]["median"]


def _pick(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    for row in rows:
        if all(row.get(k) == v for k, v in match.items()):
            return row
    return None


def overheads(run: Run) -> dict[str, Any]:
    """The overhead figures (seconds or bytes), each from a pair of benchmarks."""
    o = run.overhead
    out: dict[str, Any] = {}
    plain, jitted = _pick(o["plain-plan call"], kind="plain"), _pick(o["plain-plan call"], kind="jit")
    if plain and jitted:
        out["plain_call"] = jitted["min"] - plain["min"]
        out["plain_call_base"] = plain["min"]
    pool, jitted = _pick(o["deferred call"], kind="pool"), _pick(o["deferred call"], kind="jit")
    if pool and jitted:
        n = jitted["calls"]
        out["deferred"] = (jitted["median"] - pool["median"]) / n
        out["deferred_min"] = (jitted["min"] - pool["min"]) / n
        if "cpu_median" in jitted and "cpu_median" in pool:
            out["deferred_cpu"] = (jitted["cpu_median"] - pool["cpu_median"]) / n
            out["pool_cpu"] = pool["cpu_median"] / n
        out["deferred_n"] = n
    rows = o["non-deferred call"]
    t = {(r["kind"], r["n"]): r["min"] for r in rows}
    if len(t) == 4:
        n = max(r["n"] for r in rows)
        out["non_deferred"] = ((t["jit", n] - t["jit", 0]) - (t["plain", n] - t["plain", 0])) / n
        out["non_deferred_plain"] = (t["plain", n] - t["plain", 0]) / n
    trials = {(r["kind"], r["n"]): r for r in o["trial"]}
    out["trial"] = {n: (trials["trial", n]["median"], trials["plain", n]["median"])
                    for (kind, n) in trials if kind == "trial" and ("plain", n) in trials}
    out["rewrite"] = defaultdict(dict)
    for r in o["rewrite"]:
        out["rewrite"][r["function"]][r["stage"]] = r["median"]
    plan = o["memory per plan"][0] if o["memory per plan"] else None
    if plan:
        out["memory_plan"] = plan
    flight = {r["kind"]: r["in_flight_bytes"] for r in o["memory in flight"]}
    if flight:
        out["memory_in_flight"] = flight
    return out


def _met(ok: bool | None) -> str:
    return "" if ok is None else ("met" if ok else "**missed**")


def _ms(seconds: float | None) -> str:
    return NA if seconds is None else f"{seconds * 1e3:.1f}"


def _us(seconds: float | None, digits: int = 1) -> str:
    return NA if seconds is None else f"{seconds * 1e6:.{digits}f} µs"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


# -- markdown --------------------------------------------------------------------------
HEADER = """# Benchmarks

How to regenerate this page: `tox -e bench` (or `python -m bench` in an environment with
the `bench` extra) runs every benchmark in `bench/` with pytest-benchmark on the interpreter
tox runs on, writes `bench/results/py3XX.json` for that version (pytest-benchmark's JSON,
every round kept), and regenerates this page and `benchmarks.png` from **every**
`bench/results/py3XX.json` present. Other versions are separate runs that add or replace their
own file: `tox -e bench-py311`, `tox -e bench-py313`, … (`tox -e bench-py311,bench-py312` for
several; a missing interpreter is skipped), and the last run's report merges them all, one row
per version. Each version's run is listed below with the xcs commit it measured.
`python -m bench --report` only regenerates the page from the files present;
`tox -e bench -- -k "map"` runs a subset and leaves the results and this page alone.
Compare two runs with pytest-benchmark's own tool, for example
`pytest-benchmark compare bench/results/py312.json bench/results/py313.json --group-by=group`.
`python bench/core_figures.py` prints three core figures in a few seconds, without
pytest-benchmark: 16 independent 50 ms calls, three drafts and a judge, a chain of five.

Workload times are wall-clock medians of the rounds after the trial call and a warm-up round
(the overhead and CPU-bound sections say which statistic they use). Slow plain runs get fewer
rounds (plain map 512 takes 512 latencies: one round). The **ideal** is the critical path
(calls that must run one after another) times the time of one call made alone, measured at the
start of the run: the sleep
model's 50 ms sleep, or one HTTP round trip to a server on 127.0.0.1 that waits 20 ms per
request (run in a child process, with keep-alive connections: urllib3 for the synchronous
versions, aiohttp for the asyncio ones). **Efficiency** = ideal / jit time. *pool* is the same
program written by hand on a `ThreadPoolExecutor` with as many threads as xcs's default pool
(512), *gather* the same program with `asyncio.gather` on a running event loop: the practical
best. The code of every version is in `bench/workloads.py`.
"""


KEPT_START = "<!-- figures of bench/*_figures.py, written by hand: bench/report.py keeps them -->"
KEPT_END = "<!-- end of the figures written by hand -->"


def _kept() -> list[str]:
    """The sections of the page that other scripts' figures fill in (shapes, corpus,
    throttle): taken over unchanged from the page as it is."""
    text = DOC.read_text() if DOC.exists() else ""
    start, end = text.find(KEPT_START), text.find(KEPT_END)
    if start < 0 or end < start:
        return []
    return [text[start:end + len(KEPT_END)], ""]


def render(runs: list[Run]) -> str:
    out = [HEADER]
    out += _machine(runs)
    out += _goals(runs)
    out += ["", "![Speedup and efficiency per workload](benchmarks.png)", ""]
    for callee in CALLEES:
        out += _workload_table(runs, callee)
    out += _kept()
    out += _overhead_table(runs)
    out += _cpu_table(runs)
    return "\n".join(out) + "\n"


def _machine(runs: list[Run]) -> list[str]:
    lines = ["## Machine and runs", ""]
    if not runs:
        return [*lines, "No results yet.", ""]
    m = runs[-1].machine
    cpu = m.get("cpu", {})
    lines.append(f"Machine: {cpu.get('brand_raw', m.get('processor') or '?')}, "
                 f"{m.get('cpu_count') or cpu.get('count', '?')} cores, {m.get('system', '?')} "
                 f"{m.get('release', '')}.")
    lines.append("")
    lines.append("| Python | build | run at | xcs commit | load average during the run |")
    lines.append("|---|---|---|---|---|")
    for r in runs:
        commit = r.commit.get("id", "?")[:7] + (" + uncommitted changes" if r.commit.get("dirty") else "")
        load = (f"{min(r.loads):.1f} to {max(r.loads):.1f} (median {statistics.median(r.loads):.1f})"
                if r.loads else "?")
        lines.append(f"| {r.version} | {r.machine.get('python_implementation', '')} "
                     f"{r.machine.get('python_compiler', '')} | {r.datetime[:16].replace('T', ' ')} "
                     f"| {commit} | {load} |")
    lines += ["", "A load average above the number of cores means other processes competed for "
              "the CPU during the run; wall-clock figures are then noisier and slower.", ""]
    return lines


def _goals(runs: list[Run]) -> list[str]:
    pys = [r.python for r in runs]
    lines = ["## Goals", "",
             "| goal | " + " | ".join(pys) + " |", "|---|" + "---|" * len(pys)]

    def row(label: str, cells: list[str]) -> None:
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    for callee, title in CALLEES.items():
        cells = []
        for r in runs:
            effs = {w: efficiency(k) for (c, w), k in r.workloads.items() if c == callee}
            effs = {w: e for w, e in effs.items() if e is not None}
            if not effs:
                cells.append(NA)
                continue
            missed = sorted((e, w) for w, e in effs.items() if e < GOAL_EFFICIENCY)
            cells.append(f"{len(effs) - len(missed)}/{len(effs)} met" + (
                "; missed: " + ", ".join(f"{w} {e:.2f}" for e, w in missed) if missed else ""))
        row(f"efficiency ≥ {GOAL_EFFICIENCY:.2f} on every workload ({title})", cells)
    for callee, title in CALLEES.items():
        cells = []
        for r in runs:
            k = r.workloads.get((callee, "map 64"), {})
            x = _ratio(k.get("jit", {}).get("median"), k.get("pool", {}).get("median"))
            cells.append(NA if x is None else f"{x:.2f}x {_met(x <= GOAL_MAP64_VS_POOL)}")
        row(f"map 64: jit ≤ {GOAL_MAP64_VS_POOL:.2f} x hand-written pool ({title})", cells)
    for callee, title in CALLEES.items():
        cells = []
        for r in runs:
            k = r.workloads.get((callee, "chain of 5"), {})
            x = _ratio(k.get("jit", {}).get("median"), k.get("plain", {}).get("median"))
            cells.append(NA if x is None else f"{x:.3f}x {_met(x <= GOAL_CHAIN_VS_PLAIN)}")
        row(f"chain: jit ≤ {GOAL_CHAIN_VS_PLAIN:.2f} x plain ({title})", cells)
    ov = [overheads(r) for r in runs]
    row(f"per call when the plan is plain ≤ {_us(BUDGET_PLAIN_CALL, 0)}",
        [(NA if "plain_call" not in o else
          f"{o['plain_call'] * 1e9:.0f} ns {_met(o['plain_call'] <= BUDGET_PLAIN_CALL)}") for o in ov])
    row(f"per deferred call over a hand-written pool ≤ {_us(BUDGET_DEFERRED, 0)} "
        "(wall-clock median; CPU time in brackets)",
        [(NA if "deferred" not in o else
          f"{_us(o['deferred'])} ({_us(o.get('deferred_cpu'))}) "
          f"{_met(o['deferred'] <= BUDGET_DEFERRED)}") for o in ov])
    row(f"per non-deferred call in a replayed body ≤ {BUDGET_NON_DEFERRED * 1e9:.0f} ns",
        [(NA if "non_deferred" not in o else
          f"{o['non_deferred'] * 1e9:.0f} ns {_met(o['non_deferred'] <= BUDGET_NON_DEFERRED)}")
         for o in ov])
    cells = []
    for o in ov:
        t = o.get("trial", {}).get(10_000)
        x = _ratio(*t) if t else None
        cells.append(NA if x is None else f"{x:.0f}x {_met(x <= BUDGET_TRIAL)}")
    row(f"trial of 10,000 tiny calls ≤ {BUDGET_TRIAL:.0f} x the plain call", cells)
    lines += ["", *MISSES]
    return lines


# What stands in the way of the goals that a run can miss.  Mechanisms only: the
# figures are the ones in the tables.
MISSES = [
    "What stands in the way where a goal is missed:",
    "",
    "* **map 512**: each of the 512 calls gets a thread of its own (the default pool is "
    "512 wide), and starting 512 threads and switching among them on this machine's cores "
    "takes tens of milliseconds. The hand-written pool of the same width pays the same "
    "(its efficiency is in the pool column); a narrower pool pays whole extra latencies "
    "instead.",
    "* **HTTP workloads**: bound by the CPU time of the client and the server on the same "
    "cores, not by the latency (see the HTTP section); compare jit with pool and gather "
    "there. *map 64 ≤ 1.10 x pool* over HTTP varies from run to run for the same reason.",
    "* **per deferred call**: xcs adds a task record, a placeholder, the resolution where "
    "the body uses the result and a trampoline frame around the callee; the wall-clock "
    "figure also moves with the machine's load (the CPU-time figure in brackets does not).",
    "* **non-deferred calls**: the figure is a difference of two differences of medians of "
    "runs that include 16 sleeping calls, so it carries tens of ns of noise either way; the "
    "rewritten body adds nothing to a call that is not deferred, and `+=` on a local that "
    "may be outside state adds a type test (about 20 ns; a guard call for other types).",
    "* **trial**: the first body brackets every call site and operator with Python-level "
    "hooks (0.3-0.7 µs each, against a plain iteration of a few tens of ns); a site that "
    "proved fast (64 fast calls, no input from a recorded call) is switched off and runs as "
    "written behind one inline test, so the figure is mostly the 64 recorded iterations, "
    "the planning and the test per site. The trial runs once per argument signature.",
    "",
]


def _workload_table(runs: list[Run], callee: str) -> list[str]:
    order: list[str] = []
    for r in runs:
        order += [w for w in r.order if w not in order]
    latency = next((k["jit"]["latency"] for r in runs for (c, _), k in r.workloads.items()
                    if c == callee and "jit" in k), None)
    call = [k["jit"]["call_time"] for r in runs for (c, _), k in r.workloads.items()
            if c == callee and "jit" in k]
    if latency is None:
        return []
    lines = [f"## Workloads: {CALLEES[callee]}", "",
             (f"Injected latency {latency * 1e3:.0f} ms; one call alone took "
              f"{min(call) * 1e3:.1f} to {max(call) * 1e3:.1f} ms (the ideal's unit). "
              "Times in ms; speedup = plain / jit; efficiency = ideal / time."), ""]
    if callee == "http":
        lines += ["Each HTTP call also costs CPU time in the client (urllib3 or aiohttp) and in "
                  "the server, on the same cores: with many calls at once the maps are bound by "
                  "that CPU, not by the latency, and no version reaches the ideal. There, compare "
                  "jit with pool (same client, same threads) and gather.", ""]
    lines += ["| workload | calls | critical path | Python | plain | jit | pool | gather | ideal "
              "| speedup | efficiency jit | pool | gather | jit / pool | jit / gather | plan |",
              "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for w in order:
        for r in runs:
            k = r.workloads.get((callee, w))
            if not k or "jit" not in k:
                continue
            j = k["jit"]
            med = {kind: k[kind]["median"] if kind in k else None for kind in KINDS}
            plan = j.get("status", "?")
            if j.get("status") == "optimized":
                plan += f", {j.get('deferred')} site{'s' if j.get('deferred') != 1 else ''}"
            elif j.get("reason"):
                plan += f" ({j['reason']})"

            def eff(kind: str, k: dict[str, dict[str, Any]] = k) -> str:
                e = efficiency(k, kind)
                return NA if e is None else f"{e:.2f}"

            speed = _ratio(med["plain"], med["jit"])
            vs_pool, vs_gather = _ratio(med["jit"], med["pool"]), _ratio(med["jit"], med["gather"])
            lines.append(
                f"| {w} | {j['calls']} | {j['depth']} | {r.python} | {_ms(med['plain'])} | "
                f"{_ms(med['jit'])} | {_ms(med['pool'])} | {_ms(med['gather'])} | {_ms(j['ideal'])} | "
                f"{NA if speed is None else f'{speed:.2f}x'} | {eff('jit')} | {eff('pool')} | "
                f"{eff('gather')} | {NA if vs_pool is None else f'{vs_pool:.2f}'} | "
                f"{NA if vs_gather is None else f'{vs_gather:.2f}'} | {plan} |")
    lines.append("")
    return lines


def _overhead_table(runs: list[Run]) -> list[str]:
    pys = [r.python for r in runs]
    ov = [overheads(r) for r in runs]
    lines = ["## Overhead", "",
             "Each figure is the difference between two benchmarks in `bench/test_overhead.py`:",
             "",
             "* *plain plan*: a jitted function without slow calls (its plan is plain) vs the "
             "plain function, per call (minimum of many rounds);",
             "* *deferred call*: map over 256 calls of a 2 ms sleep, jitted on a pool vs the same "
             "program by hand on the same pool, divided by 256 (wall-clock median; minimum in "
             "brackets), and the same difference in the process's CPU time (all threads), which "
             "other processes on the machine do not inflate;",
             "* *non-deferred call*: a replayed body (16 deferred calls) with and without a loop "
             "of 10,000 `abs()` calls, minus the same difference in the plain function, per call;",
             "* *trial*: the first call of a freshly jitted function (trial and planning) of "
             "`n` tiny calls vs the plain call;",
             "* *rewrite*: `Program.from_function`, `Program.combine` (plain + trace + one replay "
             "body) and `jit(fn)` as a whole, per function;",
             "* *memory*: tracemalloc, per cached plan (64 signatures of one two-call function; "
             "the first plan also installs the replay body) and per call with 10,000 calls in "
             "flight (a 4-thread pool whose workers wait on a gate until the last call is queued).",
             "",
             "| measure | budget | " + " | ".join(pys) + " |",
             "|---|---|" + "---:|" * len(pys)]

    def row(label: str, budget: str, cells: list[str]) -> None:
        lines.append(f"| {label} | {budget} | " + " | ".join(cells) + " |")

    row("plain call (no xcs)", "", [_ns(o.get("plain_call_base")) for o in ov])
    row("added per call, plan plain", "≤ 1 µs", [_ns(o.get("plain_call")) for o in ov])
    row("added per deferred call vs pool", "≤ 15 µs",
        [f"{_us(o.get('deferred'))} ({_us(o.get('deferred_min'))})" if "deferred" in o else NA
         for o in ov])
    row("CPU time per call by hand on the pool (body + workers)", "",
        [_us(o.get("pool_cpu")) for o in ov])
    row("added CPU time per deferred call vs pool", "", [_us(o.get("deferred_cpu")) for o in ov])
    row("non-deferred call, plain", "", [_ns(o.get("non_deferred_plain")) for o in ov])
    row("added per non-deferred call in a replay", "≤ 50 ns", [_ns(o.get("non_deferred")) for o in ov])
    ns = sorted({n for o in ov for n in o.get("trial", {})})
    for n in ns:
        cells = []
        for o in ov:
            t = o.get("trial", {}).get(n)
            cells.append(NA if not t else
                         f"{_ms(t[0])} ms vs {_ms(t[1])} ms: {t[0] / t[1]:.0f}x, "
                         f"{t[0] / n * 1e6:.1f} µs per call")
        row(f"trial of {n:,} tiny calls vs plain", "≤ 20x" if n == 10_000 else "linear", cells)
    functions: list[str] = []
    for o in ov:
        functions += [f for f in o.get("rewrite", {}) if f not in functions]
    for f in functions:
        cells = []
        for o in ov:
            s = o.get("rewrite", {}).get(f, {})
            cells.append(" / ".join(_ms(s.get(stage)) for stage in ("from_function", "combine", "jit()"))
                         + " ms" if s else NA)
        row(f"rewrite {f}: from_function / combine / jit()", "", cells)
    row("memory: the jitted function", "", [_kb(o.get("memory_plan", {}).get("function_bytes")) for o in ov])
    row("memory: first plan (with its replay body)", "",
        [_kb(o.get("memory_plan", {}).get("first_plan_bytes")) for o in ov])
    row("memory: each further cached plan", "", [_kb(o.get("memory_plan", {}).get("plan_bytes")) for o in ov])
    row("memory per in-flight call: jit", "", [_kb(o.get("memory_in_flight", {}).get("jit")) for o in ov])
    row("memory per in-flight call: pool by hand", "",
        [_kb(o.get("memory_in_flight", {}).get("pool")) for o in ov])
    lines.append("")
    return lines


def _ns(seconds: float | None) -> str:
    return NA if seconds is None else f"{seconds * 1e9:.0f} ns"


def _kb(n: float | None) -> str:
    return NA if n is None else f"{n / 1024:.2f} KiB"


CPU_KINDS = ("plain", "jit threads", "threads by hand", "jit loky", "jit processes",
             "processes by hand")


def _cpu_table(runs: list[Run]) -> list[str]:
    if not any(r.cpu for r in runs):
        return []
    lines = ["## CPU-bound callee", "",
             "Four calls of a pure-Python loop (`bench/callees.py:burn`, tens of ms each), two "
             "workers. On a GIL build threads cannot overlap them: xcs should keep the plan plain "
             "on its default thread pool, and speed the program up on a process pool (loky's "
             "reusable executor, or `ProcessPoolExecutor` with spawned workers). Minimum ms of "
             "the rounds (the round least disturbed by other processes: a speedup needs an idle "
             "core, which a load average above 2 takes away); speedup over plain in brackets.", "",
             "| Python | GIL | " + " | ".join(CPU_KINDS) + " | plan on threads |",
             "|---|---|" + "---:|" * len(CPU_KINDS) + "---|"]
    for r in runs:
        if not r.cpu:
            continue
        plain = r.cpu.get("plain", {}).get("min")
        cells = []
        for kind in CPU_KINDS:
            row = r.cpu.get(kind)
            if row is None:
                cells.append(NA)
                continue
            cells.append(f"{_ms(row['min'])} ({plain / row['min']:.2f}x)" if plain else
                         _ms(row["min"]))
        threads = r.cpu.get("jit threads", {})
        plan = threads.get("status", "?")
        if threads.get("reason"):
            plan += f" ({threads['reason']})"
        if threads.get("cpu_bound_note"):
            plan += "; explain(): CPU-bound"
        gil = next((row.get("gil") for row in r.cpu.values()), None)
        lines.append(f"| {r.python} | {'yes' if gil else 'no'} | " + " | ".join(cells) + f" | {plan} |")
    lines.append("")
    return lines


# -- plot ------------------------------------------------------------------------------
def plot(runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order: list[str] = []
    for r in runs:
        order += [w for w in r.order if w not in order]
    fig, axes = plt.subplots(2, 2, figsize=(15, 9), constrained_layout=True)
    width = 0.8 / max(1, len(runs))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, callee in enumerate(CALLEES):
        ax_speed, ax_eff = axes[row]
        for i, r in enumerate(runs):
            xs, speed, eff, best = [], [], [], []
            for x, w in enumerate(order):
                k = r.workloads.get((callee, w))
                if not k or "jit" not in k or "plain" not in k:
                    continue
                xs.append(x + (i - (len(runs) - 1) / 2) * width)
                speed.append(k["plain"]["median"] / k["jit"]["median"])
                eff.append(efficiency(k) or 0)
                best.append(max(efficiency(k, "pool") or 0, efficiency(k, "gather") or 0))
            color = colors[i % len(colors)]
            ax_speed.bar(xs, speed, width, label=f"jit, Python {r.python}", color=color)
            ax_eff.bar(xs, eff, width, label=f"jit, Python {r.python}", color=color)
            ax_eff.scatter(xs, best, marker="_", s=120, color="black", zorder=3,
                           label="best hand-written (pool or gather)" if i == 0 else None)
        for ax in (ax_speed, ax_eff):
            ax.set_xticks(range(len(order)))
            ax.set_xticklabels(order, rotation=25, ha="right")
            ax.grid(axis="y", alpha=0.3)
        ax_speed.set_yscale("log")
        ax_speed.set_ylabel("speedup over plain (log)")
        ax_speed.set_title(f"Speedup: {CALLEES[callee]}")
        ax_eff.axhline(GOAL_EFFICIENCY, color="red", linestyle="--", linewidth=1,
                       label=f"goal {GOAL_EFFICIENCY:.2f}")
        ax_eff.set_ylim(0, 1.1)
        ax_eff.set_ylabel("efficiency = ideal / time")
        ax_eff.set_title(f"Efficiency: {CALLEES[callee]}")
    handles, labels = axes[0][1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize="small")
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str]) -> int:
    paths = [Path(p) for p in argv] or sorted(RESULTS.glob("py*.json"))
    runs = load(paths)
    DOC.write_text(render(runs))
    plot(runs, PLOT)
    print(f"wrote {DOC.relative_to(ROOT)} and {PLOT.relative_to(ROOT)} from "
          f"{len(runs)} result file(s): {', '.join(r.python for r in runs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
