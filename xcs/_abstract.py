"""The abstract values of the stack simulation (``_flow``), and what it finds.

Abstract stack items and locals (``Val``) carry bit flags.  Every flag means
"may be": the join of two states is a bitwise OR, and the analysis is
conservative in the direction that resolves more, never less.  ``Flow`` holds
what one simulation found: the call sites, and where placeholders must be
resolved, touched or kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from xcs._cfg import Cfg
from xcs._errors import RewriteError

PH = 1  # may be a placeholder
LCT = 2  # may be a list or dict holding placeholders (resolvable in place)
TCT = 4  # may be a tuple holding placeholders (must be rebuilt)
ESC = 8  # may be other than a list/dict that this frame built and nobody else saw
NOTLIST = 16  # may be other than a list
NOTDICT = 32  # may be other than a dict
OTHER = 64  # may be an ordinary value rather than the NULL slot of a call opener
TAINT = PH | LCT | TCT
# With LCT: a list or dict whose items may be tuples holding placeholders
# (``out.append((r, len(r)))``); its items are then TCT.
TLCT = 128
# A loop's iterator over a list holding placeholders: what FOR_ITER pushes may be one.
ITEMS = 256
# A list an outlined filter (``_filters``) may still be appending to: the body's own
# appends are then ordinary calls (checked against its owners), not gathers.
FILTERED = 512
# With ESC: seen by more than the calls it was handed to as an argument (stored, aliased,
# captured, read by the body, of unknown origin).  An outlined filter may fill a list that
# only calls a replay defers or continues saw: they own it while they run, and the filter
# runs after them (``_replay``); not one others may hold (``o.items = lst``).
SHARED = 1024
PLAIN = ESC | NOTLIST | NOTDICT | OTHER | SHARED
# A value that is never an object handed to a deferred call: a constant, a bool
# result.  (Not ESC: ESC also means "may be an object someone else holds".)
IMMUTABLE = NOTLIST | NOTDICT | OTHER

APPEND = "append"  # ``what`` of the bound ``append`` of a fresh list
PRIVATE = "private"  # ``what`` of another method of a container nobody else saw


@dataclass(frozen=True, slots=True)
class Val:
    """What may be in one stack slot or local variable."""

    bits: int = PLAIN
    openers: frozenset[int] = frozenset()  # call openers that may have pushed this slot
    aliases: frozenset[str] = frozenset()  # locals this value may have been loaded from
    what: Any = None  # ("code", c), ("func", c) or APPEND, when known on every path
    origin: int = 1 << 30  # the first instruction that went into computing it

    def join(self, other: Val) -> Val:
        if self == other:
            return self
        what = self.what if self.what == other.what else None
        return Val(self.bits | other.bits, self.openers | other.openers,
                   self.aliases | other.aliases, what, min(self.origin, other.origin))


CLEAN = Val()
SLOT_BITS = 0


@dataclass(slots=True)
class State:
    stack: tuple[Val, ...]
    locs: dict[str, int]

    def join(self, other: State, where: str) -> State:
        if len(self.stack) != len(other.stack):
            raise RewriteError(f"stack depth differs at {where}")
        stack = tuple(a.join(b) for a, b in zip(self.stack, other.stack))
        locs = dict(self.locs)
        for name, bits in other.locs.items():
            locs[name] = locs.get(name, PLAIN) | bits
        return State(stack, locs)

    def same(self, other: State) -> bool:
        return self.stack == other.stack and self.locs == other.locs


@dataclass(frozen=True, slots=True)
class CallSite:
    """A CALL whose slot was pushed by call openers: a call site of the user's code."""

    index: int
    roles: tuple[str, ...]
    openers: frozenset[int]
    name: str | None = None  # the global the callee was loaded from, when known
    kwnull: bool = False  # 3.14+: the **kwargs slot of CALL_FUNCTION_EX holds NULL
    append_to: frozenset[str] = frozenset()  # ``L.append(x)`` on a fresh list L
    holds: bool = False  # an operand may be a container holding placeholders
    private: bool = False  # a method of a container this frame built and nobody else saw
    first_escapes: bool = True  # its first argument may be an object others see
    # the locals its first argument may be in, if it may have been handed to calls
    first_aliases: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Flow:
    """The result of simulating one code object for one set of deferred sites (the
    simulation fills its tables; the record itself is never rebound)."""

    cfg: Cfg
    calls: dict[int, CallSite] = field(default_factory=dict)
    resolves: dict[int, list[int]] = field(default_factory=dict)  # index -> depths
    kwnull_openers: set[int] = field(default_factory=set)
    stores_outside: set[int] = field(default_factory=set)  # stores into containers not built here
    lazy_ops: dict[int, int] = field(default_factory=dict)  # pure operator on a placeholder -> arity
    with_starts: dict[int, int] = field(default_factory=dict)  # with-enter -> its expression's start
    in_place_outside: set[int] = field(default_factory=set)  # x += y where x may be outside state
    mutators: set[int] = field(default_factory=set)  # x.append(...) etc. where x may be outside
    # Before a 3.11 comprehension's call, or before a closure is built over a closure
    # cell: the cells whose content may hold placeholders (resolved in place)
    resolve_cells: dict[int, list[str]] = field(default_factory=dict)
    # Closure cells an instruction may change or put a placeholder in: the replay
    # checks there whether a closure holding the cell is alive (see closure_cells)
    cell_changes: dict[int, list[str]] = field(default_factory=dict)
    # index -> depths of the operands it reads that may be objects a deferred call
    # received: the replay checks them against the objects deferred calls own
    touches: dict[int, list[int]] = field(default_factory=dict)
    # local -> the calls that received what it holds as an argument (``SHARED``)
    handed: dict[str, set[int]] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"<Flow: {len(self.calls)} call sites in {len(self.cfg.instrs)} instructions>"

    def as_text(self) -> str:
        """The call sites (instruction index, callee, the roles of what the call
        consumes, its openers and what the simulation learned of it), then every
        other table that is not empty, by instruction index or local."""
        lines = []
        for i, site in sorted(self.calls.items()):
            facts = [name for name in ("kwnull", "holds", "private") if getattr(site, name)]
            facts += [f"appends to {', '.join(sorted(site.append_to))}"] if site.append_to else []
            facts += [] if site.first_escapes else ["first argument fresh"]
            lines.append(f"call {i} {site.name or '?'}({', '.join(site.roles)})"
                         f" opened at {', '.join(map(str, sorted(site.openers)))}"
                         + (f": {'; '.join(facts)}" if facts else ""))
        for table in fields(self)[2:]:
            value = getattr(self, table.name)
            if value:
                items = (sorted(value.items()) if isinstance(value, dict)
                         else [(k, None) for k in sorted(value)])
                lines.append(f"{table.name}: " + ", ".join(
                    str(k) if v is None else f"{k} {sorted(v) if isinstance(v, set) else v}"
                    for k, v in items))
        return "\n".join(lines)


def callee_name(val: Val) -> str | None:
    what = val.what
    return what[1] if isinstance(what, tuple) and what[0] == "global" else None
