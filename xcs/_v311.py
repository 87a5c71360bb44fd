# mypy: implicit-reexport
"""CPython 3.11: the call protocol and stack model that the rewrite relies on.

Every CPython-version-specific fact that xcs uses lives in one module per
version; each later module imports the previous one and states what changed,
as CPython's own history does.  The interface (all module-level names below)
is consumed by ``_flow`` and ``_rewrite`` only.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from bytecode import Instr, Label

VERSION = (3, 11)

# The call protocol: a call site pushes a "slot" (NULL, or the unbound method
# of a method call) and the callable, then the arguments.  On 3.11 and 3.12
# the slot sits *below* the callable: ``NULL, callable, args``.  When the slot
# holds an object, CALL calls it with the callable as first argument; the
# helpers ``apply`` and ``call`` below use exactly that to call a hook.
SLOT_BELOW_CALLABLE = True
# Loads a local that may be unbound (raising UnboundLocalError, never pushing NULL).
CHECKED_LOAD_FAST = "LOAD_FAST"
CODE_AFTER_END_FOR = False  # (3.11 has no END_FOR)
# Pushes a cell object itself (to build a closure), and the instructions that do.
CELL_LOAD = "LOAD_CLOSURE"
CELL_LOADS = frozenset({"LOAD_CLOSURE"})

# Instructions glued to the CALL that follows them: nothing may be inserted
# between them and the CALL (KW_NAMES sets a register that the next CALL reads).
CALL_PREFIX = frozenset({"KW_NAMES", "PRECALL"})

# Comprehensions that are separate code objects called in place by the
# enclosing frame (PEP 709 inlined them in 3.12).
COMPREHENSIONS = frozenset({"<listcomp>", "<dictcomp>", "<setcomp>"})

_Count = int | Callable[[Any], int]


def _bits(arg: int) -> int:
    return bin(arg & 0xF).count("1")


# How many stack items each instruction reads (pops or peeks).  Instructions
# that the rewrite models specially (loads, stores, calls, containers) are
# listed too so that the depth bookkeeping of the generic path stays right.
CONSUMED: dict[str, _Count] = {
    "ASYNC_GEN_WRAP": 1, "BEFORE_ASYNC_WITH": 1, "BEFORE_WITH": 1, "BINARY_OP": 2,
    "BINARY_SUBSCR": 2, "BUILD_CONST_KEY_MAP": lambda a: a + 1, "BUILD_LIST": lambda a: a,
    "BUILD_MAP": lambda a: 2 * a, "BUILD_SET": lambda a: a, "BUILD_SLICE": lambda a: a,
    "BUILD_STRING": lambda a: a, "BUILD_TUPLE": lambda a: a, "CACHE": 0,
    "CALL": lambda a: a + 2, "CALL_FUNCTION_EX": lambda a: 3 + (a & 1),
    "CHECK_EG_MATCH": 2, "CHECK_EXC_MATCH": 2, "COMPARE_OP": 2, "CONTAINS_OP": 2,
    "COPY": lambda a: a, "COPY_FREE_VARS": 0, "DELETE_ATTR": 1, "DELETE_DEREF": 0,
    "DELETE_FAST": 0, "DELETE_GLOBAL": 0, "DELETE_NAME": 0, "DELETE_SUBSCR": 2,
    "DICT_MERGE": lambda a: a + 4, "DICT_UPDATE": lambda a: a + 1, "END_ASYNC_FOR": 2,
    "EXTENDED_ARG": 0, "FORMAT_VALUE": lambda a: 2 if a & 4 else 1, "FOR_ITER": 1,
    "GET_AITER": 1, "GET_ANEXT": 1, "GET_AWAITABLE": 1, "GET_ITER": 1, "GET_LEN": 1,
    "GET_YIELD_FROM_ITER": 1, "IMPORT_FROM": 1, "IMPORT_NAME": 2, "IMPORT_STAR": 1,
    "IS_OP": 2, "JUMP_BACKWARD": 0, "JUMP_BACKWARD_NO_INTERRUPT": 0, "JUMP_FORWARD": 0,
    "JUMP_IF_FALSE_OR_POP": 1, "JUMP_IF_TRUE_OR_POP": 1, "KW_NAMES": 0,
    "LIST_APPEND": lambda a: a + 1, "LIST_EXTEND": lambda a: a + 1, "LIST_TO_TUPLE": 1,
    "LOAD_ASSERTION_ERROR": 0, "LOAD_ATTR": 1, "LOAD_BUILD_CLASS": 0, "LOAD_CLASSDEREF": 0,
    "LOAD_CLOSURE": 0, "LOAD_CONST": 0, "LOAD_DEREF": 0, "LOAD_FAST": 0, "LOAD_GLOBAL": 0,
    "LOAD_METHOD": 1, "LOAD_NAME": 0, "MAKE_CELL": 0, "MAKE_FUNCTION": lambda a: 1 + _bits(a),
    "MAP_ADD": lambda a: a + 2, "MATCH_CLASS": 3, "MATCH_KEYS": 2, "MATCH_MAPPING": 1,
    "MATCH_SEQUENCE": 1, "NOP": 0, "POP_EXCEPT": 1, "POP_JUMP_BACKWARD_IF_FALSE": 1,
    "POP_JUMP_BACKWARD_IF_NONE": 1, "POP_JUMP_BACKWARD_IF_NOT_NONE": 1,
    "POP_JUMP_BACKWARD_IF_TRUE": 1, "POP_JUMP_FORWARD_IF_FALSE": 1,
    "POP_JUMP_FORWARD_IF_NONE": 1, "POP_JUMP_FORWARD_IF_NOT_NONE": 1,
    "POP_JUMP_FORWARD_IF_TRUE": 1, "POP_TOP": 1, "PRECALL": 0, "PREP_RERAISE_STAR": 2,
    "PRINT_EXPR": 1, "PUSH_EXC_INFO": 1, "PUSH_NULL": 0, "RAISE_VARARGS": lambda a: a,
    "RERAISE": lambda a: 1 + a, "RESUME": 0, "RETURN_GENERATOR": 0, "RETURN_VALUE": 1,
    "SEND": 2, "SETUP_ANNOTATIONS": 0, "SET_ADD": lambda a: a + 1,
    "SET_UPDATE": lambda a: a + 1, "STORE_ATTR": 2, "STORE_DEREF": 1, "STORE_FAST": 1,
    "STORE_GLOBAL": 1, "STORE_NAME": 1, "STORE_SUBSCR": 3, "SWAP": lambda a: a,
    "UNARY_INVERT": 1, "UNARY_NEGATIVE": 1, "UNARY_NOT": 1, "UNARY_POSITIVE": 1,
    "UNPACK_EX": 1, "UNPACK_SEQUENCE": 1, "WITH_EXCEPT_START": 4, "YIELD_VALUE": 1,
}

# Of the items read, how many at the bottom stay on the stack untouched (the
# list a LIST_APPEND appends to, the iterator FOR_ITER advances, ...).
KEPT: dict[str, _Count] = {
    "CHECK_EXC_MATCH": 1, "DICT_MERGE": lambda a: a + 3, "DICT_UPDATE": lambda a: a,
    "FOR_ITER": 1, "GET_ANEXT": 1, "GET_LEN": 1, "IMPORT_FROM": 1,
    "LIST_APPEND": lambda a: a, "LIST_EXTEND": lambda a: a, "MAP_ADD": lambda a: a,
    "MATCH_KEYS": 2, "MATCH_MAPPING": 1, "MATCH_SEQUENCE": 1, "SET_ADD": lambda a: a,
    "SET_UPDATE": lambda a: a, "WITH_EXCEPT_START": 4, "SEND": 1,
}

# Instructions that read none of their operands: they drop, re-raise or return
# a value, or compare identities.  (Before a return the replay waits for every
# deferred call anyway.)  Every other instruction reads the objects it consumes:
# where one may be an object a deferred call received, the replay waits first.
READS_NOTHING = frozenset({
    "CHECK_EG_MATCH", "CHECK_EXC_MATCH", "IS_OP", "NOP", "POP_EXCEPT", "POP_TOP",
    "PREP_RERAISE_STAR", "PUSH_EXC_INFO", "RAISE_VARARGS", "RERAISE", "RETURN_VALUE",
    "SEND", "WITH_EXCEPT_START", "YIELD_VALUE",
})
# Instructions that read the bottom item of those they leave on the stack: a
# pattern's subject (a placeholder is no mapping or sequence), a loop's iterator.
READS_KEPT = frozenset({"FOR_ITER", "GET_LEN", "MATCH_KEYS", "MATCH_MAPPING", "MATCH_SEQUENCE"})
# Instructions that read what their operands hold as well (``a == b`` compares
# the items of two lists, a format renders a dict's values); calls are checked
# as calls (their callable, then their arguments with what those hold).
READS_DEEP = frozenset({"BINARY_OP", "BUILD_STRING", "COMPARE_OP", "CONTAINS_OP", "FORMAT_VALUE"})


def reads_deep(instr: Instr) -> bool:
    """Does ``instr`` read what its operands hold, not only the operands themselves?"""
    return instr.name in READS_DEEP


# Instructions whose result is always a bool: never an object a call received.
IMMUTABLE_RESULT = frozenset({"CONTAINS_OP", "IS_OP", "UNARY_NOT"})

# Net stack effects that dis gets wrong: RETURN_GENERATOR pushes the generator
# that the following POP_TOP discards, but is reported with effect 0 on 3.11/3.12.
EFFECT_FIX: dict[str, int] = {"RETURN_GENERATOR": 1}

LOAD_FAST_OPS = frozenset({"LOAD_FAST"})
STORE_FAST_OPS = frozenset({"STORE_FAST"})


def arg(instr: Instr) -> Any:
    """The instruction's argument; its type depends on the opcode (bytecode types it as a union)."""
    return instr.arg


def count(table: dict[str, _Count], instr: Instr, default: int | None = None) -> int | None:
    """The entry of ``table`` for ``instr``, evaluated on its argument."""
    entry = table.get(instr.name, default)
    if callable(entry):
        value = arg(instr)
        return entry(value if isinstance(value, int) else 0)
    return entry


def local_loads(instr: Instr) -> tuple[str, ...] | None:
    """Names of the fast locals ``instr`` pushes, in push order."""
    return (arg(instr),) if instr.name in LOAD_FAST_OPS else None


def local_stores(instr: Instr) -> tuple[str, ...] | None:
    """Names of the fast locals ``instr`` stores into, in pop order (top first)."""
    return (arg(instr),) if instr.name in STORE_FAST_OPS else None


def opener(instr: Instr) -> tuple[int, tuple[str, ...]] | None:
    """For an instruction that opens a call: (items it pops, roles it pushes).

    Roles are listed bottom to top: ``"slot"`` (NULL or the unbound method) and
    ``"callable"`` (the callable, or ``self`` of an unbound method).
    """
    name = instr.name
    if name == "PUSH_NULL":
        return 0, ("slot",)
    if name == "LOAD_GLOBAL" and arg(instr)[0]:
        return 0, ("slot", "callable")
    if name == "LOAD_METHOD":
        return 1, ("slot", "callable")
    return None


def method_name(instr: Instr) -> str | None:
    """The attribute name of a method-form opener, else None."""
    return arg(instr) if instr.name == "LOAD_METHOD" else None


def normalize(instr: Instr) -> list[Instr]:
    """Rewrite a method-form opener to push ``NULL, bound method``."""
    loc = instr.location
    return [Instr("LOAD_ATTR", arg(instr), location=loc), Instr("PUSH_NULL", location=loc),
            Instr("SWAP", 2, location=loc)]


def call_roles(instr: Instr) -> tuple[str, ...] | None:
    """Roles of the stack items a call instruction consumes, bottom to top.

    ``"arg"`` items are positional and keyword values; ``"star"`` is the
    ``*args`` iterable and ``"kwstar"`` the ``**kwargs`` mapping of a
    CALL_FUNCTION_EX (``"kwnull"`` when that mapping slot holds NULL).
    """
    if instr.name == "CALL":
        return ("slot", "callable") + ("arg",) * int(arg(instr))
    if instr.name == "CALL_FUNCTION_EX":
        return ("slot", "callable", "star") + (("kwstar",) if arg(instr) & 1 else ())
    return None


def apply(hook: object, loc: Any = None) -> list[Instr]:
    """Replace the top of the stack ``x`` with ``hook(x)``, adding no frame to x."""
    return [Instr("LOAD_CONST", hook, location=loc), Instr("SWAP", 2, location=loc),
            Instr("PRECALL", 0, location=loc), Instr("CALL", 0, location=loc)]


def call(nargs: int, loc: Any = None) -> list[Instr]:
    """Call ``hook(a0, a1, ..., an)`` from a stack ``hook, a0, a1, ..., an``."""
    return [Instr("PRECALL", nargs, location=loc), Instr("CALL", nargs, location=loc)]


# Operators whose result, on builtin immutable operands (str, int, float, ...),
# depends only on the operands: when they meet a placeholder, the replay may
# compute them later instead of waiting.  BINARY_OP's argument indexes this
# table (CPython's _nb_ops: 0 add, 2 floordiv, 5 mul, 6 mod, 10 sub, 11
# truediv; +13 for the in-place forms, which must stay in-place: on a list,
# ``xs += ys`` extends xs).
_BINARY = {0: operator.add, 2: operator.floordiv, 5: operator.mul, 6: operator.mod,
           10: operator.sub, 11: operator.truediv,
           13: operator.iadd, 15: operator.ifloordiv, 18: operator.imul, 19: operator.imod,
           23: operator.isub, 24: operator.itruediv}
_CONVERSIONS: dict[int, Callable[[Any], str]] = {1: str, 2: repr, 3: ascii}


def _format_value(flags: int) -> Callable[..., Any]:
    convert = _CONVERSIONS.get(flags & 3)

    def format_value(value: Any, spec: str = "") -> str:
        return format(convert(value) if convert else value, spec)

    return format_value


def _build_string(*parts: str) -> str:
    return "".join(parts)


def in_place(instr: Instr) -> bool:
    """Is ``instr`` an augmented assignment (``x += y``), which may mutate x?"""
    return instr.name == "BINARY_OP" and 13 <= int(arg(instr)) <= 25


def pure_op(instr: Instr) -> Callable[..., Any] | None:
    """A function computing ``instr`` from its operands, for the pure operators above."""
    name = instr.name
    if name == "BINARY_OP":
        return _BINARY.get(int(arg(instr)))
    if name == "FORMAT_VALUE":
        return _format_value(arg(instr))
    if name == "BUILD_STRING":
        return _build_string
    return None


def lazy_op(instr: Instr) -> Callable[..., Any] | None:
    """A function computing ``instr`` from its operands: a pure operator or an access."""
    return pure_op(instr) or access_op(instr)


def access_op(instr: Instr) -> Callable[..., Any] | None:
    """For an instruction that reads a part of its operand (``r.choices``, ``r[0]``,
    ``a, b = r``, the method of ``r.strip()``), a function doing the same read.

    On a placeholder such a read becomes a continuation: it runs, like a deferred
    callee, when the result arrives.  The functions are C callables (or, for
    unpacking, a real UNPACK_SEQUENCE), so errors are exactly the instruction's.
    """
    name = instr.name
    if name in ("LOAD_ATTR", "LOAD_METHOD"):
        return operator.attrgetter(attr_name(instr))
    if name == "BINARY_SUBSCR":
        return operator.getitem
    if name == "UNPACK_SEQUENCE":
        return unpacker(int(arg(instr)))
    return None


def attr_name(instr: Instr) -> str:
    return str(arg(instr))


def is_subscript(instr: Instr) -> bool:
    return instr.name == "BINARY_SUBSCR"


def _slice(container: Any, start: Any, stop: Any) -> Any:
    return container[start:stop]


_UNPACKERS: dict[int, Callable[[Any], tuple[Any, ...]]] = {}
# The helpers' code objects: not shown in a failure's traceback.
UNPACK_CODES: set[Any] = {_slice.__code__}


def unpacker(n: int) -> Callable[[Any], tuple[Any, ...]]:
    """``a0, ..., an-1 = value`` as a function returning the tuple: the very
    UNPACK_SEQUENCE, so a wrong length raises what the body's would."""
    fn = _UNPACKERS.get(n)
    if fn is None:
        names = ", ".join(f"a{k}" for k in range(n))
        target = names + ("," if n == 1 else "")
        namespace: dict[str, Any] = {}
        exec(f"def unpack(value):\n    {target} = value\n    return ({target})\n"
             if n else "def unpack(value):\n    () = value\n    return ()\n", namespace)
        fn = _UNPACKERS[n] = namespace["unpack"]
        UNPACK_CODES.add(fn.__code__)
    return fn


def jump_forward_if_true(target: Label, loc: Any = None) -> Instr:
    return Instr("POP_JUMP_FORWARD_IF_TRUE", target, location=loc)


def jump_forward_if_false(target: Label, loc: Any = None) -> list[Instr]:
    """Pop the top of the stack and jump forward to ``target`` if it is false."""
    return [Instr("POP_JUMP_FORWARD_IF_FALSE", target, location=loc)]


def jump_forward(target: Label, loc: Any = None) -> Instr:
    return Instr("JUMP_FORWARD", target, location=loc)


def jump_backward(target: Label, loc: Any = None) -> Instr:
    return Instr("JUMP_BACKWARD", target, location=loc)


def is_with_enter(instr: Instr) -> bool:
    """Does ``instr`` call a context manager's ``__enter__``?"""
    return instr.name in ("BEFORE_WITH", "BEFORE_ASYNC_WITH")


def split_pair(instr: Instr) -> list[Instr] | None:
    """Two plain loads for a superinstruction that loads two locals (3.13+)."""
    return None


def unborrow(instr: Instr) -> Instr:
    """A load that holds a real reference (3.14 borrows some local loads)."""
    return instr


def return_const(instr: Instr) -> tuple[bool, object]:
    """(True, constant) for an instruction that returns a constant."""
    return False, None


def returns_value(instr: Instr) -> bool:
    return instr.name == "RETURN_VALUE"
