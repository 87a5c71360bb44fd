"""Version selection: one module per CPython version, and the same list everywhere."""

from __future__ import annotations

import configparser
import sys
from pathlib import Path

from xcs import _compat

ROOT = Path(__file__).parent.parent


def test_running_interpreter_is_supported():
    """The interpreter running the tests has bytecode support (or the test env is wrong)."""
    assert _compat.ops is not None, _compat.UNSUPPORTED
    assert sys.version_info[:2] == _compat.ops.VERSION


def test_unknown_versions_and_implementations_are_refused_with_a_reason():
    """A future CPython or another implementation gets no module and a clear reason."""
    ops, reason = _compat._load((3, 99), "cpython")
    assert ops is None and "3.99 is not supported" in reason
    ops, reason = _compat._load((3, 12), "pypy")
    assert ops is None and "pypy" in reason


def test_tox_envlist_matches_the_supported_versions():
    """tox.ini tests exactly the versions xcs/_compat.py supports."""
    config = configparser.ConfigParser()
    config.read(ROOT / "tox.ini")
    envs = [e.strip() for e in config["tox"]["envlist"].split(",")]
    pythons = [e for e in envs if e.startswith("py3")]
    assert pythons == [f"py{major}{minor}" for major, minor in _compat.SUPPORTED]


def test_no_version_checks_outside_the_version_modules():
    """sys.version_info appears only in _compat.py (STYLE: version facts in one place)."""
    offenders = [p.name for p in (ROOT / "xcs").glob("*.py")
                 if "version_info" in p.read_text() and p.name != "_compat.py"]
    assert offenders == []


def _version_specific_opcodes() -> dict[str, set[str]]:
    rows = (line.split() for line in (ROOT / "tests/golden/version-specific-opcodes.txt")
            .read_text().splitlines() if line and not line.startswith("#"))
    return {name: set(versions) for name, *versions in rows}


def test_the_table_of_version_specific_opcodes_is_right_here():
    """The running CPython has exactly the opcodes the table gives it."""
    import opcode

    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    real = {name for name, number in opcode.opmap.items() if number < 256}
    wrong = {name for name, versions in _version_specific_opcodes().items()
             if (here in versions) != (name in real)}
    assert wrong == set()


def test_version_specific_opcodes_are_named_only_in_the_version_modules():
    """No generic module names an opcode that only some CPythons have (STYLE: one
    interface, ``_opcodes.Opcodes``, holds them)."""
    import re

    names = _version_specific_opcodes()
    word = re.compile(r"\b(" + "|".join(sorted(names, key=len, reverse=True)) + r")\b")
    allowed = {"_compat.py"}  # and the version modules; the interface names none either
    offenders = sorted(f"{p.name}: {m.group(1)}" for p in (ROOT / "xcs").glob("*.py")
                       if p.name not in allowed and not p.name.startswith("_v3")
                       for m in word.finditer(p.read_text()))
    assert offenders == []


def test_import_and_plain_run_on_a_simulated_future_interpreter():
    """On CPython '3.16' (simulated): import works, jit runs plain, one warning says why."""
    import subprocess

    script = """
import sys, warnings
sys.version_info = (3, 16, 0, "final", 0)   # what a future CPython would report
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import xcs
    f = xcs.jit(lambda xs: [str(x) for x in xs])
    assert f([1, 2]) == ["1", "2"] and f([3]) == ["3"]
print(len(caught), caught[0].category.__name__, f.stats().reason)
assert "bytecode" not in sys.modules, "the bytecode package must not be needed"
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    count, category, reason = result.stdout.strip().split(" ", 2)
    assert (count, category) == ("1", "XcsWarning")
    assert "CPython 3.16 is not supported" in reason
