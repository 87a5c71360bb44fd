"""A first call's sites that proved fast run as written (``_switches``): the trial of
a loop of tiny calls costs a few times the plain loop, and nothing it computes changes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from xcs import _callees, _switches, jit
from xcs._trace import MUTE_AFTER, Recorder

N = 1000
ROOT = Path(__file__).parent.parent


@pytest.fixture(autouse=True)
def fresh_process():
    _callees.clear()
    yield
    _callees.clear()


def tiny(x):
    return x


@pytest.fixture
def probes(monkeypatch):
    """How many times the recorder saw a call opened, by site."""
    seen: dict[int, int] = {}
    before = Recorder.before

    def counting(self, site, fn, operands):
        seen[site] = seen.get(site, 0) + 1
        return before(self, site, fn, operands)

    monkeypatch.setattr(Recorder, "before", counting)
    return seen


def test_a_site_that_proved_fast_stops_calling_its_hooks(probes):
    def body(xs):
        total = 0
        for x in xs:
            total += len(tiny(x))
        return total

    xs = [str(k) for k in range(N)]
    f = jit(body)
    assert f(xs) == body(xs)
    assert probes, "the first call records its calls"
    # About MUTE_AFTER calls recorded, then the switch is off; it is turned on
    # again every REHOOK_AFTER seconds for one call (a loaded machine: a few times).
    assert all(MUTE_AFTER // 2 <= n < N // 2 for n in probes.values()), probes


def test_a_trial_starts_with_every_switch_on(probes):
    def body(xs):
        return [tiny(x) for x in xs]

    f = jit(body)
    switches = f.__xcs__.switches
    switches.mute_site(0)  # as a trial that ended a moment ago left it
    assert not switches.sites[0]
    assert f([1, 2, 3]) == [1, 2, 3]
    assert probes.get(0) == 3


def slow(x):
    time.sleep(0.002)
    return f"<{x}>"


def test_a_deferred_call_turns_every_switch_on_for_good():
    """A site switched off passes its values as they are: once a call is deferred, a
    placeholder may reach it, so it must resolve them again."""
    jit(lambda: slow(0))()  # the process knows ``slow`` now

    def body(xs):
        out = []
        for k, x in enumerate(xs):
            v = slow(x) if k >= 200 else x  # deferred from the 200th item on
            out.append(type(tiny(v)) is str)  # these sites were switched off long before
        return out

    xs = [f"x{k}" for k in range(204)]
    f = jit(body)
    assert f(xs) == body(xs)
    switches = f.__xcs__.switches
    assert f.stats().signatures[0].first_deferred == 4
    assert not switches.allowed and all(switches.sites) and all(switches.ops)


def test_a_callee_that_turns_slow_after_many_fast_calls_is_seen_again():
    """A cache that stops hitting: the switch comes back on within REHOOK_AFTER, the
    slow calls are recorded, and the plan for later calls defers them."""
    def fetch(x):
        if x >= 200:
            time.sleep(0.003)
        return x

    def body(xs):
        return [fetch(x) for x in xs]

    xs = list(range(300))  # 100 slow calls: 0.3 s, many times REHOOK_AFTER
    f = jit(body)
    assert f(xs) == xs
    assert _callees.lookup(fetch) is not None, f.explain()
    assert f.stats().signatures[0].first_deferred > 0, f.explain()


def test_switches_read_as_text():
    switches = _switches.Switches(2, 1)
    switches.mute_op(0)
    assert switches.as_text() == "Switches(2 sites, 1 operator sites; off: sites [], operators [0])"
    switches.forbid()
    assert switches.as_text().endswith("off: sites [], operators []; forbidden)")
    switches.mute_site(1)  # forbidden: stays on
    assert switches.sites[1]


def _run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_first_call_at_interpreter_shutdown_records_without_the_rehook_thread():
    """An atexit handler runs after threading's shutdown: no thread can start, so no
    switch goes off, and the trial is an ordinary one (found by an adversarial tester)."""
    got = _run(textwrap.dedent("""
        import atexit
        from xcs import jit
        def tiny(x):
            return x
        def body(n):
            return [tiny(k) for k in range(n)]
        atexit.register(lambda: print(jit(body)(100) == body(100)))
    """))
    assert got.stdout.strip() == "True" and "XcsWarning" not in got.stderr, got.stderr
