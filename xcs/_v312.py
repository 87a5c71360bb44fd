"""CPython 3.12: what changed in the call protocol and stack model since 3.11.

PRECALL and LOAD_METHOD are gone (LOAD_ATTR and LOAD_SUPER_ATTR carry a
method bit instead), conditional jumps lost their direction, comprehensions
are inlined into the enclosing code (PEP 709), and END_FOR/RETURN_CONST appear.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, ClassVar

from bytecode import Instr, Label

from xcs._opcodes import Count, _slice, arg
from xcs._v311 import CPython311

__all__ = ["CPython312"]


class CPython312(CPython311):
    VERSION: ClassVar[tuple[int, int]] = (3, 12)
    # LOAD_FAST no longer checks: the compiler emits LOAD_FAST_CHECK where a local may be unbound.
    CHECKED_LOAD_FAST: ClassVar[str] = "LOAD_FAST_CHECK"
    # An exhausted FOR_ITER jumps over its END_FOR to the next instruction: code may be
    # inserted there, it is where the loop exits (3.13+ put a POP_TOP or POP_ITER after
    # END_FOR, which FOR_ITER skips as well: nothing may come between them).
    CODE_AFTER_END_FOR: ClassVar[bool] = True
    LOOP_ENDS: ClassVar[frozenset[str]] = frozenset({"END_FOR"})
    CALL_PREFIX: ClassVar[frozenset[str]] = frozenset({"KW_NAMES"})
    CALLS: ClassVar[frozenset[str]] = frozenset({"CALL", "CALL_FUNCTION_EX"})
    COMPREHENSIONS: ClassVar[frozenset[str]] = frozenset()

    CONSUMED: ClassVar[dict[str, Count]] = {
        name: n for name, n in CPython311.CONSUMED.items()
        if name not in {"ASYNC_GEN_WRAP", "IMPORT_STAR", "JUMP_IF_FALSE_OR_POP",
                        "JUMP_IF_TRUE_OR_POP", "LIST_TO_TUPLE", "LOAD_CLASSDEREF", "LOAD_METHOD",
                        "PRECALL", "PREP_RERAISE_STAR", "PRINT_EXPR", "UNARY_POSITIVE"}
        and "_FORWARD_IF_" not in name and "_BACKWARD_IF_" not in name
    } | {
        "BINARY_SLICE": 3, "CALL_INTRINSIC_1": 1, "CALL_INTRINSIC_2": 2, "CLEANUP_THROW": 3,
        "END_FOR": 2, "END_SEND": 2, "INTERPRETER_EXIT": 1, "LOAD_FAST_AND_CLEAR": 0,
        "LOAD_FAST_CHECK": 0, "LOAD_FROM_DICT_OR_DEREF": 1, "LOAD_FROM_DICT_OR_GLOBALS": 1,
        "LOAD_LOCALS": 0, "LOAD_SUPER_ATTR": 3, "POP_JUMP_IF_FALSE": 1, "POP_JUMP_IF_NONE": 1,
        "POP_JUMP_IF_NOT_NONE": 1, "POP_JUMP_IF_TRUE": 1, "RESERVED": 0, "RETURN_CONST": 0,
        "STORE_SLICE": 4,
    }
    KEPT: ClassVar[dict[str, Count]] = CPython311.KEPT | {"CLEANUP_THROW": 0}
    READS_NOTHING: ClassVar[frozenset[str]] = CPython311.READS_NOTHING - {"PREP_RERAISE_STAR"} | {
        "CLEANUP_THROW", "END_FOR", "END_SEND", "RETURN_CONST"}
    CHANGES_OPERAND: ClassVar[frozenset[str]] = CPython311.CHANGES_OPERAND | {"STORE_SLICE"}
    SIDE_EFFECTS: ClassVar[frozenset[str]] = CPython311.SIDE_EFFECTS | {"STORE_SLICE"}

    LOAD_FAST_OPS: ClassVar[frozenset[str]] = frozenset({
        "LOAD_FAST", "LOAD_FAST_CHECK", "LOAD_FAST_AND_CLEAR"})
    CLEARING_LOADS: ClassVar[frozenset[str]] = frozenset({"LOAD_FAST_AND_CLEAR"})
    ATTRIBUTE_LOADS: ClassVar[frozenset[str]] = frozenset({"LOAD_ATTR"})
    RETURNS_CONST: ClassVar[frozenset[str]] = frozenset({"RETURN_CONST"})

    def opener(self, instr: Instr) -> tuple[int, tuple[str, ...]] | None:
        name = instr.name
        if name == "LOAD_ATTR" and arg(instr)[0]:
            return 1, self._opened()
        if name == "LOAD_SUPER_ATTR" and arg(instr)[0]:
            return 3, self._opened()
        return super().opener(instr)

    def method_name(self, instr: Instr) -> str | None:
        if instr.name == "LOAD_ATTR" and arg(instr)[0]:
            return str(arg(instr)[1])
        return None

    def normalize(self, instr: Instr) -> list[Instr]:
        loc = instr.location
        if instr.name == "LOAD_SUPER_ATTR":
            plain = Instr("LOAD_SUPER_ATTR", (False, arg(instr)[1], arg(instr)[2]), location=loc)
        else:
            plain = Instr("LOAD_ATTR", (False, arg(instr)[1]), location=loc)
        return [plain, *self._null_after(loc)]

    def call(self, nargs: int, loc: Any = None) -> list[Instr]:
        return [Instr("CALL", nargs, location=loc)]

    def attr_name(self, instr: Instr) -> str:
        return str(arg(instr)[1])

    def is_subscript(self, instr: Instr) -> bool:
        return instr.name in ("BINARY_SUBSCR", "BINARY_SLICE")

    def _subscript(self, instr: Instr) -> Callable[..., Any]:
        return _slice if instr.name == "BINARY_SLICE" else operator.getitem  # ``r[1:]``

    def jump_forward_if_true(self, target: Label, loc: Any = None) -> Instr:
        return Instr("POP_JUMP_IF_TRUE", target, location=loc)

    def jump_forward_if_false(self, target: Label, loc: Any = None) -> list[Instr]:
        return [Instr("POP_JUMP_IF_FALSE", target, location=loc)]
