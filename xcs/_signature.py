"""A call's argument signature: the types of its bound parameters, not their values.

The front keys what it decided on the signature (``_function``): the first call of a
signature is its trial, later ones replay its plan or run plain.  ``*args``
counts by the types it holds, not by how many: ``f(*docs)`` over three strings
and over thirty is one signature.
"""

from __future__ import annotations

import inspect
from collections.abc import Hashable
from dataclasses import dataclass
from types import CodeType
from typing import Any

__all__ = ["Signature"]


@dataclass(frozen=True, slots=True)
class Signature:
    """Where a function's parameters are among the values its prologue passes on."""

    names: tuple[str, ...]  # the parameters, ``*args`` and ``**kwargs`` included
    star: int | None  # the index of ``*args``
    starstar: int | None  # the index of ``**kwargs``

    @classmethod
    def of(cls, code: CodeType) -> Signature:
        n = code.co_argcount + code.co_kwonlyargcount
        star = n if code.co_flags & inspect.CO_VARARGS else None
        starstar = n + (star is not None) if code.co_flags & inspect.CO_VARKEYWORDS else None
        return cls(code.co_varnames[:n + (star is not None) + (starstar is not None)],
                   star, starstar)

    @property
    def varargs(self) -> bool:
        """Without ``*args`` or ``**kwargs``, the key is ``tuple(map(type, params))``."""
        return self.star is not None or self.starstar is not None

    def key(self, params: tuple[Any, ...]) -> Hashable:
        """The types of ``params``; raises TypeError if one of them is unhashable."""
        key: tuple[Any, ...] = tuple(map(type, params))
        if self.star is not None:  # the types in ``*args``, not how many: f(*docs) is one
            key += ("*", *_distinct(map(type, params[self.star])))
        if self.starstar is not None:
            key += ("**", *sorted((k, type(v)) for k, v in params[self.starstar].items()))
        hash(key)
        return key

    def text(self, params: tuple[Any, ...]) -> str:
        """``(x: int, *docs: (str, ...), **kw: {k: float})``, for stats and explain."""
        parts = []
        for k, (name, value) in enumerate(zip(self.names, params)):
            if k == self.star:
                types = ", ".join(t.__name__ for t in _distinct(map(type, value)))
                parts.append(f"*{name}: ({types}, ...)" if types else f"*{name}: ()")
            elif k == self.starstar:
                parts.append("**" + name + ": {" + ", ".join(
                    f"{n}: {type(v).__name__}" for n, v in sorted(value.items())) + "}")
            else:
                parts.append(f"{name}: {type(value).__name__}")
        return "(" + ", ".join(parts) + ")"


def _distinct(items: Any) -> tuple[Any, ...]:
    """The items, each once, in order of first appearance."""
    return tuple(dict.fromkeys(items))
