"""CPython 3.15: what changed in the call protocol and stack model since 3.14.

A for-loop iterator occupies two stack items (the iterable and an index), so
GET_ITER pushes two, FOR_ITER keeps two and POP_ITER pops two.
"""

from __future__ import annotations

from typing import ClassVar

from xcs._opcodes import Count
from xcs._v314 import CPython314

__all__ = ["CPython315"]


class CPython315(CPython314):
    VERSION: ClassVar[tuple[int, int]] = (3, 15)
    CONSUMED: ClassVar[dict[str, Count]] = {
        name: n for name, n in CPython314.CONSUMED.items() if name != "GET_YIELD_FROM_ITER"
    } | {
        "CLEANUP_THROW": 4, "END_SEND": 3, "FOR_ITER": 2, "POP_ITER": 2, "SEND": 3,
        "TRACE_RECORD": 0}
    KEPT: ClassVar[dict[str, Count]] = CPython314.KEPT | {"FOR_ITER": 2, "SEND": 2}
