# mypy: implicit-reexport
"""CPython 3.15: what changed in the call protocol and stack model since 3.14.

A for-loop iterator occupies two stack items (the iterable and an index), so
GET_ITER pushes two, FOR_ITER keeps two and POP_ITER pops two.
"""

from __future__ import annotations

from xcs import _v314
from xcs._v314 import (  # noqa: F401  (re-exported: unchanged since 3.14)
    CALL_PREFIX,
    CELL_LOAD,
    CELL_LOADS,
    CHECKED_LOAD_FAST,
    CODE_AFTER_END_FOR,
    COMPREHENSIONS,
    EFFECT_FIX,
    IMMUTABLE_RESULT,
    LOAD_FAST_OPS,
    LOAD_FAST_PAIRS,
    READS_DEEP,
    READS_KEPT,
    READS_NOTHING,
    SLOT_BELOW_CALLABLE,
    STORE_FAST_OPS,
    _bits,
    access_op,
    apply,
    arg,
    attr_name,
    call,
    call_roles,
    count,
    in_place,
    is_subscript,
    is_with_enter,
    jump_backward,
    jump_forward,
    jump_forward_if_false,
    jump_forward_if_true,
    lazy_op,
    local_loads,
    local_stores,
    method_name,
    normalize,
    opener,
    pure_op,
    reads_deep,
    return_const,
    returns_value,
    split_pair,
    unborrow,
    unpacker,
)

VERSION = (3, 15)

CONSUMED = dict(_v314.CONSUMED)
CONSUMED.update({"CLEANUP_THROW": 4, "END_SEND": 3, "FOR_ITER": 2, "POP_ITER": 2, "SEND": 3,
                 "TRACE_RECORD": 0})
KEPT = dict(_v314.KEPT)
KEPT.update({"FOR_ITER": 2, "SEND": 2})
