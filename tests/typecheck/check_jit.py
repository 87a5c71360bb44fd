"""What a type checker sees of jit: the function's own signature, plus the views.

Never run: ``tests/test_typing.py`` checks it with ``mypy --strict`` (and with
pyright where it is installed).  Every ``# type: ignore[...]`` marks a call
that must be an error, and unused ignores are errors in this file; so if jit
returned ``Any`` or dropped the parameters, those lines would fail the check.
"""

# mypy: warn-unused-ignores
# pyright: strict, reportUnnecessaryTypeIgnoreComment=true

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, assert_type

from xcs import Jitted, Stats, jit

pool = ThreadPoolExecutor(1)


@jit
def bare(x: int) -> str:
    return str(x)


@jit()
def called(x: int, *, sep: str = "") -> list[str]:
    return [sep] * x


@jit(executor=pool)
def pooled(x: int, y: float = 1.0) -> float:
    return x * y


def summed(xs: list[int]) -> int:
    return sum(xs)


given = jit(summed, executor=pool)
fallback = jit(len)  # a builtin: no bytecode, runs plain, same methods


class Agent:
    @jit
    def ask(self, question: str) -> str:
        return question

    @staticmethod
    @jit
    def double(x: int) -> int:
        return 2 * x


def needs_int_to_str(f: Jitted[[int], str]) -> str:
    return f(1) + f.explain()


def check_bare() -> None:
    assert_type(bare(1), str)
    bare("1")  # type: ignore[arg-type]
    bare()  # type: ignore[call-arg]
    assert_type(needs_int_to_str(bare), str)
    needs_int_to_str(pooled)  # type: ignore[arg-type]


def check_the_wrapped_function() -> None:
    assert_type(bare.__wrapped__(1), str)
    bare.__wrapped__("1")  # type: ignore[arg-type]
    assert_type(bare.__name__, str)
    assert_type(bare.__qualname__, str)
    assert_type(given.__wrapped__([1]), int)


def check_the_views() -> None:
    assert_type(bare.stats(), Stats)
    assert_type(bare.explain(), str)
    assert_type(bare.explain(format="dot"), str)
    assert_type(bare.timeline(), dict[str, Any])
    assert_type(bare.timeline("trace.json"), dict[str, Any])
    bare.explain(format=1)  # type: ignore[arg-type]
    bare.timeline(1)  # type: ignore[arg-type]


def check_the_decorator_forms() -> None:
    assert_type(called(2, sep="-"), list[str])
    called(2, sep=1)  # type: ignore[arg-type]
    assert_type(called.stats(), Stats)
    assert_type(pooled(2), float)
    assert_type(pooled(2, y=0.5), float)
    pooled(2, z=0.5)  # type: ignore[call-arg]
    assert_type(pooled.timeline(), dict[str, Any])
    assert_type(given([1, 2]), int)
    given(["1"])  # type: ignore[list-item]
    assert_type(given.explain(format="dot"), str)


def check_a_method() -> None:
    agent = Agent()
    assert_type(agent.ask("q"), str)
    agent.ask(1)  # type: ignore[arg-type]
    assert_type(agent.ask.stats(), Stats)
    assert_type(Agent.ask(agent, "q"), str)
    Agent.ask("q")  # type: ignore[call-arg, arg-type]
    assert_type(Agent.ask.explain(), str)
    assert_type(Agent.double(2), int)
    Agent.double("2")  # type: ignore[arg-type]


def check_the_fallback() -> None:
    assert_type(fallback([1]), int)
    fallback(1)  # type: ignore[arg-type]
    assert_type(fallback.stats(), Stats)
    assert_type(fallback.explain(format="dot"), str)
    assert_type(fallback.timeline(), dict[str, Any])
