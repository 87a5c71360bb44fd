"""What the rewrite stage knows of a function: its sites, its code units, and the
bodies it can build.

``Site`` and ``OpSite`` are the call sites and the operator or access sites of
the function (and of code nested in it), ``Unit`` one code object with its
control-flow graph and simulation, ``Variant`` which copy of the body to build,
and ``Hooks`` the table of callables the later stages hand the rewrite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import CodeType
from typing import Any, Protocol

from bytecode import Bytecode, Instr

from xcs import _compat
from xcs._abstract import Flow
from xcs._cfg import Cfg

# This CPython's bytecode (see _compat); the rewrite stage is only used where it exists.
ops = _compat.required()

__all__ = ["FRAME_READERS", "IN_PLACE", "TRACE", "Hooks", "OpSite", "Site", "Unit", "Variant",
           "load", "op_text"]

# Code that hands what it makes back to the body: a 3.11 comprehension returns
# it, a generator expression yields it.
RUN_IN_PLACE = frozenset({"comprehension", "genexpr"})


# Builtins that read the calling frame: a body that calls them could see a
# placeholder in its locals, so it is never replayed.
FRAME_READERS = frozenset({"locals", "vars", "eval", "exec", "dir"})


# Builtins whose call must stay in the body's frame and thread, in order.
IN_PLACE = FRAME_READERS | {"super", "globals", "print", "input", "breakpoint", "__import__"}


@dataclass(frozen=True, slots=True)
class Site:
    """One call site of the jitted function (or of code nested in it)."""

    id: int
    code: str  # qualified name of the code object holding the site
    filename: str
    line: int
    nested: bool  # in a lambda, inner function or generator expression
    protected: bool  # inside the function's own try/except/with
    append: bool  # ``L.append(x)`` on a list L that the body built
    in_place: bool = False  # calls a builtin such as super() that must run in this frame
    scan: bool = True  # its arguments may be containers holding placeholders
    comprehension: bool = False  # in a comprehension that is a function of its own (3.11)
    genexpr: bool = False  # in a generator expression of the body: deferred only while a
    # builtin that consumes it whole (``"".join``, ``sum``, ``list`` ...) drains it
    outside: bool = False  # a mutating method (``append``...) of an object others may see
    writes: bool = False  # the call of an outlined filter (``_filters``): it fills a list
    # for such a call: the sites whose calls received that list; it may be a continuation
    # only if a replay defers or continues every one of them (``_analyze``)
    handed_to: frozenset[int] = frozenset()
    private: bool = False  # a method of a container the body built that nobody else saw

    @property
    def deferrable(self) -> bool:
        """Whether replay may defer this site (before looking at what it called)."""
        return not (self.nested or self.protected or self.append or self.in_place)

    def where(self) -> str:
        return f"{self.filename.rsplit('/', 1)[-1]}:{self.line}"


@dataclass(frozen=True, slots=True)
class OpSite:
    """An operator (``a + b``, an f-string part) or an access (``r.choices``, ``r[0]``,
    ``a, b = r``, the method of ``r.strip()``) that may meet a placeholder."""

    id: int
    code: str
    filename: str
    line: int
    op: str
    kind: str = "operator"  # "operator", "access" or "unpack"
    arity: int = 0  # for "unpack": how many names
    inner: bool = False  # in a comprehension (3.11) or generator expression of the body

    def where(self) -> str:
        return f"{self.filename.rsplit('/', 1)[-1]}:{self.line}"


class Hooks(Protocol):
    """Callables that the trace and replay stages place into rewritten code."""

    @property
    def use(self) -> Callable[[Any], Any]: ...
    @property
    def resolve(self) -> Callable[[Any], Any]: ...
    @property
    def use_resolve(self) -> Callable[[Any], Any]: ...
    @property
    def first_arg(self) -> Callable[[Any], Any]: ...
    @property
    def barrier(self) -> Callable[[Any], Any]: ...
    @property
    def finish(self) -> Callable[[Any], Any]: ...
    @property
    def abort(self) -> Callable[[BaseException], BaseException]: ...
    @property
    def guard(self) -> Callable[[Any], Any]: ...
    @property
    def settle(self) -> Callable[[Any], Any]: ...
    @property
    def touch(self) -> Callable[..., Any]: ...
    @property
    def touch_deep(self) -> Callable[..., Any]: ...
    @property
    def touch_call(self) -> Callable[..., Any]: ...
    @property
    def owned(self) -> object: ...

    def before(self, site: int) -> Callable[..., Any]: ...
    def after(self, site: int) -> Callable[[Any], Any]: ...
    def wrap(self, site: int) -> Callable[[Any], Any]: ...
    def wrap_continuation(self, site: int) -> Callable[[Any], Any]: ...
    def wrap_drain(self, site: int) -> Callable[[Any], Any]: ...
    def wrap_first(self, site: int) -> Callable[[Any], Any]: ...
    def op_before(self, op: int) -> Callable[..., Any]: ...
    def op_after(self, op: int) -> Callable[[Any], Any]: ...
    def lazy(self, op: int) -> Callable[[tuple[Any, ...]], Any]: ...
    def site_switch(self, site: int) -> object: ...
    def op_switch(self, op: int) -> object: ...


@dataclass(frozen=True)
class Variant:
    """Which copy of the body to build: ``trace``, or ``replay`` with deferred sites
    (of which ``continued`` run as continuations: when their inputs arrive, where
    they arrive) and the op sites that may produce placeholders, or ``first``: the
    trace that may defer the calls at ``deferred`` sites of callees known to be slow."""

    mode: str
    deferred: frozenset[int] = frozenset()
    lazy: frozenset[int] = frozenset()
    continued: frozenset[int] = frozenset()
    drains: frozenset[int] = frozenset()  # calls that drain a generator expression first
    settles: frozenset[int] = frozenset()  # calls before which continuations settle


TRACE = Variant("trace")


@dataclass(eq=False)
class Unit:
    """One code object of the function: the main code or a nested one."""

    code: CodeType
    kind: str  # "main", "comprehension" (3.11, runs in place) or "nested"
    bytecode: Bytecode
    cfg: Cfg
    flow: Flow  # simulation with nothing deferred: the call sites
    site_ids: dict[int, int] = field(default_factory=dict)  # CALL index -> site id
    op_ids: dict[int, int] = field(default_factory=dict)  # operator index -> op site id
    children: dict[int, Unit] = field(default_factory=dict)  # LOAD_CONST index -> unit
    cells: frozenset[str] = frozenset()  # cells only comprehensions read (3.11)
    closure_cells: frozenset[str] = frozenset()  # cells closures only read (_outline)


def load(code: CodeType) -> Bytecode:
    return Bytecode.from_code(code, conserve_exception_block_stackdepth=True)


def op_text(instr: Instr) -> str:
    """How an access reads in explain: ``.choices``, ``[]``."""
    if ops.is_subscript(instr):
        return "[]"
    return "." + str(ops.attr_name(instr))
