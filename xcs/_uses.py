"""Where the body needed a result, in words: for explain and the timeline.

A hook that resolves a placeholder stops the body's frame at an instruction; the
instructions after it (past xcs's own hooks) say what the body does with the
value: a branch tests it, a call receives it, the function returns it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["describe_use", "described_use"]

# What the body did with a value, from the instruction that needed it.
_NEEDS = (
    (("POP_JUMP", "JUMP_IF", "TO_BOOL", "UNARY_NOT"), "a branch ('if', 'while', 'and'/'or') tests it"),
    (("RETURN",), "the function returns it"),
    (("CALL", "PRECALL"), "a call that is not deferred receives it"),
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
    (("LOAD_ATTR", "LOAD_METHOD"), "an attribute of it is read"),
)
_SKIPPED = frozenset({"CACHE", "COPY", "SWAP", "POP_TOP", "NOP", "PUSH_NULL", "EXTENDED_ARG"})
_described: dict[tuple[Any, int], str] = {}


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
            if test and ins.opname in ("TO_BOOL", "POP_JUMP_IF_FALSE",
                                       "POP_JUMP_FORWARD_IF_FALSE"):
                test = ins.opname == "TO_BOOL"
                continue
            if ins.opname in _SKIPPED or (hooks and ins.opname in ("CALL", "PRECALL")):
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
