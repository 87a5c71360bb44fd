"""The demo command: plain vs jit on the simulated model."""

from __future__ import annotations

import io
import subprocess
import sys

from xcs.__main__ import main
from xcs._demo import run


def test_demo_runs_offline_and_reports_identical_results_and_a_speedup():
    """The demo's jitted program returns what the plain one does, several times faster."""
    out = io.StringIO()
    assert run(latency=0.03, n_docs=6, n_models=3, out=out)
    text = out.getvalue()
    assert "results identical to plain: yes" in text
    speedup = float(text.split("later calls")[1].split("speedup")[1].split("x")[0])
    assert speedup > 2.0, text


def test_help_lists_the_demo_command():
    """python -m xcs --help explains the commands."""
    result = subprocess.run([sys.executable, "-m", "xcs", "--help"], capture_output=True,
                            text=True, check=True)
    assert "demo" in result.stdout and "simulated model" in result.stdout


def test_bad_arguments_are_rejected_clearly(capsys):
    """A non-positive latency is an argparse error, not a crash."""
    try:
        main(["demo", "--latency", "0"])
    except SystemExit as exc:
        assert exc.code == 2
    assert "--latency must be positive" in capsys.readouterr().err
