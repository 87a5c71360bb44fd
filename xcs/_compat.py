"""Selects the bytecode support for the running interpreter, once, at import.

This is the only place where xcs looks at ``sys.version_info``.  ``ops`` is the
``_opcodes.Opcodes`` of this CPython (``_v311.CPython311``, ...).  On an
interpreter that xcs does not know (a future CPython, PyPy, ...) ``ops`` is
None and every jitted function runs plain, with ``UNSUPPORTED`` as the reason.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xcs._opcodes import Opcodes
    from xcs._v311 import CPython311
    from xcs._v315 import CPython315

    # mypy checks the first and the last version's class against the interface (each
    # class in between derives from the one before, and mypy checks its overrides).
    _FIRST: Opcodes = CPython311()
    _LAST: Opcodes = CPython315()

SUPPORTED = ((3, 11), (3, 12), (3, 13), (3, 14), (3, 15))


def _load(version: tuple[int, int], implementation: str) -> tuple[Opcodes | None, str | None]:
    if implementation != "cpython":
        return None, f"xcs rewrites CPython bytecode; this interpreter is {implementation}"
    if version not in SUPPORTED:
        known = ", ".join(f"{major}.{minor}" for major, minor in SUPPORTED)
        return None, f"CPython {version[0]}.{version[1]} is not supported (supported: {known})"
    try:
        module = importlib.import_module(f"xcs._v{version[0]}{version[1]}")
    except ImportError as exc:  # e.g. the bytecode package cannot handle this version
        return None, f"cannot load the bytecode support for CPython {version[0]}.{version[1]}: {exc}"
    opcodes: Opcodes = getattr(module, f"CPython{version[0]}{version[1]}")()
    return opcodes, None


ops, UNSUPPORTED = _load(sys.version_info[:2], sys.implementation.name)


def required() -> Opcodes:
    """``ops``, for the modules of the rewrite stage: xcs imports them only where it exists."""
    if ops is None:
        raise ImportError(f"xcs cannot rewrite bytecode here: {UNSUPPORTED}")
    return ops


def gil_enabled() -> bool:
    """Whether threads running pure-Python code are serialized by the GIL."""
    probe = getattr(sys, "_is_gil_enabled", None)  # 3.13+
    return True if probe is None else bool(probe())


_monitoring = getattr(sys, "monitoring", None)  # 3.12+
_TOOL_IDS = range(6)  # sys.monitoring has six tool ids


def tracing() -> bool:
    """Whether a trace function or a ``sys.monitoring`` tool (a debugger, coverage)
    is active in this thread: it must see the plain function, placeholders never."""
    if sys.gettrace() is not None:
        return True
    if _monitoring is None:
        return False
    get_tool = _monitoring.get_tool
    return any(get_tool(i) is not None for i in _TOOL_IDS)
