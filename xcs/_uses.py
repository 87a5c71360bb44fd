"""Where the body needed a result, in words: for explain and the timeline.

A hook that resolves a placeholder stops the body's frame at an instruction; the
instructions after it (past xcs's own hooks) say what the body does with the
value: a branch tests it, a call receives it, the function returns it.
"""

from __future__ import annotations

from typing import Any

from xcs._compat import ops

__all__ = ["describe_use", "described_use"]

_TRUTH_TESTS = tuple(ops.TRUTH_TESTS) if ops is not None else ()
_CALLS = tuple(ops.CALLS) if ops is not None else ()
_ATTRIBUTE_LOADS = tuple(ops.ATTRIBUTE_LOADS) if ops is not None else ("LOAD_ATTR",)
# What the body did with a value, from the instruction that needed it.
_NEEDS = (
    (("POP_JUMP", "JUMP_IF", "UNARY_NOT", *_TRUTH_TESTS), "a branch ('if', 'while', 'and'/'or') tests it"),
    (("RETURN",), "the function returns it"),
    (("CALL", *_CALLS), "a call that is not deferred receives it"),
    (("COMPARE_OP",), "a comparison reads it"),
    (("CONTAINS_OP",), "'in' reads it"),
    (("IS_OP",), "'is' tests it"),
    (("GET_ITER", "FOR_ITER"), "a loop iterates over it"),
    (("STORE_ATTR",), "it is stored in an attribute"),
    (("STORE_SUBSCR",), "it is stored in a container the function did not build"),
    (("STORE_GLOBAL", "STORE_DEREF", "STORE_NAME"), "it is stored outside the function"),
    (("UNPACK",), "it is unpacked"),
    (("MATCH",), "a 'match' tests it"),
    (("FORMAT", "BUILD_STRING", "BINARY_OP"), "an operator or format reads it"),
    (_ATTRIBUTE_LOADS, "an attribute of it is read"),
)
_SKIPPED = frozenset({"CACHE", "COPY", "SWAP", "POP_TOP", "NOP", "PUSH_NULL", "EXTENDED_ARG"})
_described: dict[tuple[Any, int], str] = {}


def _emitted() -> tuple[list[str], frozenset[str]]:
    """The instructions of the rewrite's own test of a switch (``if OWNED:``) and of
    its call of a hook: what a description skips."""
    if ops is None:
        return [], frozenset()
    from bytecode import Label

    return [x.name for x in ops.jump_forward_if_false(Label())], frozenset(x.name for x in ops.call(0))


_GUARD, _HOOK_CALL = _emitted()


_listings: dict[Any, tuple[list[int], list[Any]]] = {}


def describe_use(code: Any, lasti: int, line: int) -> str:
    """``line 42: a branch ('if', ...) tests it (if reference is not None:)``: where the
    body's frame, stopped at a hook that resolves a value at instruction ``lasti`` of
    ``code`` (at ``line``), needs the value."""
    key = (code, lasti)
    text = _described.get(key)
    if text is None:
        import bisect
        import dis
        import linecache

        listing = _listings.get(code)
        if listing is None:
            instrs = list(dis.get_instructions(code))
            listing = _listings[code] = ([i.offset for i in instrs], instrs)
            if len(_listings) > 64:
                _listings.pop(next(iter(_listings)))
        offsets, instrs = listing
        what = "the body reads it"
        hooks = 0
        test = False
        for ins in instrs[bisect.bisect_right(offsets, lasti):]:
            owner = getattr(ins.argval, "__module__", None) or type(ins.argval).__module__
            if ins.opname == "LOAD_CONST" and str(owner).startswith("xcs"):
                if callable(ins.argval):
                    hooks += 1  # another hook: skip it and its call
                else:
                    test = True  # ``if OWNED:`` before a touch: skip the test
                continue
            if test and ins.opname in _GUARD:
                test = ins.opname != _GUARD[-1]
                continue
            if ins.opname in _SKIPPED or (hooks and ins.opname in _HOOK_CALL):
                if ins.opname == "CALL":
                    hooks = max(0, hooks - 1)
                continue
            what = next((text for prefixes, text in _NEEDS
                         if ins.opname.startswith(prefixes)), f"{ins.opname} reads it")
            break
        source = linecache.getline(code.co_filename, line).strip()
        text = f"line {line}: {what}" + (f" ({source})" if source else "")
        if len(_described) < 4096:
            _described[key] = text
    return text


def described_use(where: Any) -> str | None:
    """``describe_use(*where)``, or None when there is no ``where`` or describing fails
    (it is only for explain: it never breaks a trial or a replay)."""
    if where is None:
        return None
    try:
        return describe_use(*where)
    except Exception:  # only for explain: never let it break a trial
        return None
