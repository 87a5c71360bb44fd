"""The objects deferred calls own (xcs/_owners.py), looked at without a replay."""

from __future__ import annotations

import functools
from collections import deque

from xcs import _owners


class Task:
    """What _owners needs of a task: its invocation and its owned keys."""

    def __init__(self, inv):
        self.inv = inv
        self.owns = None


class Thing:
    def method(self):
        return self


def test_immutable_builtins_are_never_owned():
    """Strings, numbers, None, functions and modules are skipped; tuples only by their items."""
    inner = []
    found, overflow = _owners.reach(("s", 1, 2.5, None, b"x", len, _owners, (inner, "t")), deep=True)
    assert found == [inner] and not overflow


def test_containers_bound_methods_and_partials_are_followed():
    """Items of containers, the self of a bound method and a partial's arguments are reached."""
    a, b, c, d, thing = [], {}, set(), deque(), Thing()
    values = ({"k": [a]}, functools.partial(print, b), thing.method, [c, (d,)])
    found, _ = _owners.reach(values, deep=True)
    assert {id(x) for x in (a, b, c, d, thing)} <= {id(x) for x in found}


def test_a_containers_own_method_owns_the_container_not_its_items():
    """``cache.get`` works on the dict: its values are not scanned."""
    value = []
    cache = {"k": value}
    found, _ = _owners.reach((cache.get,), deep=True)
    assert [id(x) for x in found] == [id(cache)]


def test_shallow_reach_looks_only_at_the_objects():
    """An attribute's owner or a subscripted container: not what it holds."""
    item = []
    found, _ = _owners.reach(([item],), deep=False)
    assert len(found) == 1 and found[0] is not item


def test_past_the_budget_a_call_owns_everything():
    """A call that received more objects than the budget owns everything mutable."""
    task, other = Task("inv"), Task("inv")
    big = [[] for _ in range(_owners.BUDGET + 1)]
    _owners.own(task, (big,))
    try:
        assert task.owns == [0]
        assert _owners.owners(([],), 0, "inv") == [task]  # any mutable object waits for it
        assert _owners.owners(("text", 3), 0, "inv") == []  # immutable builtins do not
    finally:
        _owners.disown(task)
        _owners.disown(other)
    assert 0 not in _owners.OWNED


def test_owners_are_those_of_the_same_invocation_until_disowned():
    """A touch waits only for its own invocation's calls, and only until they finish."""
    msgs = ["sys"]
    mine, theirs = Task("mine"), Task("theirs")
    _owners.own(mine, (msgs,))
    _owners.own(theirs, (msgs,))
    try:
        assert _owners.owners((msgs,), 0, "mine") == [mine]
        assert _owners.owners(({"m": msgs},), 0, "mine") == []  # shallow: the dict only
        assert _owners.owners(({"m": msgs},), 1, "mine") == [mine]  # deep: what it holds
        assert _owners.owners((msgs.append, "x"), 2, "mine") == [mine]  # a saved bound method
        assert _owners.owners((len, msgs), 2, "mine") == [mine]
    finally:
        _owners.disown(mine)
    assert _owners.owners((msgs,), 0, "mine") == []
    _owners.disown(theirs)
    assert id(msgs) not in _owners.OWNED


def test_a_closure_is_checked_through_its_cells():
    """Calling a function that closes over an owned object waits for its owner."""
    msgs = ["sys"]
    task = Task("inv")

    def add(x):
        msgs.append(x)

    _owners.own(task, (msgs,))
    try:
        assert _owners.owners((add, "x"), 2, "inv") == [task]
    finally:
        _owners.disown(task)
