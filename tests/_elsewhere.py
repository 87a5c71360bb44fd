"""A module of its own, so that tests can jit functions defined outside the test file."""

from __future__ import annotations

from typing import Any

PREFIX = "elsewhere"


def fan_out(m: Any, xs: list[Any]) -> list[Any]:
    """Independent calls whose prompt reads this module's global ``PREFIX``."""
    return [m(PREFIX, x) for x in xs]
