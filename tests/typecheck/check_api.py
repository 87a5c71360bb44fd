"""What a type checker sees of xcs.throttle and xcs.verify (checked like check_jit.py)."""

# mypy: warn-unused-ignores
# pyright: strict, reportUnnecessaryTypeIgnoreComment=true

from __future__ import annotations

from concurrent.futures import Executor
from typing import assert_type

import xcs
from xcs import jit


def ask(prompt: str, *, temperature: float = 0.0) -> str:
    return prompt


def check_throttle() -> None:
    api: Executor = xcs.throttle(max_in_flight=2, per_second=1.5)
    xcs.throttle(api, per_minute=60)
    xcs.throttle(max_in_flight="2")  # type: ignore[arg-type]
    xcs.throttle(object())  # type: ignore[arg-type]
    assert_type(api.submit(ask, "q").result(), str)
    jitted = jit(executor=api)(ask)
    assert_type(jitted("q"), str)


def check_verify() -> None:
    assert_type(xcs.verify(ask, "q", temperature=0.5), None)
    xcs.verify(ask, 1)  # type: ignore[arg-type]
    xcs.verify(ask, "q", top_p=1)  # type: ignore[call-arg]
    try:
        xcs.verify(ask, "q")
    except xcs.VerifyError as exc:
        assert_type(exc, xcs.VerifyError)
