"""The typed API: a type checker sees a jitted function's own signature and its views."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
CHECK = ROOT / "tests" / "typecheck" / "check_jit.py"
CHECK_API = ROOT / "tests" / "typecheck" / "check_api.py"


def _mypy(path: Path) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (the test extra installs it)")
    # From the root, so that pyproject.toml's [tool.mypy] (python_version 3.11) applies.
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_mypy_strict_accepts_the_typing_check():
    """mypy --strict passes tests/typecheck/check_jit.py, where every ignore must be needed."""
    result = _mypy(CHECK)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_accepts_the_throttle_and_verify_check():
    """verify takes the function's own arguments, throttle its typed limits."""
    result = _mypy(CHECK_API)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_the_typing_check_fails_if_jit_returned_any(tmp_path):
    """With a jit typed as returning Any, the check's ignores go unused and mypy fails."""
    source = CHECK.read_text()
    anything = ("from xcs import Jitted, Stats\n\n\n"
                "def jit(*args: Any, **kwargs: Any) -> Any:\n    return None\n")
    assert source.count("from xcs import Jitted, Stats, jit\n") == 1
    (tmp_path / "check_jit.py").write_text(source.replace("from xcs import Jitted, Stats, jit\n",
                                                          anything))
    result = _mypy(tmp_path / "check_jit.py")
    assert result.returncode == 1, result.stdout + result.stderr
    unused = [line for line in result.stdout.splitlines() if "[unused-ignore]" in line]
    assert len(unused) == source.count("  # type: ignore["), result.stdout


@pytest.mark.slow
def test_pyright_accepts_the_typing_check():
    """pyright (strict, unnecessary ignores reported) passes the same file."""
    if importlib.util.find_spec("pyright") is None:
        pytest.skip("pyright is not installed (optional: pip install pyright; it needs node)")
    result = subprocess.run([sys.executable, "-m", "pyright", "--pythonversion", "3.11", str(CHECK)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
