"""The project's promises about itself: README commands, CI, packaging."""

from __future__ import annotations

import re
from pathlib import Path

import xcs

ROOT = Path(__file__).parent.parent


def _readme_commands():
    return re.findall(r"```sh\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_ci_runs_the_readme_test_command():
    """.ci/run calls the README's test command verbatim."""
    demo, tests = _readme_commands()
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci
    assert "-m tox" in tests and "-m xcs demo" in demo


def test_public_surface_is_small():
    """xcs exports jit, its type for type checkers, the stats records, throttle, verify
    and its error types, nothing else."""
    assert sorted(xcs.__all__) == ["Jitted", "SignatureStats", "Stats", "VerifyError", "XcsError",
                                   "XcsWarning", "jit", "throttle", "verify"]
    assert all(p.name.startswith("_") for p in (ROOT / "xcs").glob("*.py"))
    assert (ROOT / "xcs" / "py.typed").exists()


# The stages in the order the data flows (docs/how-it-works.md draws the same map).
STAGES = (
    ("support", "_errors _compat _opcodes _v311 _v312 _v313 _v314 _v315 _codes _frames _values _owners"),
    ("analysis", "_cfg _abstract _step _step_calls _transfer _flow _provenance"),
    ("outlining", "_cells _try_helper _try_shapes _outline _filter_shapes _filters"),
    ("rewrite", "_sites _sequences _placement _emit _listing _rewrite"),
    ("trace", "_callees _events _identities _trace_ops _trace _uses"),
    ("graph and plan", "_graph _analyze"),
    ("executors", "_slots _executors"),
    ("replay", "_tasks _timeline _tracebacks _switches _scheduling _waiting _replay"),
    ("front", "_explain _introspect _signature _pipeline _call_hooks _hooks _function _jit "
              "_compare _watch _verify _demo __init__ __main__"),
)


def test_no_module_imports_a_later_stage():
    """Data flows one way: a module imports only modules of its own or an earlier stage
    (imports for type checking count: they are dependencies too)."""
    import ast

    rank = {m: k for k, (_, names) in enumerate(STAGES) for m in names.split()}
    modules = {p.stem: p for p in (ROOT / "xcs").glob("*.py")}
    assert set(modules) == set(rank), "every module has its stage"
    backward = []
    for name, path in sorted(modules.items()):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("xcs"):
                targets = ([a.name for a in node.names] if node.module == "xcs"
                           else [node.module.split(".")[1]])
                backward += [f"{name} -> {t}" for t in targets if rank.get(t, -1) > rank[name]]
    assert backward == []


def test_every_module_reads_in_one_sitting():
    """No module of xcs/ over 350 lines, no class over 250, no function over 120 (STYLE)."""
    import ast

    big = []
    for path in sorted((ROOT / "xcs").glob("*.py")):
        source = path.read_text()
        if len(source.splitlines()) > 350:
            big.append(f"{path.name}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            size = (node.end_lineno or node.lineno) - node.lineno + 1 if isinstance(
                node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) else 0
            limit = 250 if isinstance(node, ast.ClassDef) else 120
            if size > limit:
                big.append(f"{path.name}: {node.name} {size} lines")
    assert big == []
