"""The exceptions and warnings that xcs itself raises or issues."""

from __future__ import annotations

__all__ = ["VerifyError", "XcsError", "XcsWarning"]


class XcsError(Exception):
    """Base class of the errors xcs raises for its own reasons (misuse, bad input).

    xcs never wraps an exception raised by the user's code: those propagate
    unchanged.  Errors that refine a built-in also derive from it, so that
    ``except TypeError`` catches a misuse such as ``jit(3)``.
    """


class XcsTypeError(XcsError, TypeError):
    """A value of the wrong type was given to xcs (``jit(3)``, ``jit(executor="x")``)."""


class XcsValueError(XcsError, ValueError):
    """An argument of the right type but a wrong value (``explain(format="png")``)."""


class RewriteError(Exception):
    """Internal: a function's code uses a shape the rewrite does not handle (it runs plain)."""


class XcsWarning(UserWarning):
    """xcs runs a function plain, without parallelism, and says why (once per reason)."""


class VerifyError(AssertionError):
    """A jitted run of the function differed from the plain one (see ``verify``)."""
