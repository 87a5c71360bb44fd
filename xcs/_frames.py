"""xcs's own frames among the body's.

Where a warning points (the first frame outside xcs), what a failure's traceback
shows (the body's frames, not xcs's), and which comprehension or generator
expression frames make a call (a failure raised there shows them, as plain's does).
"""

from __future__ import annotations

import dis
import os
import sys
from types import CodeType, FrameType, TracebackType
from typing import Any

from xcs import _compat
from xcs._codes import fold_helper

__all__ = ["HERE", "Frames", "comprehension_frames", "outside_xcs", "without_own_frames"]

# The frames making a call when they are not the body's own (a 3.11 comprehension, a
# generator expression), innermost first, each at its instruction (``f_lasti``), and the
# code and instruction of the body's frame that made the outermost one.  Lines are
# worked out only for a failure's traceback (``f_lineno`` scans the line table).
Frames = tuple[tuple[tuple[FrameType, int], ...], tuple[CodeType, int]]

HERE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def outside_xcs() -> int:
    """The warnings stacklevel of the first frame that is not xcs's own code."""
    frame: Any = sys._getframe(2)  # outside_xcs <- warnings.warn's caller <- ...
    level = 2
    while frame is not None and frame.f_code.co_filename.startswith(HERE):
        frame = frame.f_back
        level += 1
    return level


def comprehension_frames(frame: Any) -> Frames:
    """The comprehension frames (3.11) or generator expression making a call (innermost
    first, at their instructions now) and the body's frame's code and instruction where
    it called the outermost one (``Frames``).  A failure's traceback shows them,
    as plain's does."""
    names = _compat.ops.COMPREHENSIONS if _compat.ops is not None else frozenset()
    chain = []
    while frame.f_back is not None and (frame.f_code.co_name in names
                                        or frame.f_code.co_name == "<genexpr>"):
        chain.append((frame, frame.f_lasti))
        frame = frame.f_back
        while frame.f_back is not None and frame.f_code.co_filename.startswith(HERE):
            frame = frame.f_back  # the drain that runs a generator expression
    return tuple(chain), (frame.f_code, frame.f_lasti)


def without_own_frames(exc: BaseException) -> BaseException:
    """Drop xcs's own frames (a drain running a generator expression, a call made
    here, an outlined try's helper) from the traceback between the body's frame and
    the code that raised; and the last one, where it made the body's call or
    operation (``fn(*args)``) and a builtin raised: plain's traceback ends in the body."""
    tb = fold_helper(exc.__traceback__)
    exc.__traceback__ = tb
    while tb is not None and tb.tb_next is not None:
        nxt = tb.tb_next
        if nxt.tb_frame.f_code.co_filename.startswith(HERE) and (
                nxt.tb_next is not None or _made_the_call(nxt)):
            tb.tb_next = nxt.tb_next
        else:
            tb = nxt
    return exc


_CALL_EX = dis.opmap["CALL_FUNCTION_EX"]


def _made_the_call(tb: TracebackType) -> bool:
    """Did xcs's frame raise from its ``fn(*args, **kwargs)``, the body's own call?"""
    code = tb.tb_frame.f_code.co_code
    return 0 <= tb.tb_lasti < len(code) and code[tb.tb_lasti] == _CALL_EX
