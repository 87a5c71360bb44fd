"""Which calls' results may reach each call's operands: a forward data flow.

The trace links calls by object identity (``_trace``), which says nothing for
the objects CPython shares among all who make them: ``None``, ``True``, small
ints, one-character strings.  ``b = model(a)`` after ``a = model(x)`` returned
``2`` is a dependency the identity cannot show.  This pass shows it from the
code: every stack item and local carries the set of call instructions whose
results may have gone into computing it (through locals, operators, containers
built here), and each call records the union over its operands.

Along the flows it follows the answer over-approximates: the sets only grow
(the join is a union), and a tuple's unpacking gives each name the whole tuple's
set, so it may name a call whose result does not in fact reach the operand.  It
does not follow a value through an object's state (``o.x = m()``, ``r.append(m())``)
nor into nested code.  The graph uses it only where identity cannot answer
(``Graph.from_trace``); an edge too many costs overlap, one too few an estimate
(a replay forces a placeholder wherever the body needs it, whatever the plan said).
"""

from __future__ import annotations

from xcs._cfg import Cfg
from xcs._opcodes import Opcodes, arg

__all__ = ["fed_by"]

_Set = frozenset[int]
_NONE: _Set = frozenset()


def fed_by(cfg: Cfg, ops: Opcodes) -> dict[int, _Set]:
    """For each CALL instruction index: the CALLs whose results may reach its operands."""
    n = len(cfg.instrs)
    if n == 0:
        return {}
    states: list[tuple[tuple[_Set, ...], dict[str, _Set]] | None] = [None] * n
    states[0] = ((), {})
    work, queued = [0], {0}
    fed: dict[int, _Set] = {}
    while work:
        i = work.pop()
        queued.discard(i)
        state = states[i]
        assert state is not None
        for j, out in _successors(cfg, ops, i, state, fed):
            if j >= n:
                continue  # (the rewrite's own simulation reports such code)
            old = states[j]
            new = out if old is None else _join(old, out)
            if new is not old:
                states[j] = new
                if j not in queued:
                    queued.add(j)
                    work.append(j)
    return fed


def _join(old: tuple[tuple[_Set, ...], dict[str, _Set]],
          new: tuple[tuple[_Set, ...], dict[str, _Set]]
          ) -> tuple[tuple[_Set, ...], dict[str, _Set]]:
    """``old`` if ``new`` adds nothing to it, else their union."""
    (stack, locs), (stack2, locs2) = old, new
    if len(stack) != len(stack2):  # the rewrite's simulation rejects such code
        return old
    grown = False
    joined = list(stack)
    for k, (a, b) in enumerate(zip(stack, stack2)):
        if not b <= a:
            joined[k] = a | b
            grown = True
    merged = locs
    for name, b in locs2.items():
        a = merged.get(name, _NONE)
        if not b <= a:
            if merged is locs:
                merged = dict(locs)
            merged[name] = a | b
            grown = True
    return (tuple(joined), merged) if grown else old


def _successors(cfg: Cfg, ops: Opcodes, i: int, state: tuple[tuple[_Set, ...], dict[str, _Set]],
                fed: dict[int, _Set]) -> list[tuple[int, tuple[tuple[_Set, ...], dict[str, _Set]]]]:
    stack, locs = list(state[0]), state[1]
    out = []
    block = cfg.region[i]
    if block is not None and isinstance(block.stack_depth, int) and block.stack_depth <= len(stack):
        pushed = 2 if block.push_lasti else 1
        out.append((cfg.handler(block), (tuple(stack[:block.stack_depth]) + (_NONE,) * pushed,
                                         locs)))
    instr = cfg.instrs[i]
    name = instr.name
    roles = ops.call_roles(instr)
    stores = ops.local_stores(instr)
    loads = ops.local_loads(instr)
    if name in ops.CALL_PREFIX:
        pass
    elif roles is not None:
        taken = _take(stack, len(roles))
        fed[i] = fed.get(i, _NONE).union(*taken)
        stack.append(frozenset({i}))
    elif stores is not None or loads is not None:
        if stores is not None:
            locs = dict(locs)
            for local, value in zip(stores, reversed(_take(stack, len(stores)))):
                locs[getattr(local, "name", local)] = value
        for local in loads or ():
            stack.append(locs.get(getattr(local, "name", local), _NONE))
    elif name == "COPY":
        stack.append(stack[-arg(instr)])
    elif name == "SWAP":
        n = arg(instr)
        stack[-1], stack[-n] = stack[-n], stack[-1]
    else:
        consumed = ops.consumed(instr)
        if consumed is None:
            consumed = len(stack)
        kept = ops.kept(instr)
        taken = _take(stack, consumed)
        union = _NONE.union(*taken)
        below = tuple(stack)
        for j, jump in cfg.succ[i]:
            produced = max(consumed + instr.stack_effect(jump=jump)
                           + ops.EFFECT_FIX.get(name, 0), 0)
            stays = tuple(taken[:min(kept, produced)])  # (an exhausted FOR_ITER's iterator)
            out.append((j, (below + stays + (union,) * (produced - len(stays)), locs)))
        return out
    after = (tuple(stack), locs)
    out.extend((j, after) for j, _ in cfg.succ[i])
    return out


def _take(stack: list[_Set], n: int) -> list[_Set]:
    if n <= 0:
        return []
    taken = stack[-n:]
    del stack[-n:]
    return taken
