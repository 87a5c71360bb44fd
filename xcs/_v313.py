"""CPython 3.13: what changed in the call protocol and stack model since 3.12.

The slot moved *above* the callable (``callable, NULL, args``), keyword calls
became CALL_KW with the names tuple on the stack (KW_NAMES is gone), and
superinstructions load or store two fast locals at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from bytecode import Instr, Label

from xcs._opcodes import Count, arg
from xcs._v312 import CPython312

__all__ = ["CPython313"]


def _format_simple(value: Any) -> str:
    return format(value)


def _format_with_spec(value: Any, spec: str) -> str:
    return format(value, spec)


class CPython313(CPython312):
    VERSION: ClassVar[tuple[int, int]] = (3, 13)
    SLOT_BELOW_CALLABLE: ClassVar[bool] = False
    CODE_AFTER_END_FOR: ClassVar[bool] = False  # END_FOR, POP_TOP: FOR_ITER skips both
    # LOAD_CLOSURE is a pseudo-instruction now: LOAD_FAST of a cell pushes the cell.
    CELL_LOAD: ClassVar[str] = "LOAD_FAST"
    CELL_LOADS: ClassVar[frozenset[str]] = frozenset({"LOAD_FAST"})
    CALL_PREFIX: ClassVar[frozenset[str]] = frozenset()
    CALLS: ClassVar[frozenset[str]] = CPython312.CALLS | {"CALL_KW"}
    EFFECT_FIX: ClassVar[dict[str, int]] = {}

    CONSUMED: ClassVar[dict[str, Count]] = {
        name: n for name, n in CPython312.CONSUMED.items() if name not in {"KW_NAMES", "FORMAT_VALUE"}
    } | {
        "CALL_KW": lambda a: a + 3, "CONVERT_VALUE": 1, "END_FOR": 1, "ENTER_EXECUTOR": 0,
        "EXIT_INIT_CHECK": 1, "FORMAT_SIMPLE": 1, "FORMAT_WITH_SPEC": 2,
        "LOAD_FAST_LOAD_FAST": 0, "MAKE_FUNCTION": 1, "SET_FUNCTION_ATTRIBUTE": 2,
        "STORE_FAST_LOAD_FAST": 1, "STORE_FAST_STORE_FAST": 2, "TO_BOOL": 1,
    }
    IMMUTABLE_RESULT: ClassVar[frozenset[str]] = CPython312.IMMUTABLE_RESULT | {"TO_BOOL"}
    READS_DEEP: ClassVar[frozenset[str]] = CPython312.READS_DEEP - {"FORMAT_VALUE"} | {
        "CONVERT_VALUE", "FORMAT_SIMPLE", "FORMAT_WITH_SPEC"}
    # MAKE_FUNCTION makes a bare function; SET_FUNCTION_ATTRIBUTE then sets its
    # defaults, annotations or closure and leaves it on the stack.
    RETURNS_TOP: ClassVar[frozenset[str]] = frozenset({"SET_FUNCTION_ATTRIBUTE"})
    TRUTH_TESTS: ClassVar[frozenset[str]] = frozenset({"TO_BOOL"})

    LOAD_FAST_PAIRS: ClassVar[frozenset[str]] = frozenset({"LOAD_FAST_LOAD_FAST"})
    STORE_LOAD_PAIRS: ClassVar[frozenset[str]] = frozenset({"STORE_FAST_LOAD_FAST"})
    STORE_FAST_PAIRS: ClassVar[frozenset[str]] = frozenset({"STORE_FAST_STORE_FAST"})

    def call_roles(self, instr: Instr) -> tuple[str, ...] | None:
        if instr.name == "CALL_KW":
            return self._opened() + ("arg",) * int(arg(instr)) + ("kwnames",)
        return super().call_roles(instr)

    def pure_op(self, instr: Instr) -> Callable[..., Any] | None:
        """FORMAT_VALUE became CONVERT_VALUE + FORMAT_SIMPLE/FORMAT_WITH_SPEC in 3.13."""
        name = instr.name
        if name == "FORMAT_SIMPLE":
            return _format_simple
        if name == "FORMAT_WITH_SPEC":
            return _format_with_spec
        if name == "CONVERT_VALUE":
            return self.CONVERSIONS[int(arg(instr))]
        return super().pure_op(instr)

    def jump_forward_if_false(self, target: Label, loc: Any = None) -> list[Instr]:
        # Conditional jumps take an exact bool since 3.13 (the compiler puts TO_BOOL first).
        return [Instr("TO_BOOL", location=loc), *super().jump_forward_if_false(target, loc)]
