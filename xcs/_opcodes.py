"""The interface between xcs and one CPython version's bytecode: ``Opcodes``.

Every version-specific fact xcs relies on (the call protocol, stack effects,
which instructions read or change their operands, how to emit a call, a jump,
a return) is a member of ``Opcodes``, named by what xcs wants to know.  One
class per version implements it (``_v311.CPython311``, and each later one
derives from the previous and overrides what changed: tables as attributes,
methods only where the rule itself changed).  ``_compat`` picks the class for
the running interpreter, once, at import.  The helpers at the end of this
module read instructions the same way on every version.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from bytecode import Instr, Label

Count = int | Callable[[int], int]  # a table entry: a number, or one computed from the argument


class Opcodes(Protocol):
    """What xcs needs to know about one CPython version's bytecode."""

    VERSION: ClassVar[tuple[int, int]]
    # The call protocol: is the slot (NULL or an unbound method's function) below the callable?
    SLOT_BELOW_CALLABLE: ClassVar[bool]
    # The load of a local that raises UnboundLocalError (never pushing NULL).
    CHECKED_LOAD_FAST: ClassVar[str]
    # The instruction that pushes a cell itself, to build a closure; all that do.
    CELL_LOAD: ClassVar[str]
    CELL_LOADS: ClassVar[frozenset[str]]
    # Instructions glued to the call that follows them: nothing may come between.
    CALL_PREFIX: ClassVar[frozenset[str]]
    # Every instruction that makes a call, its glued prefix included.
    CALLS: ClassVar[frozenset[str]]
    # Names of comprehensions that are code objects of their own, called in place.
    COMPREHENSIONS: ClassVar[frozenset[str]]
    # Instructions that read none of their operands; that read the bottom item they keep.
    READS_NOTHING: ClassVar[frozenset[str]]
    READS_KEPT: ClassVar[frozenset[str]]
    # Instructions whose result is a bool (never an object a call received).
    IMMUTABLE_RESULT: ClassVar[frozenset[str]]
    # Instructions that change an operand (``x[i] = v``, ``del x.a``); that change
    # state outside the frame.
    CHANGES_OPERAND: ClassVar[frozenset[str]]
    SIDE_EFFECTS: ClassVar[frozenset[str]]
    # Instructions that return their top operand, changed; that build a dict from
    # values under a tuple of keys on top.
    RETURNS_TOP: ClassVar[frozenset[str]]
    KEY_TUPLE_MAPS: ClassVar[frozenset[str]]
    # Net stack effects that ``dis`` reports wrongly.
    EFFECT_FIX: ClassVar[dict[str, int]]
    # Loads of one local; loads of an attribute; returns of a constant.
    LOAD_FAST_OPS: ClassVar[frozenset[str]]
    ATTRIBUTE_LOADS: ClassVar[frozenset[str]]
    RETURNS_CONST: ClassVar[frozenset[str]]
    # Instructions that only mark a place for sys.monitoring; that test a value
    # for truth before a branch (without a jump of their own).
    MARKERS: ClassVar[frozenset[str]]
    TRUTH_TESTS: ClassVar[frozenset[str]]

    def consumed(self, instr: Instr) -> int | None:
        """How many stack items ``instr`` reads (pops or peeks), if known."""

    def kept(self, instr: Instr) -> int:
        """Of the items ``instr`` reads, how many at the bottom stay untouched."""

    def local_loads(self, instr: Instr) -> tuple[str, ...] | None:
        """Names of the fast locals ``instr`` pushes, in push order."""

    def local_stores(self, instr: Instr) -> tuple[str, ...] | None:
        """Names of the fast locals ``instr`` stores into, in pop order (top first)."""

    def clears_local(self, instr: Instr) -> bool:
        """Does ``instr`` push a local and unbind it (an inlined comprehension's save)?"""

    def opener(self, instr: Instr) -> tuple[int, tuple[str, ...]] | None:
        """For an instruction that opens a call: (items it pops, roles it pushes)."""

    def method_name(self, instr: Instr) -> str | None:
        """The attribute name of a method-form opener."""

    def normalize(self, instr: Instr) -> list[Instr]:
        """Rewrite a method-form opener to push a plain callable and NULL."""

    def call_roles(self, instr: Instr) -> tuple[str, ...] | None:
        """Roles of the stack items a call instruction consumes, bottom to top."""

    def apply(self, hook: object, loc: Any = None) -> list[Instr]:
        """Replace the top of the stack ``x`` with ``hook(x)``."""

    def call(self, nargs: int, loc: Any = None) -> list[Instr]:
        """Call ``hook(a0, ..., an)`` from a stack ``hook, a0, ..., an``."""

    def reads_deep(self, instr: Instr) -> bool:
        """Does ``instr`` read what its operands hold, not only the operands?"""

    def in_place(self, instr: Instr) -> bool:
        """Is ``instr`` an augmented assignment (``x += y``), which may mutate x?"""

    def pure_op(self, instr: Instr) -> Callable[..., Any] | None:
        """A function computing ``instr`` from builtin immutable operands."""

    def access_op(self, instr: Instr) -> Callable[..., Any] | None:
        """A function doing the read ``instr`` makes of its operand (``r.a``, ``r[0]``)."""

    def lazy_op(self, instr: Instr) -> Callable[..., Any] | None:
        """``pure_op`` or ``access_op``: what the replay may compute later."""

    def attr_name(self, instr: Instr) -> str:
        """The attribute an attribute load reads."""

    def is_subscript(self, instr: Instr) -> bool:
        """Is ``instr`` a subscript or slice read (``r[0]``, ``r[1:]``)?"""

    def is_with_enter(self, instr: Instr) -> bool:
        """Does ``instr`` start the call of a context manager's ``__enter__``?"""

    def jump_forward_if_true(self, target: Label, loc: Any = None) -> Instr:
        """Pop the top of the stack and jump to ``target`` if it is true."""

    def jump_forward_if_false(self, target: Label, loc: Any = None) -> list[Instr]:
        """Pop the top of the stack and jump to ``target`` if it is false."""

    def jump_forward(self, target: Label, loc: Any = None) -> Instr:
        """Jump forward to ``target``."""

    def jump_backward(self, target: Label, loc: Any = None) -> Instr:
        """Jump back to ``target``."""

    def split_pair(self, instr: Instr) -> list[Instr] | None:
        """Two plain loads for a superinstruction that loads two locals."""

    def unborrow(self, instr: Instr) -> Instr:
        """A load that holds a real reference in place of a borrowing one."""

    def return_const(self, instr: Instr) -> tuple[bool, object]:
        """(True, constant) for an instruction that returns a constant."""

    def returns_value(self, instr: Instr) -> bool:
        """Does ``instr`` return the top of the stack?"""

    def after_loop_end(self, instrs: list[Instr], where: int) -> bool:
        """Is ``instrs[where]`` glued to a loop's end, where nothing may be inserted?"""


# Operators whose result, on builtin immutable operands (str, int, float, ...),
# depends only on the operands: when they meet a placeholder, the replay may
# compute them later instead of waiting.  BINARY_OP's argument indexes this
# table (CPython's _nb_ops: 0 add, 2 floordiv, 5 mul, 6 mod, 10 sub, 11
# truediv; +13 for the in-place forms, which must stay in-place: on a list,
# ``xs += ys`` extends xs).
BINARY_OPS = {0: operator.add, 2: operator.floordiv, 5: operator.mul, 6: operator.mod,
              10: operator.sub, 11: operator.truediv,
              13: operator.iadd, 15: operator.ifloordiv, 18: operator.imul, 19: operator.imod,
              23: operator.isub, 24: operator.itruediv}


def arg(instr: Instr) -> Any:
    """The instruction's argument; its type depends on the opcode (bytecode types it as a union)."""
    return instr.arg


def count(table: dict[str, Count], instr: Instr, default: int | None = None) -> int | None:
    """The entry of ``table`` for ``instr``, evaluated on its argument."""
    entry = table.get(instr.name, default)
    if callable(entry):
        value = arg(instr)
        return entry(value if isinstance(value, int) else 0)
    return entry


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
