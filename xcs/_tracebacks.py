"""A deferred call's frames as plain's: the trampoline a callee runs under (named
like its call site, at its line) and the traceback a failure carries."""

from __future__ import annotations

from types import CodeType, FrameType, TracebackType
from typing import Any

from xcs._codes import HELPERS
from xcs._tasks import Task, line_at

# Code of xcs's own frames between a deferred call's worker and its callee; the
# replay adds its own (``Waiting.wait``, ``Waiting.force``).
OWN_CODE: set[CodeType] = {Task.execute.__code__, Task.run.__code__}


TRAMPOLINES: set[CodeType] = set()


def trampoline(code_name: str, filename: str, line: int) -> Any:
    """A function that calls ``fn(*args, **kwargs)`` from a frame named like the call
    site's code, in its file, at its line: what a deferred callee finds as its caller
    (``warnings.warn(stacklevel=2)``, ``sys._getframe(1)``) is then the plain one."""
    name = code_name.rsplit(".", 1)[-1]
    ident = name if name.isidentifier() else "caller"
    source = "\n" * (line - 1) + f"def {ident}(fn, args, kwargs): return fn(*args, **kwargs)"
    namespace: dict[str, Any] = {}
    exec(compile(source, filename, "exec"), namespace)
    fn = namespace[ident]
    fn.__code__ = fn.__code__.replace(co_name=name, co_qualname=code_name)
    TRAMPOLINES.add(fn.__code__)
    return fn


def with_site_traceback(error: BaseException, task: Task,
                         frame: FrameType | None) -> BaseException:
    """Give ``error`` the traceback a plain call at the task's site would have had:
    the body's frame at the call's line, then the callee's own frames."""
    from xcs._opcodes import UNPACK_CODES as helpers  # an access's own function

    tb = task.tb
    while tb is not None and (tb.tb_frame.f_code in OWN_CODE
                              or tb.tb_frame.f_code in TRAMPOLINES
                              or tb.tb_frame.f_code in helpers):
        tb = tb.tb_next
    helper_line = None
    if tb is not None and id(tb.tb_frame.f_code) in HELPERS:  # an outlined try: plain's line
        helper_line, tb = tb.tb_lineno, tb.tb_next
    if frame is not None:
        try:
            if task.frame is not None:  # the comprehensions' frames, then the body's
                chain, (body_code, body_lasti) = task.frame
                for inner, lasti in chain:
                    tb = TracebackType(tb, inner, -1, line_at(inner.f_code, lasti))
                tb = TracebackType(tb, frame, -1, helper_line or line_at(body_code, body_lasti))
            else:
                tb = TracebackType(tb, frame, -1, helper_line or task.line)
        except (TypeError, ValueError):
            pass
    return error.with_traceback(tb)
