"""CPython's own suites pass with every function of their modules jitted, in both bodies."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "stdlib_differential.py"
SUITES = {  # module whose functions are jitted -> CPython test module
    "json.decoder,json.encoder,json": "test.test_json",
    "textwrap": "test.test_textwrap",
    "difflib": "test.test_difflib",
    "shlex": "test.test_shlex",
}


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.skipif(not _has("test.test_json"),
                    reason="this CPython ships without its test suite (Debian's 3.14/3.15 builds)")
@pytest.mark.parametrize("mode", ["trace", "replay"])
def test_stdlib_suites_pass_with_their_functions_jitted(mode):
    """Every call in the trace body, or in a replay deferring everything it may: no difference."""
    modules = ",".join(SUITES)
    tests = ",".join(SUITES.values())
    names = list(SUITES.values())
    baseline = subprocess.run([sys.executable, "-c", (
        "import unittest, io\n"
        "load = unittest.defaultTestLoader.loadTestsFromName\n"
        f"s = unittest.TestSuite(load(n) for n in {names!r})\n"
        "r = unittest.TextTestRunner(stream=io.StringIO()).run(s)\n"
        "print(r.testsRun, len(r.failures), len(r.errors))")],
        capture_output=True, text=True, timeout=600)
    ran, failures, errors = map(int, baseline.stdout.split())
    result = subprocess.run([sys.executable, str(SCRIPT), mode, modules, tests],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    first = result.stdout.splitlines()[0].split()
    assert first[:6] == ["ran", str(ran), "failures", str(failures), "errors", str(errors)], \
        result.stdout[-4000:]
    assert int(first[7]) > 50  # functions actually jitted
