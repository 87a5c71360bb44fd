"""A code object's control-flow graph: its real instructions, their successors
(jumps, fall-through) and the try regions that protect them."""

from __future__ import annotations

from typing import Any

from bytecode import Bytecode, Instr, Label
from bytecode.instr import TryBegin, TryEnd

from xcs._errors import RewriteError


class Cfg:
    """The real instructions of a Bytecode with their successors and try regions."""

    def __init__(self, code: Bytecode) -> None:
        self.code = code
        self.instrs: list[Instr] = []
        self.region: list[TryBegin | None] = []
        self.label_index: dict[Label, int] = {}
        pending: list[Label] = []
        active: TryBegin | None = None
        for item in code:
            if isinstance(item, Label):
                pending.append(item)
            elif isinstance(item, TryBegin):
                active = item
            elif isinstance(item, TryEnd):
                active = None
            elif isinstance(item, Instr):
                for label in pending:
                    self.label_index[label] = len(self.instrs)
                pending.clear()
                self.instrs.append(item)
                self.region.append(active)
        self.succ: list[list[tuple[int, bool]]] = []
        for i, instr in enumerate(self.instrs):
            edges: list[tuple[int, bool]] = []
            if instr.has_jump():
                edges.append((self._target(instr.arg), True))
            if not instr.is_final():
                edges.append((i + 1, False))
            self.succ.append(edges)
        self.protected = self._protected()
        self.preds: list[list[int]] = [[] for _ in self.instrs]
        for i, edges in enumerate(self.succ):
            for j, _ in edges:
                if j < len(self.preds):
                    self.preds[j].append(i)

    def __repr__(self) -> str:
        return f"<Cfg of {len(self.instrs)} instructions>"

    def as_text(self) -> str:
        """One line per instruction: its index, name and argument, where control goes
        next (``->``, a jump's target starred) and the handler protecting it (``!``)."""
        lines = []
        for i, instr in enumerate(self.instrs):
            arg = instr.arg
            shown = ("" if not instr.require_arg() or isinstance(arg, Label)
                     else f" {getattr(arg, 'name', arg)!r}")
            nexts = ", ".join(f"{j}*" if jump else str(j) for j, jump in self.succ[i])
            region = self.region[i]
            handler = f"  ! {self.handler(region)}" if region is not None else ""
            lines.append(f"{i:4} {instr.name}{shown}" + (f" -> {nexts}" if nexts else "") + handler)
        return "\n".join(lines)

    def reaches(self, start: int, goal: int) -> bool:
        """Whether a path (an exception's to its handler too) leads from instruction
        ``start`` on to ``goal``."""
        seen, todo = {start}, [start]
        while todo:
            i = todo.pop()
            nexts = [j for j, _ in self.succ[i]]
            region = self.region[i]
            if region is not None:
                nexts.append(self._target(region.target))
            for j in nexts:
                if j == goal:
                    return True
                if j not in seen and j < len(self.instrs):
                    seen.add(j)
                    todo.append(j)
        return False

    def _target(self, label: Any) -> int:
        try:
            return self.label_index[label]
        except (KeyError, TypeError):
            raise RewriteError("jump to an unknown label") from None

    def entered_from_outside(self, block: TryBegin) -> bool:
        """Can control reach the first instruction of ``block`` from unprotected code?

        Only such entries need a barrier: inside protected code nothing is
        ever deferred, so nothing can be pending there.
        """
        if not self._user_visible(block):
            return False
        starts = [i for i, region in enumerate(self.region) if region is block]
        if not starts:
            return False
        first = starts[0]
        return first == 0 or any(not self.protected[p] for p in self.preds[first])

    def handler(self, block: TryBegin) -> int:
        return self._target(block.target)

    def _user_visible(self, block: TryBegin) -> bool:
        # A handler that pushes or pops exc_info belongs to the user's code
        # (except, finally, with).  Compiler cleanups that only restore state
        # and re-raise (inlined comprehensions on 3.12+) are transparent.
        i = self.handler(block)
        while i < len(self.instrs):
            name = self.instrs[i].name
            if name in ("PUSH_EXC_INFO", "POP_EXCEPT", "WITH_EXCEPT_START", "CHECK_EXC_MATCH"):
                return True
            if self.instrs[i].is_final():
                return False
            i += 1
        return False

    def _reraise_of(self, block: TryBegin) -> int | None:
        i = self.handler(block)
        while i < len(self.instrs):
            if self.instrs[i].is_final():
                return i if self.instrs[i].name == "RERAISE" else None
            i += 1
        return None

    def _protected(self) -> list[bool]:
        memo: dict[int, bool] = {}

        def visible(block: TryBegin, seen: frozenset[int]) -> bool:
            key = id(block)
            if key not in memo:
                if self._user_visible(block):
                    memo[key] = True
                else:
                    at = self._reraise_of(block)
                    outer = self.region[at] if at is not None else None
                    memo[key] = (outer is not None and key not in seen
                                 and visible(outer, seen | {key}))
            return memo[key]

        return [block is not None and visible(block, frozenset()) for block in self.region]
