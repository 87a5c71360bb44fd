# mypy: implicit-reexport
"""CPython 3.12: what changed in the call protocol and stack model since 3.11.

PRECALL and LOAD_METHOD are gone (LOAD_ATTR and LOAD_SUPER_ATTR carry a
method bit instead), conditional jumps lost their direction, comprehensions
are inlined into the enclosing code (PEP 709), and END_FOR/RETURN_CONST appear.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from bytecode import Instr, Label

from xcs import _v311
from xcs._v311 import (  # noqa: F401  (re-exported: unchanged since 3.11)
    CELL_LOAD,
    CELL_LOADS,
    EFFECT_FIX,
    IMMUTABLE_RESULT,
    READS_DEEP,
    READS_KEPT,
    SLOT_BELOW_CALLABLE,
    _bits,
    arg,
    count,
    in_place,
    is_with_enter,
    local_stores,
    pure_op,
    reads_deep,
    split_pair,
    unborrow,
    unpacker,
)

VERSION = (3, 12)
# LOAD_FAST no longer checks: the compiler emits LOAD_FAST_CHECK where a local may be unbound.
CHECKED_LOAD_FAST = "LOAD_FAST_CHECK"
# An exhausted FOR_ITER jumps over its END_FOR to the next instruction: code may be
# inserted there, it is where the loop exits (3.13+ put a POP_TOP or POP_ITER after
# END_FOR, which FOR_ITER skips as well: nothing may come between them).
CODE_AFTER_END_FOR = True
CALL_PREFIX = frozenset({"KW_NAMES"})
COMPREHENSIONS: frozenset[str] = frozenset()

CONSUMED = {
    name: n for name, n in _v311.CONSUMED.items()
    if name not in {"ASYNC_GEN_WRAP", "IMPORT_STAR", "JUMP_IF_FALSE_OR_POP", "JUMP_IF_TRUE_OR_POP",
                    "LIST_TO_TUPLE", "LOAD_CLASSDEREF", "LOAD_METHOD", "PRECALL",
                    "PREP_RERAISE_STAR", "PRINT_EXPR", "UNARY_POSITIVE"}
    and "_FORWARD_IF_" not in name and "_BACKWARD_IF_" not in name
}
CONSUMED.update({
    "BINARY_SLICE": 3, "CALL_INTRINSIC_1": 1, "CALL_INTRINSIC_2": 2, "CLEANUP_THROW": 3,
    "END_FOR": 2, "END_SEND": 2, "INTERPRETER_EXIT": 1, "LOAD_FAST_AND_CLEAR": 0,
    "LOAD_FAST_CHECK": 0, "LOAD_FROM_DICT_OR_DEREF": 1, "LOAD_FROM_DICT_OR_GLOBALS": 1,
    "LOAD_LOCALS": 0, "LOAD_SUPER_ATTR": 3, "POP_JUMP_IF_FALSE": 1, "POP_JUMP_IF_NONE": 1,
    "POP_JUMP_IF_NOT_NONE": 1, "POP_JUMP_IF_TRUE": 1, "RESERVED": 0, "RETURN_CONST": 0,
    "STORE_SLICE": 4,
})
KEPT = dict(_v311.KEPT)
KEPT["CLEANUP_THROW"] = 0
READS_NOTHING = _v311.READS_NOTHING | {"CLEANUP_THROW", "END_FOR", "END_SEND", "RETURN_CONST"}

LOAD_FAST_OPS = frozenset({"LOAD_FAST", "LOAD_FAST_CHECK", "LOAD_FAST_AND_CLEAR"})
STORE_FAST_OPS = _v311.STORE_FAST_OPS


def local_loads(instr: Instr) -> tuple[str, ...] | None:
    return (arg(instr),) if instr.name in LOAD_FAST_OPS else None


def opener(instr: Instr) -> tuple[int, tuple[str, ...]] | None:
    name = instr.name
    if name == "PUSH_NULL":
        return 0, ("slot",)
    if name == "LOAD_GLOBAL" and arg(instr)[0]:
        return 0, ("slot", "callable")
    if name == "LOAD_ATTR" and arg(instr)[0]:
        return 1, ("slot", "callable")
    if name == "LOAD_SUPER_ATTR" and arg(instr)[0]:
        return 3, ("slot", "callable")
    return None


def method_name(instr: Instr) -> str | None:
    if instr.name == "LOAD_ATTR" and arg(instr)[0]:
        return str(arg(instr)[1])
    return None


def normalize(instr: Instr) -> list[Instr]:
    loc = instr.location
    if instr.name == "LOAD_SUPER_ATTR":
        plain = Instr("LOAD_SUPER_ATTR", (False, arg(instr)[1], arg(instr)[2]), location=loc)
    else:
        plain = Instr("LOAD_ATTR", (False, arg(instr)[1]), location=loc)
    return [plain, Instr("PUSH_NULL", location=loc), Instr("SWAP", 2, location=loc)]


call_roles = _v311.call_roles


def attr_name(instr: Instr) -> str:
    return str(arg(instr)[1])


def access_op(instr: Instr) -> Callable[..., Any] | None:
    """LOAD_ATTR carries the method bit; LOAD_SUPER_ATTR is ``super()``'s, never a read
    of a result."""
    name = instr.name
    if name == "LOAD_ATTR":
        return operator.attrgetter(attr_name(instr))
    if name in ("BINARY_SUBSCR", "UNPACK_SEQUENCE"):
        return _v311.access_op(instr)
    if name == "BINARY_SLICE":  # ``r[1:]``
        return _v311._slice
    return None


def is_subscript(instr: Instr) -> bool:
    return instr.name in ("BINARY_SUBSCR", "BINARY_SLICE")


def lazy_op(instr: Instr) -> Callable[..., Any] | None:
    return pure_op(instr) or access_op(instr)


def apply(hook: object, loc: Any = None) -> list[Instr]:
    return [Instr("LOAD_CONST", hook, location=loc), Instr("SWAP", 2, location=loc),
            Instr("CALL", 0, location=loc)]


def call(nargs: int, loc: Any = None) -> list[Instr]:
    return [Instr("CALL", nargs, location=loc)]


def jump_forward_if_true(target: Label, loc: Any = None) -> Instr:
    return Instr("POP_JUMP_IF_TRUE", target, location=loc)


def jump_forward_if_false(target: Label, loc: Any = None) -> list[Instr]:
    return [Instr("POP_JUMP_IF_FALSE", target, location=loc)]


jump_backward = _v311.jump_backward
jump_forward = _v311.jump_forward


def return_const(instr: Instr) -> tuple[bool, object]:
    if instr.name == "RETURN_CONST":
        return True, arg(instr)
    return False, None


returns_value = _v311.returns_value
