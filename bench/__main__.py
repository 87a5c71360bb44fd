"""``python -m bench``: run the benchmarks on this interpreter, then regenerate docs/benchmarks.md.

* ``python -m bench``: every benchmark; on success bench/results/py3XX.json (this
  Python) is replaced and the report is rebuilt from every JSON file there.
* ``python -m bench --report``: only rebuild the report from the files present.
* ``python -m bench PYTEST-ARGS``: a partial run (``-k map``); results and report
  are left alone.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from bench import report

ROOT = Path(__file__).parent.parent


def main(argv: list[str]) -> int:
    if argv == ["--report"]:
        return report.main([])
    import pytest

    base = [str(ROOT / "bench"), "-p", "no:cacheprovider", "-q", "--benchmark-sort=name"]
    if argv:  # a partial run: nothing is saved
        return int(pytest.main(base + argv))
    results = report.RESULTS / f"py{sys.version_info[0]}{sys.version_info[1]}.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=".partial-", dir=results.parent)  # not *.json
    os.close(fd)
    try:
        code = int(pytest.main([*base, f"--benchmark-json={partial}"]))
        if code != 0:
            print(f"benchmarks failed (pytest exit {code}): {results.name} and the report are "
                  "unchanged", file=sys.stderr)
            return code
        os.chmod(partial, 0o644)  # mkstemp's file is private
        os.replace(partial, results)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return report.main([])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
