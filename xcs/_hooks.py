"""The hooks ``Program.combine`` places into a jitted function's code.

``Hooks`` is the table the code reads them from: per call site (``_call_hooks``),
per operator or access site (``OpHook``: ``a + b``, ``r.choices``, ``a, b = r``),
and the ones every body shares (a use of a result, a touch of what a deferred
call owns, a barrier, the end of the call).
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from xcs import _owners
from xcs._call_hooks import Gating, Local, SiteHook
from xcs._frames import comprehension_frames, without_own_frames
from xcs._replay import Invocation
from xcs._tasks import ANYWHERE, OPERATOR, Pending, holds, resolve
from xcs._trace import Recorder
from xcs._values import pure_value

if TYPE_CHECKING:
    from xcs._function import Function
    from xcs._rewrite import OpSite

__all__ = ["Hooks", "OpHook"]

_OWNED = _owners.OWNED  # module globals: the touch hook runs before every read of a replay
_BOUND = _owners.BOUND
# In-place operators: on a mutable left operand they change it where the caller may see it.
_IN_PLACE = frozenset({operator.iadd, operator.isub, operator.imul, operator.imod,
                       operator.ifloordiv, operator.itruediv})


class OpHook:
    """The hooks of one operator site (``a + b``, an f-string part) or access site
    (``r.choices``, ``r[0]``, ``a, b = r``, the method of ``r.strip()``)."""

    __slots__ = ("fn", "in_place", "inner", "kind", "line", "op", "state", "tls", "unpack")

    def __init__(self, op: OpSite, fn: Callable[..., Any], tls: Local,
                 state: Function) -> None:
        self.op = op.id
        self.line = op.line
        self.fn = fn
        self.in_place = fn in _IN_PLACE
        self.kind = OPERATOR if op.kind == "operator" else ANYWHERE
        self.unpack = op.arity if op.kind == "unpack" else 0
        self.inner = op.inner  # its failures show the comprehension's frames too
        self.tls = tls
        self.state = state

    # The trial's recorder is looked up in each trace hook itself (here, in SiteHook and
    # in Hooks.use): a shared helper would cost a Python call per traced operation,
    # 30-50 ns on 3.11-3.13, a quarter of the hook's own cost.
    def before(self, *operands: Any) -> None:
        rec = self.tls.cur
        if type(rec) is Invocation:
            rec = rec.rec
        if type(rec) is Recorder:
            try:
                rec.op_before(self.op, operands, self.kind == ANYWHERE)
            except Exception as exc:
                rec.failed(exc)

    def after(self, result: Any) -> Any:
        rec = self.tls.cur
        if type(rec) is Invocation:
            rec = rec.rec
        if type(rec) is Recorder:
            try:
                rec.op_after(self.op, result)
            except Exception as exc:
                rec.failed(exc)
        return result

    def lazy(self, operands: tuple[Any, ...]) -> Any:
        inv = self.tls.cur
        replay = type(inv) is Invocation
        target = operands[0]
        if self.unpack:  # the body's UNPACK_SEQUENCE follows, on what this returns
            if type(target) is Pending:
                if replay:
                    frames = comprehension_frames(sys._getframe(1)) if self.inner else None
                    return inv.unpack(self.op, self.line, self.fn, target, self.unpack, frames)
                return resolve(target)
            if replay and _owners.OWNED and not _owners.clear(operands, 0):
                inv.touch(operands, 0)
            return target
        if self.in_place and type(target) is not Pending and not pure_value(target):
            # ``xs += ys`` on a value the caller may see (the trial saw only immutable
            # ones): as the guard does, wait for every deferred call, then change it now.
            if replay:
                inv.wait_all()
            return self.fn(*map(resolve, operands))
        if any(type(v) is Pending or (type(v) is tuple and holds(v))
               for v in operands):
            # In a first call, an operator is lazy only on values that run no user code,
            # as a replay's are (its trial saw them); what it makes is such a value too,
            # as is what an access reads from one (``r[2:-2]`` of a str).
            pure = replay and inv.rec is not None and all(map(_expect_pure, operands))
            if replay and (inv.rec is None or pure or self.kind != OPERATOR):
                frames = comprehension_frames(sys._getframe(1)) if self.inner else None
                made = inv.derive(self.op, self.line, self.fn, operands, self.kind, frames)
                if pure and type(made) is Pending:
                    made.task.pure = True
                return made
            operands = tuple(map(resolve, operands))
        elif replay and _owners.OWNED and not _owners.clear(operands, self.kind == 1):
            inv.touch(operands, self.kind == 1)  # it reads its operands (an operator: deeply)
        return self.fn(*operands)


def _expect_pure(value: Any) -> bool:
    """An immutable builtin (``pure_value``), or a first call's placeholder expected to
    hold one, or a tuple of those."""
    kind = type(value)
    if kind is Pending:
        return bool(value.task.pure)
    if kind is tuple:
        return len(value) <= 64 and all((type(v) is Pending and v.task.pure) or pure_value(v)
                                        for v in value)
    return pure_value(value)


class Hooks:
    """The callables that ``Program.combine`` places into the function's code."""

    def __init__(self, state: Function) -> None:
        self.tls = state.tls
        self.state = state
        program = state.program
        assert program is not None
        self.sites = [SiteHook(s, state.tls, state) for s in program.sites]
        self.ops = [OpHook(o, program.op_function(o.id), state.tls, state)
                    for o in program.op_sites]
        self.resolve = resolve
        self.owned = _owners.OWNED

    def before(self, site: int) -> Callable[..., Any]:
        return self.sites[site].before

    def after(self, site: int) -> Callable[[Any], Any]:
        return self.sites[site].after

    def wrap(self, site: int) -> Callable[[Any], Any]:
        return self.sites[site].wrap

    def wrap_continuation(self, site: int) -> Callable[[Any], Any]:
        return self.sites[site].wrap_continuation

    def wrap_drain(self, site: int) -> Callable[[Any], Any]:
        return self.sites[site].wrap_drain

    def wrap_first(self, site: int) -> Callable[[Any], Any]:
        return self.sites[site].wrap_first

    def op_before(self, op: int) -> Callable[..., Any]:
        return self.ops[op].before

    def op_after(self, op: int) -> Callable[[Any], Any]:
        return self.ops[op].after

    def lazy(self, op: int) -> Callable[[tuple[Any, ...]], Any]:
        return self.ops[op].lazy

    def site_switch(self, site: int) -> object:
        return self.state.switches.sites[site]

    def op_switch(self, op: int) -> object:
        return self.state.switches.ops[op]

    def use(self, value: Any) -> Any:
        rec = self.tls.cur
        if type(rec) is Invocation:
            rec = rec.rec
        if type(rec) is Recorder:
            try:
                rec.use(value)
            except Exception as exc:
                rec.failed(exc)
        return value

    def first_arg(self, value: Any) -> Any:
        """A first call's input of a call the body makes itself: resolved, and after the
        deferred calls that own what it reaches (as ``call_here`` does)."""
        inv = self.tls.cur
        if type(inv) is not Invocation or inv.rec is None or inv.rec.defers_now:
            return value
        kind = type(value)
        if kind is Pending or kind is list or kind is dict or kind is tuple:
            value = self._resolved(inv.rec, value)
            inv.rec.inputs_ready()
        if _OWNED and not _owners.clear((value,), 1):
            inv.touch((value,), 1)
            inv.rec.inputs_ready()
        return value

    def use_resolve(self, value: Any) -> Any:
        """A first call's: the body observes ``value`` (recorded), resolved."""
        inv = self.tls.cur
        if type(inv) is not Invocation or inv.rec is None:
            return value
        rec = inv.rec
        try:
            rec.use(value)
        except Exception as exc:
            rec.failed(exc)
        return self._resolved(rec, value)

    @staticmethod
    def _resolved(rec: Recorder, value: Any) -> Any:
        """``value`` resolved; what came out of a placeholder came from its calls."""
        kind = type(value)
        if kind is Pending:
            got = resolve(value)
            rec.alias(value, got)
            return got
        if kind is list or kind is dict or kind is tuple:
            items = list(value.values() if kind is dict else value)
            got = resolve(value)
            for before, now in zip(items, got.values() if kind is dict else got):
                if type(before) is Pending:
                    rec.alias(before, now)
            return got
        return value

    # Called only while some deferred call owns objects (the body tests ``owned``).
    def touch(self, *values: Any) -> None:
        # ``_owners.clear(values, 0)`` inlined: this runs before every attribute load,
        # subscript and loop step of a replay while some call owns anything.
        owned = _OWNED
        if 0 not in owned:
            for value in values:
                if id(value) in owned or (type(value) in _BOUND
                                          and id(value.__self__) in owned):
                    break
            else:
                return
        inv = self.tls.cur
        if type(inv) is Invocation:
            inv.touch(values, 0)

    def touch_deep(self, *values: Any) -> None:
        if not _owners.clear(values, 1):
            inv = self.tls.cur
            if type(inv) is Invocation:
                inv.touch(values, 1)

    def touch_call(self, *values: Any) -> None:
        if not _owners.clear(values, 2):
            inv = self.tls.cur
            if type(inv) is Invocation:
                inv.touch(values, 2)

    def barrier(self, _: Any) -> None:
        inv = self.tls.cur
        if type(inv) is Invocation:
            inv.wait_all()

    def settle(self, _: Any) -> None:
        inv = self.tls.cur
        if type(inv) is Invocation:
            inv.settle()

    def guard(self, target: Any) -> None:
        """Before ``target += ...`` or ``target.append(...)`` on a value the caller (or a
        deferred call) may see: a barrier unless it is an immutable builtin, which those
        cannot change (a user class, a numpy array or an ``array.array`` can)."""
        if not pure_value(target):  # anything but an immutable builtin may change in place
            inv = self.tls.cur
            if type(inv) is Invocation:
                inv.wait_all()

    def finish(self, value: Any) -> Any:
        cur = self.tls.cur
        if type(cur) is Invocation:
            return cur.finish(value)
        if type(cur) is Recorder:
            self.state.end_trial(cur, raised=False)
        elif type(cur) is Gating:
            self.state.end_gating(cur)
        return value

    def abort(self, exc: BaseException) -> BaseException:
        cur = self.tls.cur
        if type(cur) is Invocation:
            return without_own_frames(cur.abort(exc, sys._getframe(1)))
        if type(cur) is Recorder:
            self.state.end_trial(cur, raised=True)
        elif type(cur) is Gating:
            self.state.end_gating(cur)
        return without_own_frames(exc)
