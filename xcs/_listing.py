"""A rewritten body as text: the hooks by name, the labels numbered (``Program.as_text``,
the golden files of ``tests/test_rewrite.py``)."""

from __future__ import annotations

from types import CodeType, FunctionType
from typing import Any

from bytecode import Instr, Label
from bytecode.instr import UNSET, TryBegin, TryEnd

from xcs import _compat

# This CPython's bytecode (see _compat); the rewrite stage is only used where it exists.
ops = _compat.required()

__all__ = ["NamedHooks", "listing"]

class _Named:
    """A stand-in hook that prints as its name in listings."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: Any) -> Any:
        raise AssertionError("listing hooks are not called")

    def __repr__(self) -> str:
        return f"<{self.name}>"


class NamedHooks:
    use = _Named("use")
    resolve = _Named("resolve")
    use_resolve = _Named("use_resolve")
    first_arg = _Named("first_arg")
    barrier = _Named("barrier")
    finish = _Named("finish")
    abort = _Named("abort")
    guard = _Named("guard")
    settle = _Named("settle")
    touch = _Named("touch")
    touch_deep = _Named("touch_deep")
    touch_call = _Named("touch_call")
    owned = _Named("owned")

    def before(self, site: int) -> Any:
        return _Named(f"before {site}")

    def after(self, site: int) -> Any:
        return _Named(f"after {site}")

    def wrap(self, site: int) -> Any:
        return _Named(f"wrap {site}")

    def wrap_continuation(self, site: int) -> Any:
        return _Named(f"continue {site}")

    def wrap_drain(self, site: int) -> Any:
        return _Named(f"drain {site}")

    def wrap_first(self, site: int) -> Any:
        return _Named(f"first {site}")

    def op_before(self, op: int) -> Any:
        return _Named(f"op_before {op}")

    def op_after(self, op: int) -> Any:
        return _Named(f"op_after {op}")

    def lazy(self, op: int) -> Any:
        return _Named(f"lazy {op}")

    def site_switch(self, site: int) -> Any:
        return _Named(f"switch {site}")

    def op_switch(self, op: int) -> Any:
        return _Named(f"op switch {op}")


def listing(items: list[Any]) -> list[str]:
    names: dict[Label, str] = {}
    for item in items:
        if isinstance(item, Label):
            names[item] = f"L{len(names) + 1}"
    out = []
    for item in items:
        if isinstance(item, Label):
            out.append(f"  {names[item]}:")
        elif isinstance(item, TryBegin):
            out.append(f"    try -> {names.get(item.target, '?')} depth {item.stack_depth}"
                       + (" lasti" if item.push_lasti else ""))
        elif isinstance(item, TryEnd):
            out.append("    end try")
        elif isinstance(item, Instr):
            arg = item.arg
            if isinstance(arg, Label):
                text = names.get(arg, "?")
            elif isinstance(arg, CodeType):
                text = f"<code {arg.co_name}>"
            elif isinstance(arg, FunctionType):  # an outlined try's helper
                text = f"<function {arg.__qualname__}>"
            elif arg is UNSET:
                text = ""
            else:
                text = repr(arg)
            out.append(f"    {item.name} {text}".rstrip())
    return out
