"""Switches that let the sites of a first call that proved fast run as written.

The first body (see ``_rewrite``) tests one switch before the hooks of each call
site and operator site: ``LOAD_CONST switch`` and a jump if false.  A switch is a
list, true while it holds an item: on, the site runs its hooks; off, the site's
instructions run alone, as in the plain function, for the cost of that test.  A
loop of 10,000 tiny calls then costs a few times the plain loop instead of a
hundred (a hook is a Python call: 0.3-0.7 us).

A site is switched off by the trial's recorder once it is muted there (its last
``MUTE_AFTER`` calls fast, none of their inputs from a recorded call; an operator:
none of its operands), so what it stops seeing is what the recorder would not
have used.  Three rules keep this sound and the trial honest:

* Only while nothing can be pending.  A switched-off site passes its values on as
  they are, so the switches of a function stay on for good once one of its calls
  deferred one (``forbid``, before the placeholder exists), in any thread.
* A trial starts with every switch on (``reset``): what one trial muted does not
  hide anything from the next.
* Every ``REHOOK_AFTER`` seconds the switches turned off are turned on again, by
  one thread for the process: a site whose callee turns slow after many fast
  calls (a cache that stops hitting) is seen again, as the recorder's muting
  sees it, at most that much later.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["REHOOK_AFTER", "Switch", "Switches"]

REHOOK_AFTER = 0.02  # seconds a switch stays off before its site is looked at again


class Switch(list):  # type: ignore[type-arg]
    """On while it holds an item.  A list, so that the body's truth test of it runs no
    Python code; a subclass equal only to itself, so that the code keeps one constant
    per site (the ``bytecode`` package merges constants that marshal alike)."""

    __slots__ = ()
    __hash__ = object.__hash__  # type: ignore[assignment]  # equal by identity only

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other


class Switches:
    """The switches of one function's call sites and operator sites."""

    __slots__ = ("_off", "allowed", "ops", "sites")

    def __init__(self, sites: int, ops: int) -> None:
        self.sites = [Switch([True]) for _ in range(sites)]
        self.ops = [Switch([True]) for _ in range(ops)]
        self.allowed = True  # False once a call of the function was deferred
        self._off: list[Switch] = []

    def mute_site(self, site: int) -> None:
        self._off_now(self.sites[site])

    def mute_op(self, op: int) -> None:
        self._off_now(self.ops[op])

    def _off_now(self, switch: Switch) -> None:
        if not switch or not self.allowed:
            return
        with _REHOOKER.lock:
            # Off only if it will come on again: no thread can start once the
            # interpreter is shutting down (a call made by an atexit handler).
            if switch and self.allowed and (self._off or _REHOOKER.later(self)):
                switch.clear()
                self._off.append(switch)

    def reset(self) -> None:
        """Every switch on again."""
        if self._off:
            with _REHOOKER.lock:
                self._on()

    def forbid(self) -> None:
        """A call is about to be deferred: placeholders may reach any site from now on."""
        if self.allowed:
            with _REHOOKER.lock:
                self.allowed = False
                self._on()

    def _on(self) -> None:  # under the lock
        for switch in self._off:
            if not switch:
                switch.append(True)
        self._off.clear()

    def as_text(self) -> str:
        off = [k for k, s in enumerate(self.sites) if not s]
        ops = [k for k, s in enumerate(self.ops) if not s]
        return (f"Switches({len(self.sites)} sites, {len(self.ops)} operator sites; off: "
                f"sites {off}, operators {ops}{'' if self.allowed else '; forbidden'})")

    __repr__ = as_text


class _Rehooker:
    """One daemon thread for the process: resets the switches turned off, a while
    after they were.  One lock for every ``Switches`` of the process, held around a
    fork, so that a child never starts with it held by a thread it does not have."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._cond = threading.Condition(self.lock)
        self._waiting: list[Switches] = []
        self._thread: threading.Thread | None = None

    def later(self, switches: Switches) -> bool:
        """Reset ``switches`` in REHOOK_AFTER seconds (called under ``lock``); False if
        no thread can do it."""
        if self._thread is None or not self._thread.is_alive():
            thread = threading.Thread(target=self._run, name="xcs-rehook", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # "can't create new thread at interpreter shutdown"
                return False
            self._thread = thread
        self._waiting.append(switches)
        self._cond.notify()
        return True

    def _run(self) -> None:
        while True:
            with self.lock:
                while not self._waiting:
                    self._cond.wait()
            time.sleep(REHOOK_AFTER)
            with self.lock:
                due, self._waiting = self._waiting, []
                for switches in due:
                    switches._on()

    def _forked(self) -> None:
        """In a child: the thread did not survive the fork; the lock, held by the
        forking thread (``before``), is replaced."""
        self.__init__()  # type: ignore[misc]


_REHOOKER = _Rehooker()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=lambda: _REHOOKER.lock.acquire(),
                        after_in_parent=lambda: _REHOOKER.lock.release(),
                        after_in_child=_REHOOKER._forked)
