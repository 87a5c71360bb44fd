# mypy: implicit-reexport
"""CPython 3.14: what changed in the call protocol and stack model since 3.13.

``with`` calls ``__enter__``/``__exit__`` through LOAD_SPECIAL and CALL,
CALL_FUNCTION_EX always has a ``**kwargs`` slot (NULL when absent), some local
loads borrow their reference, and RETURN_CONST/BINARY_SUBSCR/BEFORE_WITH are gone.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from bytecode import Instr

from xcs import _v313
from xcs._v313 import (  # noqa: F401  (re-exported: unchanged since 3.13)
    CALL_PREFIX,
    CELL_LOAD,
    CHECKED_LOAD_FAST,
    CODE_AFTER_END_FOR,
    COMPREHENSIONS,
    EFFECT_FIX,
    IMMUTABLE_RESULT,
    READS_KEPT,
    SLOT_BELOW_CALLABLE,
    _bits,
    apply,
    arg,
    attr_name,
    call,
    count,
    in_place,
    jump_backward,
    jump_forward,
    jump_forward_if_false,
    jump_forward_if_true,
    method_name,
    normalize,
    opener,
    pure_op,
    return_const,
    returns_value,
    unpacker,
)

VERSION = (3, 14)

CONSUMED = {name: n for name, n in _v313.CONSUMED.items()
            if name not in {"BEFORE_ASYNC_WITH", "BEFORE_WITH", "BINARY_SUBSCR",
                            "BUILD_CONST_KEY_MAP", "RETURN_CONST"}}
CONSUMED.update({
    "BUILD_INTERPOLATION": lambda a: 2 + (a & 1), "BUILD_SLICE": lambda a: a,
    "BUILD_TEMPLATE": 2, "CALL_FUNCTION_EX": 4, "LOAD_COMMON_CONSTANT": 0,
    "LOAD_FAST_BORROW": 0, "LOAD_FAST_BORROW_LOAD_FAST_BORROW": 0, "LOAD_SMALL_INT": 0,
    "LOAD_SPECIAL": 1, "NOT_TAKEN": 0, "POP_ITER": 1, "WITH_EXCEPT_START": 5,
    "ANNOTATIONS_PLACEHOLDER": 0,
})
KEPT = dict(_v313.KEPT)
KEPT["WITH_EXCEPT_START"] = 5
READS_NOTHING = _v313.READS_NOTHING | {"NOT_TAKEN", "POP_ITER"}
READS_DEEP = _v313.READS_DEEP | {"BUILD_INTERPOLATION", "BUILD_TEMPLATE"}

LOAD_FAST_OPS = _v313.LOAD_FAST_OPS | {"LOAD_FAST_BORROW"}
CELL_LOADS = _v313.CELL_LOADS | {"LOAD_FAST_BORROW"}
STORE_FAST_OPS = _v313.STORE_FAST_OPS
LOAD_FAST_PAIRS = _v313.LOAD_FAST_PAIRS | {"LOAD_FAST_BORROW_LOAD_FAST_BORROW"}


def local_loads(instr: Instr) -> tuple[str, ...] | None:
    name = instr.name
    if name in LOAD_FAST_OPS:
        return (arg(instr),)
    if name in LOAD_FAST_PAIRS:
        return tuple(arg(instr))
    if name == "STORE_FAST_LOAD_FAST":
        return (arg(instr)[1],)
    return None


local_stores = _v313.local_stores


def split_pair(instr: Instr) -> list[Instr] | None:
    if instr.name in LOAD_FAST_PAIRS:
        first, second = arg(instr)
        return [Instr("LOAD_FAST", first, location=instr.location),
                Instr("LOAD_FAST", second, location=instr.location)]
    return None


def call_roles(instr: Instr) -> tuple[str, ...] | None:
    if instr.name == "CALL_FUNCTION_EX":
        return ("callable", "slot", "star", "kwstar")
    return _v313.call_roles(instr)


def reads_deep(instr: Instr) -> bool:
    # BINARY_SUBSCR became BINARY_OP with oparg NB_SUBSCR (26): ``models[0]`` looks
    # at the list, not inside its items.
    if instr.name == "BINARY_OP" and arg(instr) == NB_SUBSCR:
        return False
    return _v313.reads_deep(instr)


def is_with_enter(instr: Instr) -> bool:
    # ``with`` is COPY 1; LOAD_SPECIAL __exit__; SWAP 2; SWAP 3;
    # LOAD_SPECIAL __enter__; CALL 0.  The first LOAD_SPECIAL starts it.
    return instr.name == "LOAD_SPECIAL"


def unborrow(instr: Instr) -> Instr:
    # A borrowed load relies on the compiler's proof that the local outlives
    # the stack item; instructions inserted by the rewrite would void that proof.
    if instr.name == "LOAD_FAST_BORROW":
        return Instr("LOAD_FAST", arg(instr), location=instr.location)
    if instr.name == "LOAD_FAST_BORROW_LOAD_FAST_BORROW":
        return Instr("LOAD_FAST_LOAD_FAST", arg(instr), location=instr.location)
    return instr


NB_SUBSCR = 26  # BINARY_OP's argument for ``x[i]`` (BINARY_SUBSCR until 3.13)


def is_subscript(instr: Instr) -> bool:
    return (instr.name == "BINARY_OP" and arg(instr) == NB_SUBSCR) or _v313.is_subscript(instr)


def access_op(instr: Instr) -> Callable[..., Any] | None:
    if instr.name == "BINARY_OP" and arg(instr) == NB_SUBSCR:
        return operator.getitem
    return _v313.access_op(instr)


def lazy_op(instr: Instr) -> Callable[..., Any] | None:
    return pure_op(instr) or access_op(instr)
