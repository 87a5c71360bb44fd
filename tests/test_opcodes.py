"""The bytecode interface (``_opcodes.Opcodes``) and this CPython's class behind it."""

from __future__ import annotations

import importlib
import itertools
import opcode
import operator
import types

import pytest
from bytecode import Bytecode, Instr, Label

from xcs import _compat
from xcs._opcodes import Opcodes

ops = _compat.required()
REAL = {name for name, number in opcode.opmap.items() if number < 256}


def _classes() -> list[type]:
    return [getattr(importlib.import_module(f"xcs._v{a}{b}"), f"CPython{a}{b}")
            for a, b in _compat.SUPPORTED]


def test_each_version_derives_from_the_one_before():
    """One class per CPython, each a subclass of the previous one's, all of the interface."""
    classes = _classes()
    assert [c.VERSION for c in classes] == list(_compat.SUPPORTED)
    for older, newer in itertools.pairwise(classes):
        assert newer.__bases__ == (older,), newer
    members = set(Opcodes.__annotations__) | {n for n in vars(Opcodes) if not n.startswith("_")}
    assert all(hasattr(c, name) for c in classes for name in members)  # (mypy checks the types)
    assert type(ops) is classes[_compat.SUPPORTED.index(ops.VERSION)]


def test_the_stack_model_covers_every_instruction_of_this_cpython():
    """Every real instruction has a stack count, so none falls to the unknown path."""
    counted = set(type(ops).CONSUMED)  # type: ignore[attr-defined]
    assert {n for n in REAL if not n.startswith("INSTRUMENTED")} - counted == set()


def test_the_tables_name_only_instructions_of_this_cpython():
    """A table names instructions (or the bytecode package's pseudo-instructions) this
    CPython has: a name left over from another version is a stale fact."""
    known = set(opcode.opmap)
    stale = {}
    for attr in dir(type(ops)):
        table = getattr(type(ops), attr)
        if attr.isupper() and isinstance(table, frozenset | dict) and attr != "COMPREHENSIONS":
            names = {n for n in table if isinstance(n, str)}
            if names - known:
                stale[attr] = sorted(names - known)
    assert stale == {}


def _run(items: list, *args):
    """A function made of ``items`` (after RESUME), called with ``args`` as x, y, ..."""
    bc = Bytecode([Instr("RESUME", 0), *items])
    bc.argnames = ["x", "y", "z"][:len(args)]
    bc.argcount = len(args)
    bc.name = "made"
    return types.FunctionType(bc.to_code(), {})(*args)


def test_the_emitted_sequences_do_what_they_say():
    """apply, call and the jumps, assembled into a function, run on this CPython."""
    no, yes = Label(), Label()
    test = [Instr("LOAD_FAST", "x"), *ops.apply(lambda v: v * 2), *ops.jump_forward_if_false(no),
            Instr("LOAD_CONST", "yes"), Instr("RETURN_VALUE"),
            no, Instr("LOAD_CONST", "no"), Instr("RETURN_VALUE")]
    assert (_run(test, 0), _run(test, 3)) == ("no", "yes")
    call = [Instr("LOAD_CONST", lambda a, b, c: (a, b, c)), Instr("LOAD_FAST", "x"),
            Instr("LOAD_CONST", 1), Instr("LOAD_CONST", 2), *ops.call(2), Instr("RETURN_VALUE")]
    assert _run(call, "a") == ("a", 1, 2)
    branch = [Instr("LOAD_FAST", "x"), ops.jump_forward_if_true(yes), Instr("LOAD_CONST", "f"),
              Instr("RETURN_VALUE"), yes, Instr("LOAD_CONST", "t"), Instr("RETURN_VALUE")]
    assert (_run(branch, True), _run(branch, False)) == ("t", "f")


def _instrs(fn) -> list[Instr]:
    return [i for i in Bytecode.from_code(fn.__code__) if isinstance(i, Instr)]


def test_a_call_is_read_with_the_slot_where_this_cpython_puts_it():
    """The opener and the call agree on where the slot is, and a normalized method
    opener still calls the method."""
    instrs = _instrs(lambda s: s.upper())
    k = next(k for k, i in enumerate(instrs) if ops.opener(i) is not None and ops.method_name(i))
    pops, roles = ops.opener(instrs[k])
    slot_first = ("slot", "callable") if ops.SLOT_BELOW_CALLABLE else ("callable", "slot")
    assert (pops, roles, ops.method_name(instrs[k])) == (1, slot_first, "upper")
    call = next(i for i in instrs if ops.call_roles(i) is not None)
    assert ops.call_roles(call) == slot_first
    body = instrs[:k] + ops.normalize(instrs[k]) + instrs[k + 1:]
    bc = Bytecode(body)
    bc.argnames, bc.argcount, bc.name = ["s"], 1, "upper"
    assert types.FunctionType(bc.to_code(), {})("abc") == "ABC"


def _evaluate(fn, *args):
    """Run ``fn``'s instructions on a stack, each operator and access by its ``lazy_op``:
    what a replay computes for them later."""
    stack: list = []
    for instr in _instrs(fn):
        loads = ops.local_loads(instr)
        if loads is not None:
            stack += [args[fn.__code__.co_varnames.index(name)] for name in loads]
        elif instr.name in ("LOAD_CONST", "LOAD_SMALL_INT"):
            stack.append(instr.arg)
        elif instr.name == "BUILD_SLICE":  # (3.11's ``r[1:]``; 3.14 makes it a constant)
            parts = stack[len(stack) - instr.arg:]
            del stack[len(stack) - instr.arg:]
            stack.append(slice(*parts))
        elif ops.returns_value(instr):
            return stack.pop()
        elif ops.lazy_op(instr) is not None:
            n = ops.consumed(instr)
            operands = stack[len(stack) - n:]
            del stack[len(stack) - n:]
            stack.append(ops.lazy_op(instr)(*operands))
    raise AssertionError("no return")


@pytest.mark.parametrize("fn, value, subscript", [
    (lambda r: r.real, 3, False),
    (lambda r: r[0], ["a", "b"], True),
    (lambda r: r[1:], "abc", True),
])
def test_an_access_is_computed_as_the_instruction_reads(fn, value, subscript):
    """access_op gives the very read the instruction makes (``r.a``, ``r[0]``, ``r[1:]``)."""
    reads = [i for i in _instrs(fn) if ops.access_op(i) is not None]
    assert len(reads) == 1 and ops.is_subscript(reads[0]) == subscript, reads
    assert _evaluate(fn, value) == fn(value)


@pytest.mark.parametrize("fn, args", [
    (lambda a, b: a + b, (2, 3)),
    (lambda a, b: a * b - a // b % 3 / 2, (7, 2)),
    (lambda a: f"{a!r:>6}|{a!s}{a:03}", (7,)),
    (lambda a: f"<{a}>", ("x",)),
])
def test_pure_operators_and_formats_compute_as_the_instructions_do(fn, args):
    """pure_op gives each operator and f-string part its own function (3.13 split
    FORMAT_VALUE into CONVERT_VALUE and FORMAT_SIMPLE/FORMAT_WITH_SPEC)."""
    assert _evaluate(fn, *args) == fn(*args)


def _augmented(a, b):
    a += b
    return a


def test_in_place_operators_stay_in_place():
    """``xs += ys`` is in place (a list extends), computed by iadd; ``xs + ys`` is not."""
    (aug,) = [i for i in _instrs(_augmented) if i.name == "BINARY_OP"]
    (plain,) = [i for i in _instrs(lambda a, b: a + b) if i.name == "BINARY_OP"]
    assert ops.in_place(aug) and not ops.in_place(plain)
    assert ops.pure_op(aug) is operator.iadd and ops.pure_op(plain) is operator.add
