"""The sets of code objects xcs compiles (``_codes``): held weakly, asked by id."""

from __future__ import annotations

import gc
from types import CodeType, FunctionType

from xcs._codes import CodeSet


def _fresh_code() -> CodeType:
    namespace: dict[str, object] = {}
    exec("def helper(x):\n    return x\n", namespace)
    helper = namespace.pop("helper")
    assert isinstance(helper, FunctionType)
    return helper.__code__


def test_a_code_set_holds_what_was_added_by_id() -> None:
    codes = CodeSet()
    code, other = _fresh_code(), _fresh_code()
    codes.add(code)
    assert id(code) in codes
    assert id(other) not in codes
    assert codes


def test_a_code_set_does_not_keep_a_code_alive() -> None:
    codes = CodeSet()
    code = _fresh_code()
    key = id(code)
    codes.add(code)
    del code
    gc.collect()
    assert key not in codes
    assert not codes
