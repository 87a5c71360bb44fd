"""Run CPython's own test suites with every function of some stdlib modules jitted.

Usage: python tests/stdlib_differential.py MODE MODULES TESTS
  MODE     trace  - every call of a patched function runs its trace body;
           replay - every call runs a replay body that defers every deferrable
                    call site and makes every pure operator lazy.
  MODULES  comma-separated modules whose functions (and methods) are jitted.
  TESTS    comma-separated unittest names (e.g. test.test_json).

Deferred calls go to an executor that runs them at once, in the calling
thread, so the program order is the plain one: any difference from the plain
suite is the rewrite's or the placeholders' fault, not concurrency.  Prints
one line ``ran N failures F errors E patched P`` and the first failures.
"""

from __future__ import annotations

import importlib
import inspect
import io
import sys
import types
import unittest
import warnings
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xcs import _function, _replay
from xcs._trace import Recorder


class InlineExecutor(Executor):
    """Runs each submitted call immediately, in the submitting thread."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


INLINE = InlineExecutor()


class Forced(_function.Function):
    """A jitted function whose every call takes the trace or the full replay body."""

    mode = "replay"

    def __init__(self, fn: types.FunctionType) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            super().__init__(fn, INLINE)
        if self.program is not None:
            from xcs._rewrite import Variant

            self.everything = Variant(
                "replay", frozenset(s.id for s in self.program.sites if s.deferrable),
                frozenset(o.id for o in self.program.op_sites))
            self._install(self.everything)

    def dispatch(self, layout: Any, params: tuple[Any, ...]) -> int:
        try:
            prev = self.tls.cur
            if self.mode == "trace":
                rec = Recorder(self.name + ".<locals>.")
                rec.context = (None, prev)  # type: ignore[attr-defined]
                self.tls.cur = rec
                return int(layout.index[self.variants[0]])

            def on_exit(inv: Any, raised: bool) -> None:
                self.tls.cur = prev

            self.tls.cur = _replay.Invocation(INLINE, on_exit)
            return int(layout.index[self.everything])
        except Exception:
            return 0

    def end_trial(self, rec: Recorder, raised: bool) -> None:
        self.tls.cur = rec.context[1]  # type: ignore[attr-defined]
        try:
            rec.finish(raised)
        except RecursionError:
            pass


def patch(modules: list[str]) -> int:
    count = 0

    def jitted(fn: Any) -> Any:
        nonlocal count
        if not isinstance(fn, types.FunctionType) or inspect.isgeneratorfunction(fn) or \
                inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
            return None
        state = Forced(fn)
        if state.program is None:
            return None
        count += 1
        return state.jitted

    for name in modules:
        module = importlib.import_module(name)
        for attr, value in list(vars(module).items()):
            if isinstance(value, types.FunctionType) and value.__module__ == module.__name__:
                new = jitted(value)
                if new is not None:
                    setattr(module, attr, new)
            elif isinstance(value, type) and value.__module__ == module.__name__:
                for key, member in list(vars(value).items()):
                    wrapper = type(member) if isinstance(member, (staticmethod, classmethod)) \
                        else None
                    fn = member.__func__ if wrapper else member
                    new = jitted(fn)
                    if new is not None:
                        setattr(value, key, wrapper(new) if wrapper else new)
    return count


def main(argv: list[str]) -> int:
    mode, modules, tests = argv[0], argv[1].split(","), argv[2].split(",")
    Forced.mode = mode
    patched = patch(modules)
    suite = unittest.TestSuite()
    for name in tests:
        suite.addTests(unittest.defaultTestLoader.loadTestsFromName(name))
    result = unittest.TextTestRunner(stream=io.StringIO(), verbosity=0).run(suite)
    print(f"ran {result.testsRun} failures {len(result.failures)} errors {len(result.errors)}"
          f" patched {patched}")
    for test, text in (result.failures + result.errors)[:5]:
        print("----", test)
        print(text[-2000:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
