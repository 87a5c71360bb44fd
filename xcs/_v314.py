"""CPython 3.14: what changed in the call protocol and stack model since 3.13.

``with`` calls ``__enter__``/``__exit__`` through LOAD_SPECIAL and CALL,
CALL_FUNCTION_EX always has a ``**kwargs`` slot (NULL when absent), some local
loads borrow their reference, and RETURN_CONST/BINARY_SUBSCR/BEFORE_WITH are gone.
"""

from __future__ import annotations

from typing import ClassVar

from bytecode import Instr

from xcs._opcodes import Count, arg
from xcs._v313 import CPython313

__all__ = ["CPython314"]

NB_SUBSCR = 26  # BINARY_OP's argument for ``x[i]`` (BINARY_SUBSCR until 3.13)


class CPython314(CPython313):
    VERSION: ClassVar[tuple[int, int]] = (3, 14)
    LOOP_ENDS: ClassVar[frozenset[str]] = frozenset({"END_FOR", "POP_ITER"})

    CONSUMED: ClassVar[dict[str, Count]] = {
        name: n for name, n in CPython313.CONSUMED.items()
        if name not in {"BEFORE_ASYNC_WITH", "BEFORE_WITH", "BINARY_SUBSCR",
                        "BUILD_CONST_KEY_MAP", "LOAD_ASSERTION_ERROR", "RETURN_CONST"}
    } | {
        "BUILD_INTERPOLATION": lambda a: 2 + (a & 1), "BUILD_SLICE": lambda a: a,
        "BUILD_TEMPLATE": 2, "CALL_FUNCTION_EX": 4, "LOAD_COMMON_CONSTANT": 0,
        "LOAD_FAST_BORROW": 0, "LOAD_FAST_BORROW_LOAD_FAST_BORROW": 0, "LOAD_SMALL_INT": 0,
        "LOAD_SPECIAL": 1, "NOT_TAKEN": 0, "POP_ITER": 1, "WITH_EXCEPT_START": 5,
        "ANNOTATIONS_PLACEHOLDER": 0,
    }
    KEPT: ClassVar[dict[str, Count]] = CPython313.KEPT | {"WITH_EXCEPT_START": 5}
    READS_NOTHING: ClassVar[frozenset[str]] = CPython313.READS_NOTHING - {"RETURN_CONST"} | {
        "NOT_TAKEN", "POP_ITER"}
    READS_DEEP: ClassVar[frozenset[str]] = CPython313.READS_DEEP | {
        "BUILD_INTERPOLATION", "BUILD_TEMPLATE"}
    KEY_TUPLE_MAPS: ClassVar[frozenset[str]] = frozenset()
    RETURNS_CONST: ClassVar[frozenset[str]] = frozenset()
    MARKERS: ClassVar[frozenset[str]] = frozenset({"NOT_TAKEN"})

    LOAD_FAST_OPS: ClassVar[frozenset[str]] = CPython313.LOAD_FAST_OPS | {"LOAD_FAST_BORROW"}
    CELL_LOADS: ClassVar[frozenset[str]] = CPython313.CELL_LOADS | {"LOAD_FAST_BORROW"}
    LOAD_FAST_PAIRS: ClassVar[frozenset[str]] = CPython313.LOAD_FAST_PAIRS | {
        "LOAD_FAST_BORROW_LOAD_FAST_BORROW"}
    # A borrowed load relies on the compiler's proof that the local outlives
    # the stack item; instructions inserted by the rewrite would void that proof.
    _UNBORROWED = {"LOAD_FAST_BORROW": "LOAD_FAST",
                   "LOAD_FAST_BORROW_LOAD_FAST_BORROW": "LOAD_FAST_LOAD_FAST"}

    def call_roles(self, instr: Instr) -> tuple[str, ...] | None:
        if instr.name == "CALL_FUNCTION_EX":
            return (*self._opened(), "star", "kwstar")
        return super().call_roles(instr)

    def reads_deep(self, instr: Instr) -> bool:
        # BINARY_SUBSCR became BINARY_OP with oparg NB_SUBSCR (26): ``models[0]`` looks
        # at the list, not inside its items.
        return not self._subscript_op(instr) and super().reads_deep(instr)

    def is_with_enter(self, instr: Instr) -> bool:
        # ``with`` is COPY 1; LOAD_SPECIAL __exit__; SWAP 2; SWAP 3;
        # LOAD_SPECIAL __enter__; CALL 0.  The first LOAD_SPECIAL starts it.
        return instr.name == "LOAD_SPECIAL"

    def unborrow(self, instr: Instr) -> Instr:
        name = self._UNBORROWED.get(instr.name)
        return instr if name is None else Instr(name, arg(instr), location=instr.location)

    def is_subscript(self, instr: Instr) -> bool:
        return self._subscript_op(instr) or super().is_subscript(instr)

    @staticmethod
    def _subscript_op(instr: Instr) -> bool:
        return instr.name == "BINARY_OP" and arg(instr) == NB_SUBSCR
