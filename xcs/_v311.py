"""CPython 3.11: the call protocol and stack model that the rewrite relies on.

``CPython311`` implements ``_opcodes.Opcodes``; each later version's class derives
from the previous one and states what changed, as CPython's own history does.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, ClassVar

from bytecode import Instr, Label

from xcs._opcodes import BINARY_OPS, Count, arg, count, unpacker

__all__ = ["CPython311"]


def _bits(arg: int) -> int:
    return bin(arg & 0xF).count("1")


def _format_value(convert: Callable[[Any], str] | None) -> Callable[..., Any]:
    def format_value(value: Any, spec: str = "") -> str:
        return format(convert(value) if convert else value, spec)

    return format_value


def _build_string(*parts: str) -> str:
    return "".join(parts)


# How many stack items each instruction reads (pops or peeks).  Instructions
# that the rewrite models specially (loads, stores, calls, containers) are
# listed too so that the depth bookkeeping of the generic path stays right.
_CONSUMED: dict[str, Count] = {
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
_KEPT: dict[str, Count] = {
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
_READS_NOTHING = frozenset({
    "CHECK_EG_MATCH", "CHECK_EXC_MATCH", "IS_OP", "NOP", "POP_EXCEPT", "POP_TOP",
    "PREP_RERAISE_STAR", "PUSH_EXC_INFO", "RAISE_VARARGS", "RERAISE", "RETURN_VALUE",
    "SEND", "WITH_EXCEPT_START", "YIELD_VALUE",
})
# Instructions that read the bottom item of those they leave on the stack: a
# pattern's subject (a placeholder is no mapping or sequence), a loop's iterator.
_READS_KEPT = frozenset({
    "FOR_ITER", "GET_LEN", "MATCH_KEYS", "MATCH_MAPPING", "MATCH_SEQUENCE"})


class CPython311:
    """The bytecode of CPython 3.11 (see ``_opcodes.Opcodes`` for what each member means)."""

    VERSION: ClassVar[tuple[int, int]] = (3, 11)

    # The call protocol: a call site pushes a "slot" (NULL, or the unbound method
    # of a method call) and the callable, then the arguments.  On 3.11 and 3.12
    # the slot sits *below* the callable: ``NULL, callable, args``.  When the slot
    # holds an object, CALL calls it with the callable as first argument; ``apply``
    # and ``call`` below use exactly that to call a hook.
    SLOT_BELOW_CALLABLE: ClassVar[bool] = True
    # Loads a local that may be unbound (raising UnboundLocalError, never pushing NULL).
    CHECKED_LOAD_FAST: ClassVar[str] = "LOAD_FAST"
    CODE_AFTER_END_FOR: ClassVar[bool] = False  # (3.11 has no END_FOR)
    LOOP_ENDS: ClassVar[frozenset[str]] = frozenset()
    # Pushes a cell object itself (to build a closure), and the instructions that do.
    CELL_LOAD: ClassVar[str] = "LOAD_CLOSURE"
    CELL_LOADS: ClassVar[frozenset[str]] = frozenset({"LOAD_CLOSURE"})
    # Instructions glued to the CALL that follows them: nothing may be inserted
    # between them and the CALL (KW_NAMES sets a register that the next CALL reads).
    CALL_PREFIX: ClassVar[frozenset[str]] = frozenset({"KW_NAMES", "PRECALL"})
    CALLS: ClassVar[frozenset[str]] = frozenset({"CALL", "CALL_FUNCTION_EX", "PRECALL"})
    # Comprehensions that are separate code objects called in place by the
    # enclosing frame (PEP 709 inlined them in 3.12).
    COMPREHENSIONS: ClassVar[frozenset[str]] = frozenset({"<listcomp>", "<dictcomp>", "<setcomp>"})

    CONSUMED: ClassVar[dict[str, Count]] = _CONSUMED
    KEPT: ClassVar[dict[str, Count]] = _KEPT
    READS_NOTHING: ClassVar[frozenset[str]] = _READS_NOTHING
    READS_KEPT: ClassVar[frozenset[str]] = _READS_KEPT
    # Instructions that read what their operands hold as well (``a == b`` compares
    # the items of two lists, a format renders a dict's values); calls are checked
    # as calls (their callable, then their arguments with what those hold).
    READS_DEEP: ClassVar[frozenset[str]] = frozenset({
        "BINARY_OP", "BUILD_STRING", "COMPARE_OP", "CONTAINS_OP", "FORMAT_VALUE"})
    # Instructions whose result is always a bool: never an object a call received.
    IMMUTABLE_RESULT: ClassVar[frozenset[str]] = frozenset({"CONTAINS_OP", "IS_OP", "UNARY_NOT"})
    # Instructions (besides calls and in-place operators) that change an operand.
    CHANGES_OPERAND: ClassVar[frozenset[str]] = frozenset({
        "STORE_SUBSCR", "DELETE_SUBSCR", "STORE_ATTR", "DELETE_ATTR"})
    # Instructions that change state outside the frame: before them the body
    # waits for the calls it deferred, so that when one of those fails, the body
    # stops where the plain function would have stopped.
    SIDE_EFFECTS: ClassVar[frozenset[str]] = frozenset({
        "STORE_ATTR", "DELETE_ATTR", "STORE_GLOBAL", "DELETE_GLOBAL", "STORE_NAME",
        "DELETE_NAME", "STORE_DEREF", "DELETE_DEREF", "DELETE_SUBSCR", "IMPORT_NAME"})
    # Instructions that return their top operand, changed (a function's defaults set).
    RETURNS_TOP: ClassVar[frozenset[str]] = frozenset()
    # Instructions that build a dict from values under a tuple of keys on top.
    KEY_TUPLE_MAPS: ClassVar[frozenset[str]] = frozenset({"BUILD_CONST_KEY_MAP"})

    # Net stack effects that dis gets wrong: RETURN_GENERATOR pushes the generator
    # that the following POP_TOP discards, but is reported with effect 0 on 3.11/3.12.
    EFFECT_FIX: ClassVar[dict[str, int]] = {"RETURN_GENERATOR": 1}

    LOAD_FAST_OPS: ClassVar[frozenset[str]] = frozenset({"LOAD_FAST"})
    STORE_FAST_OPS: ClassVar[frozenset[str]] = frozenset({"STORE_FAST"})
    # Superinstructions that load two locals (pushed in this order), or store one
    # and load another (3.13+).
    LOAD_FAST_PAIRS: ClassVar[frozenset[str]] = frozenset()
    STORE_LOAD_PAIRS: ClassVar[frozenset[str]] = frozenset()
    STORE_FAST_PAIRS: ClassVar[frozenset[str]] = frozenset()
    # Loads that push a local and unbind it (an inlined comprehension saves its
    # variable so, 3.12+).
    CLEARING_LOADS: ClassVar[frozenset[str]] = frozenset()
    # Loads of an attribute (3.11 loads a method's with LOAD_METHOD).
    ATTRIBUTE_LOADS: ClassVar[frozenset[str]] = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
    # Instructions that return a constant (3.12 and 3.13 have one).
    RETURNS_CONST: ClassVar[frozenset[str]] = frozenset()
    # Instructions that only mark a place for sys.monitoring (no code of their own).
    MARKERS: ClassVar[frozenset[str]] = frozenset()
    # Instructions that test a value for truth before a branch, without a jump of their own.
    TRUTH_TESTS: ClassVar[frozenset[str]] = frozenset()

    # The conversions of ``f"{x!s}"``, ``!r`` and ``!a``, by FORMAT_VALUE's flags & 3
    # (CONVERT_VALUE's argument since 3.13).
    CONVERSIONS: ClassVar[dict[int, Callable[[Any], str]]] = {1: str, 2: repr, 3: ascii}

    # -- reading instructions -------------------------------------------------
    def consumed(self, instr: Instr) -> int | None:
        return count(self.CONSUMED, instr)

    def kept(self, instr: Instr) -> int:
        return count(self.KEPT, instr, 0) or 0

    def reads_deep(self, instr: Instr) -> bool:
        return instr.name in self.READS_DEEP

    def local_loads(self, instr: Instr) -> tuple[str, ...] | None:
        name = instr.name
        if name in self.LOAD_FAST_OPS:
            return (arg(instr),)
        if name in self.LOAD_FAST_PAIRS:
            return tuple(arg(instr))
        if name in self.STORE_LOAD_PAIRS:
            return (arg(instr)[1],)
        return None

    def local_stores(self, instr: Instr) -> tuple[str, ...] | None:
        name = instr.name
        if name in self.STORE_FAST_OPS:
            return (arg(instr),)
        if name in self.STORE_FAST_PAIRS:
            return tuple(arg(instr))
        if name in self.STORE_LOAD_PAIRS:
            return (arg(instr)[0],)
        return None

    def clears_local(self, instr: Instr) -> bool:
        return instr.name in self.CLEARING_LOADS

    def split_pair(self, instr: Instr) -> list[Instr] | None:
        if instr.name in self.LOAD_FAST_PAIRS:
            first, second = arg(instr)
            return [Instr("LOAD_FAST", first, location=instr.location),
                    Instr("LOAD_FAST", second, location=instr.location)]
        return None

    def unborrow(self, instr: Instr) -> Instr:
        return instr

    def return_const(self, instr: Instr) -> tuple[bool, object]:
        if instr.name in self.RETURNS_CONST:
            return True, arg(instr)
        return False, None

    def returns_value(self, instr: Instr) -> bool:
        return instr.name == "RETURN_VALUE"

    def is_with_enter(self, instr: Instr) -> bool:
        return instr.name in ("BEFORE_WITH", "BEFORE_ASYNC_WITH")

    def after_loop_end(self, instrs: list[Instr], where: int) -> bool:
        return instrs[where].name in self.LOOP_ENDS or (
            where > 0 and instrs[where - 1].name == "END_FOR" and not self.CODE_AFTER_END_FOR)

    # -- the call protocol ----------------------------------------------------
    def opener(self, instr: Instr) -> tuple[int, tuple[str, ...]] | None:
        """For an instruction that opens a call: (items it pops, roles it pushes).

        Roles are listed bottom to top: ``"slot"`` (NULL or the unbound method) and
        ``"callable"`` (the callable, or ``self`` of an unbound method).
        """
        name = instr.name
        if name == "PUSH_NULL":
            return 0, ("slot",)
        if name == "LOAD_GLOBAL" and arg(instr)[0]:
            return 0, self._opened()
        if name == "LOAD_METHOD":
            return 1, self._opened()
        return None

    def _opened(self) -> tuple[str, ...]:
        """The roles an opener of callable and slot pushes, bottom to top."""
        return ("slot", "callable") if self.SLOT_BELOW_CALLABLE else ("callable", "slot")

    def method_name(self, instr: Instr) -> str | None:
        return arg(instr) if instr.name == "LOAD_METHOD" else None

    def normalize(self, instr: Instr) -> list[Instr]:
        """Rewrite a method-form opener to push ``NULL, bound method``."""
        loc = instr.location
        return [Instr("LOAD_ATTR", arg(instr), location=loc), *self._null_after(loc)]

    def _null_after(self, loc: Any) -> list[Instr]:
        """After a plain load of the callable: the NULL slot, in its place."""
        if self.SLOT_BELOW_CALLABLE:
            return [Instr("PUSH_NULL", location=loc), Instr("SWAP", 2, location=loc)]
        return [Instr("PUSH_NULL", location=loc)]

    def call_roles(self, instr: Instr) -> tuple[str, ...] | None:
        """Roles of the stack items a call instruction consumes, bottom to top.

        ``"arg"`` items are positional and keyword values; ``"star"`` is the
        ``*args`` iterable and ``"kwstar"`` the ``**kwargs`` mapping of a
        CALL_FUNCTION_EX (``"kwnull"`` when that mapping slot holds NULL).
        """
        if instr.name == "CALL":
            return self._opened() + ("arg",) * int(arg(instr))
        if instr.name == "CALL_FUNCTION_EX":
            return self._opened() + ("star",) + (("kwstar",) if arg(instr) & 1 else ())
        return None

    def apply(self, hook: object, loc: Any = None) -> list[Instr]:
        """Replace the top of the stack ``x`` with ``hook(x)``, adding no frame to x."""
        return [Instr("LOAD_CONST", hook, location=loc), Instr("SWAP", 2, location=loc),
                *self.call(0, loc)]

    def call(self, nargs: int, loc: Any = None) -> list[Instr]:
        return [Instr("PRECALL", nargs, location=loc), Instr("CALL", nargs, location=loc)]

    # -- operators the replay may compute later --------------------------------
    def in_place(self, instr: Instr) -> bool:
        return instr.name == "BINARY_OP" and 13 <= int(arg(instr)) <= 25

    def pure_op(self, instr: Instr) -> Callable[..., Any] | None:
        name = instr.name
        if name == "BINARY_OP":
            return BINARY_OPS.get(int(arg(instr)))
        if name == "FORMAT_VALUE":
            return _format_value(self.CONVERSIONS.get(arg(instr) & 3))
        if name == "BUILD_STRING":
            return _build_string
        return None

    def lazy_op(self, instr: Instr) -> Callable[..., Any] | None:
        return self.pure_op(instr) or self.access_op(instr)

    def access_op(self, instr: Instr) -> Callable[..., Any] | None:
        """For an instruction that reads a part of its operand (``r.choices``, ``r[0]``,
        ``a, b = r``, the method of ``r.strip()``), a function doing the same read.

        On a placeholder such a read becomes a continuation: it runs, like a deferred
        callee, when the result arrives.  The functions are C callables (or, for
        unpacking, a real UNPACK_SEQUENCE), so errors are exactly the instruction's.
        """
        name = instr.name
        if name in self.ATTRIBUTE_LOADS:
            return operator.attrgetter(self.attr_name(instr))
        if self.is_subscript(instr):
            return self._subscript(instr)
        if name == "UNPACK_SEQUENCE":
            return unpacker(int(arg(instr)))
        return None

    def _subscript(self, instr: Instr) -> Callable[..., Any]:
        return operator.getitem

    def attr_name(self, instr: Instr) -> str:
        return str(arg(instr))

    def is_subscript(self, instr: Instr) -> bool:
        return instr.name == "BINARY_SUBSCR"

    # -- jumps ----------------------------------------------------------------
    def jump_forward_if_true(self, target: Label, loc: Any = None) -> Instr:
        return Instr("POP_JUMP_FORWARD_IF_TRUE", target, location=loc)

    def jump_forward_if_false(self, target: Label, loc: Any = None) -> list[Instr]:
        return [Instr("POP_JUMP_FORWARD_IF_FALSE", target, location=loc)]

    def jump_forward(self, target: Label, loc: Any = None) -> Instr:
        return Instr("JUMP_FORWARD", target, location=loc)

    def jump_backward(self, target: Label, loc: Any = None) -> Instr:
        return Instr("JUMP_BACKWARD", target, location=loc)
