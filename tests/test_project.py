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
