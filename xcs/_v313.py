# mypy: implicit-reexport
"""CPython 3.13: what changed in the call protocol and stack model since 3.12.

The slot moved *above* the callable (``callable, NULL, args``), keyword calls
became CALL_KW with the names tuple on the stack (KW_NAMES is gone), and
superinstructions load or store two fast locals at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bytecode import Instr, Label

from xcs import _v311, _v312
from xcs._v312 import (  # noqa: F401  (re-exported: unchanged since 3.12)
    CHECKED_LOAD_FAST,
    READS_KEPT,
    READS_NOTHING,
    _bits,
    apply,
    arg,
    attr_name,
    call,
    count,
    in_place,
    is_with_enter,
    jump_backward,
    jump_forward,
    jump_forward_if_true,
    method_name,
    reads_deep,
    return_const,
    returns_value,
    unborrow,
    unpacker,
)

VERSION = (3, 13)
SLOT_BELOW_CALLABLE = False
CODE_AFTER_END_FOR = False  # END_FOR, POP_TOP: FOR_ITER skips both
# LOAD_CLOSURE is a pseudo-instruction now: LOAD_FAST of a cell pushes the cell.
CELL_LOAD = "LOAD_FAST"
CELL_LOADS = frozenset({"LOAD_FAST"})
CALL_PREFIX: frozenset[str] = frozenset()
COMPREHENSIONS: frozenset[str] = frozenset()
EFFECT_FIX: dict[str, int] = {}

CONSUMED = {name: n for name, n in _v312.CONSUMED.items()
            if name not in {"KW_NAMES", "FORMAT_VALUE"}}
CONSUMED.update({
    "CALL_KW": lambda a: a + 3, "CONVERT_VALUE": 1, "END_FOR": 1, "ENTER_EXECUTOR": 0,
    "EXIT_INIT_CHECK": 1, "FORMAT_SIMPLE": 1, "FORMAT_WITH_SPEC": 2,
    "LOAD_FAST_LOAD_FAST": 0, "MAKE_FUNCTION": 1, "SET_FUNCTION_ATTRIBUTE": 2,
    "STORE_FAST_LOAD_FAST": 1, "STORE_FAST_STORE_FAST": 2, "TO_BOOL": 1,
})
KEPT = dict(_v312.KEPT)
IMMUTABLE_RESULT = _v312.IMMUTABLE_RESULT | {"TO_BOOL"}
READS_DEEP = _v312.READS_DEEP | {"CONVERT_VALUE", "FORMAT_SIMPLE", "FORMAT_WITH_SPEC"}

LOAD_FAST_OPS = _v312.LOAD_FAST_OPS
STORE_FAST_OPS = _v312.STORE_FAST_OPS
# Superinstructions that load two locals (pushed in this order).
LOAD_FAST_PAIRS = frozenset({"LOAD_FAST_LOAD_FAST"})


def local_loads(instr: Instr) -> tuple[str, ...] | None:
    name = instr.name
    if name in LOAD_FAST_OPS:
        return (arg(instr),)
    if name in LOAD_FAST_PAIRS:
        return tuple(arg(instr))
    if name == "STORE_FAST_LOAD_FAST":
        return (arg(instr)[1],)
    return None


def local_stores(instr: Instr) -> tuple[str, ...] | None:
    name = instr.name
    if name in STORE_FAST_OPS:
        return (arg(instr),)
    if name == "STORE_FAST_STORE_FAST":
        return tuple(arg(instr))
    if name == "STORE_FAST_LOAD_FAST":
        return (arg(instr)[0],)
    return None


def opener(instr: Instr) -> tuple[int, tuple[str, ...]] | None:
    name = instr.name
    if name == "PUSH_NULL":
        return 0, ("slot",)
    if name == "LOAD_GLOBAL" and arg(instr)[0]:
        return 0, ("callable", "slot")
    if name == "LOAD_ATTR" and arg(instr)[0]:
        return 1, ("callable", "slot")
    if name == "LOAD_SUPER_ATTR" and arg(instr)[0]:
        return 3, ("callable", "slot")
    return None


def normalize(instr: Instr) -> list[Instr]:
    loc = instr.location
    if instr.name == "LOAD_SUPER_ATTR":
        plain = Instr("LOAD_SUPER_ATTR", (False, arg(instr)[1], arg(instr)[2]), location=loc)
    else:
        plain = Instr("LOAD_ATTR", (False, arg(instr)[1]), location=loc)
    return [plain, Instr("PUSH_NULL", location=loc)]


def call_roles(instr: Instr) -> tuple[str, ...] | None:
    name = instr.name
    if name == "CALL":
        return ("callable", "slot") + ("arg",) * int(arg(instr))
    if name == "CALL_KW":
        return ("callable", "slot") + ("arg",) * int(arg(instr)) + ("kwnames",)
    if name == "CALL_FUNCTION_EX":
        return ("callable", "slot", "star") + (("kwstar",) if arg(instr) & 1 else ())
    return None


def _format_simple(value: Any) -> str:
    return format(value)


def _format_with_spec(value: Any, spec: str) -> str:
    return format(value, spec)


def pure_op(instr: Instr) -> Callable[..., Any] | None:
    """FORMAT_VALUE became CONVERT_VALUE + FORMAT_SIMPLE/FORMAT_WITH_SPEC in 3.13."""
    name = instr.name
    if name == "FORMAT_SIMPLE":
        return _format_simple
    if name == "FORMAT_WITH_SPEC":
        return _format_with_spec
    if name == "CONVERT_VALUE":
        return _v311._CONVERSIONS[int(arg(instr))]
    if name == "FORMAT_VALUE":
        return None
    return _v311.pure_op(instr)


def lazy_op(instr: Instr) -> Callable[..., Any] | None:
    return pure_op(instr) or access_op(instr)


access_op = _v312.access_op
is_subscript = _v312.is_subscript


def jump_forward_if_false(target: Label, loc: Any = None) -> list[Instr]:
    # Conditional jumps take an exact bool since 3.13 (the compiler puts TO_BOOL first).
    return [Instr("TO_BOOL", location=loc), Instr("POP_JUMP_IF_FALSE", target, location=loc)]


def split_pair(instr: Instr) -> list[Instr] | None:
    """Two plain loads for a two-local superinstruction, so that each can be resolved."""
    if instr.name in LOAD_FAST_PAIRS:
        first, second = arg(instr)
        return [Instr("LOAD_FAST", first, location=instr.location),
                Instr("LOAD_FAST", second, location=instr.location)]
    return None

