"""Writing one copy of one code unit: the body's instructions with the hooks that
``_placement`` decided, the labels and try blocks renewed, the nested code
rewritten for the same variant, and the returns routed through ``finish``."""

from __future__ import annotations

from types import CodeType
from typing import Any

from bytecode import Instr, Label
from bytecode.instr import TryBegin, TryEnd

from xcs import _compat
from xcs._owners import CHECKED_GENERATORS
from xcs._placement import Placement
from xcs._sequences import assemble, barrier, location
from xcs._sites import TRACE, Hooks, Site, Unit, Variant

ops = _compat.required()

__all__ = ["emit", "nested_code"]


def emit(sites: list[Site], unit: Unit, items: list[Any], variant: Variant, hooks: Hooks,
         offset: int) -> list[Any]:
    """A copy of ``items`` (a run of ``unit``'s bytecode from instruction ``offset``)
    rewritten for ``variant``."""
    children: dict[int, CodeType] = {}
    for index, child in unit.children.items():
        code = _child_code(sites, child, variant, hooks)
        if code is not None:
            children[index] = code
    placement = Placement(sites, unit, variant, hooks)
    first = sum(isinstance(x, Instr) for x in unit.bytecode[:offset])
    return _Writer(placement, children).write(items, first)


def nested_code(sites: list[Site], unit: Unit, variant: Variant, hooks: Hooks) -> CodeType:
    """A rewritten nested code object (comprehension or nested function)."""
    code = assemble(unit.bytecode, emit(sites, unit, list(unit.bytecode), variant, hooks, 0))
    if unit.kind == "genexpr" and variant.mode in ("replay", "first"):
        CHECKED_GENERATORS.add(code)
    return code


def _child_code(sites: list[Site], child: Unit, variant: Variant,
                hooks: Hooks) -> CodeType | None:
    if child.kind == "nested" and variant.mode == "replay":
        return None  # nested functions run as written in replay
    if variant.mode == "first" and child.kind == "nested":
        variant = TRACE  # recorded, as in a trial; a closure never sees a placeholder
    return nested_code(sites, child, variant, hooks)


class _Writer:
    """Writes the copy: each instruction with what goes before and after it."""

    def __init__(self, placement: Placement, children: dict[int, CodeType]) -> None:
        self.p = placement
        self.children = children
        self.labels: dict[Label, Label] = {}
        self.blocks: dict[int, TryBegin] = {}

    def label(self, old: Label) -> Label:
        return self.labels.setdefault(old, Label())

    def write(self, items: list[Any], index: int) -> list[Any]:
        """``items`` rewritten; ``index`` is the real instruction index of the first."""
        p = self.p
        out: list[Any] = []
        pos = 0
        while pos < len(items):
            item = items[pos]
            pos += 1
            if isinstance(item, Label):
                out.append(self.label(item))
            elif isinstance(item, TryBegin):
                if p.unit.kind == "main" and p.replay and p.cfg.entered_from_outside(item):
                    out.extend(barrier(p.hooks.barrier, location(out)))
                new = TryBegin(self.label(item.target), item.push_lasti, item.stack_depth)
                self.blocks[id(item)] = new
                out.append(new)
            elif isinstance(item, TryEnd):
                out.append(TryEnd(self.blocks[id(item.entry)]))
            elif isinstance(item, Instr):
                span, on = self._span(items, pos, index, item)
                if on is None:
                    out += self.hooked(index, item)
                else:
                    out += self._switched(index, span, on)
                    pos += len(span) - 1
                index += len(span)
            else:
                out.append(item)
        return out

    def _span(self, items: list[Any], pos: int, index: int,
              item: Instr) -> tuple[list[Instr], object | None]:
        """The instructions of the site that starts at ``item`` and its switch, if a
        switch can skip their hooks (``Placement.switches``): only if what it covers
        is plain instructions with nothing inserted inside."""
        p = self.p
        switch = p.switches.get(index)
        if switch is None:
            return [item], None
        last, on = switch
        span = [item, *items[pos:pos + last - index]]
        if not all(isinstance(x, Instr) for x in span) or any(
                i in p.before or i in p.after for i in range(index + 1, last)):
            return [item], None
        return span, on

    def _switched(self, index: int, span: list[Instr], on: object) -> list[Any]:
        """A first call's site that proved fast runs as written while its switch is off
        (``Placement.switches``, ``_switches``): one test, no hook call."""
        loc = span[0].location
        plain, end = Label(), Label()
        out: list[Any] = [Instr("LOAD_CONST", on, location=loc),
                          *ops.jump_forward_if_false(plain, loc)]
        for k, instr in enumerate(span):
            out += self.hooked(index + k, instr)
        out += [ops.jump_forward(end, loc), plain]
        for k, instr in enumerate(span):
            out += self.as_written(index + k, instr)
        out.append(end)
        return out

    def hooked(self, index: int, item: Instr) -> list[Any]:
        p = self.p
        loc = item.location
        seq: list[Any] = [*p.before.get(index, ())]
        if index in p.lazy_here:
            seq += [Instr("BUILD_TUPLE", p.lazy_here[index], location=loc),
                    *ops.apply(p.hooks.lazy(p.unit.op_ids[index]), loc)]
            if index in p.methods:  # then the slot, as the opener would push it
                if p.first:
                    seq += ops.apply(p.hooks.op_after(p.unit.op_ids[index]), loc)
                seq += ops.normalize(item)[1:]
            elif item.name == "UNPACK_SEQUENCE":  # of the tuple the hook returned
                seq.append(item.copy())
        elif index in p.methods:  # traced: the load, its probe, then the slot
            load, *rest = ops.normalize(item)
            seq += [load, *ops.apply(p.hooks.op_after(p.unit.op_ids[index]), loc), *rest]
        else:
            seq += self._replace(index, item)
        seq.extend(p.after.get(index, ()))
        return seq

    def as_written(self, index: int, item: Instr) -> list[Instr]:
        if index in self.p.methods:  # the same stack as the hooked copy's
            normalized: list[Instr] = ops.normalize(item)
            return normalized
        return self._replace(index, item)

    def _replace(self, index: int, instr: Instr) -> list[Instr]:
        p = self.p
        loc = instr.location
        opener = ops.opener(instr)
        if index in p.normalize and opener is not None and opener[0]:  # a method-form load
            normalized: list[Instr] = ops.normalize(instr)
            return normalized
        if index in self.children:
            return [Instr("LOAD_CONST", self.children[index], location=loc)]
        if p.unit.kind == "main":
            is_const, value = ops.return_const(instr)
            if is_const:
                return [Instr("LOAD_CONST", value, location=loc),
                        *ops.apply(p.hooks.finish, loc), Instr("RETURN_VALUE", location=loc)]
            if ops.returns_value(instr):
                return [*ops.apply(p.hooks.finish, loc), Instr("RETURN_VALUE", location=loc)]
        new = ops.unborrow(instr)
        if isinstance(new.arg, Label):
            new = Instr(new.name, self.label(new.arg), location=loc)
        elif new is instr:
            new = instr.copy()
        return [new]

