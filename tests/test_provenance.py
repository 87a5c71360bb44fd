"""Which calls' results may reach each call's operands, read from the code."""

from __future__ import annotations

from xcs._rewrite import Program


def _fed(fn):
    """Line of each call (from the ``def``) -> the lines of the calls that may feed it."""
    prog = Program(fn)
    first = fn.__code__.co_firstlineno

    def line(site):
        return prog.sites[site].line - first

    return {line(s): sorted(line(t) for t in sources) for s, sources in prog.fed_by().items()}


def m(*args):
    return args


def test_each_call_of_a_chain_is_fed_by_the_one_before():
    def chain(x):
        a = m(x)
        b = m(a)
        c = m(b)
        return m(c)

    assert _fed(chain) == {1: [], 2: [1], 3: [2], 4: [3]}


def test_operators_methods_and_containers_carry_what_they_were_made_from():
    def body(x):
        a = m(x)
        b = m(a + 1)
        s = str(b)
        c = s.strip()
        d = m([c, 2], key={"k": a})
        return m(f"{d!r}")

    fed = _fed(body)
    assert fed[2] == [1]
    assert fed[3] == [2]
    assert fed[4] == [3]  # ``.strip()`` of what ``str`` made
    assert fed[5] == [1, 4]
    assert fed[6] == [5]


def test_what_the_stack_shuffles_move_stays_apart():
    """``o.x, b = m(1), m(2)`` swaps the two results before it stores them (``SWAP``);
    ``c = d = m(3)`` copies one (``COPY``)."""
    def body(o):
        o.x, b = m(1), m(2)
        c = d = m(3)
        return m(b), m(c), m(d), m(4)

    prog = Program(body)
    fed = prog.fed_by()
    by_line = {}  # line (from the def) -> its sites, in the order they run
    for site in sorted(fed):
        by_line.setdefault(prog.sites[site].line - body.__code__.co_firstlineno, []).append(site)
    one, two = by_line[1]
    (three,) = by_line[2]
    mb, mc, md, m4 = by_line[3]
    assert (fed[one], fed[two], fed[three]) == (frozenset(), frozenset(), frozenset())
    assert (fed[mb], fed[mc], fed[md], fed[m4]) == ({two}, {three}, {three}, frozenset())


def test_a_loop_counter_is_fed_by_no_call_of_the_body():
    """``m(i)`` in ``for i in range(n)`` depends on ``range`` only, not on the last
    iteration's calls; a value carried round the loop depends on them."""
    def body(n):
        acc = 0
        for i in range(n):
            a = m(i)
            acc = m(acc, a)
        return acc

    fed = _fed(body)
    assert fed[3] == [2]  # range(n)
    assert fed[4] == [3, 4]  # a, and acc from the last iteration


def test_a_handler_joins_what_either_path_stored():
    """The handler's ``b = out`` reaches ``m(b)`` as the ``try``'s ``b = m(a)`` does.
    (A ``try`` that only gives a value is outlined: one call, its own site; this
    one runs as written, its handler inside the body's code.)"""
    def body(xs):
        out = m(0)
        for x in xs:
            a = m(x)
            try:
                b = m(a)
            except ValueError:
                if x:
                    continue
                b = out
            out = m(b)
        return out

    fed = _fed(body)
    assert fed[5] == [3]
    assert fed[10] == [1, 5, 10]  # m(a) through the try; out, first or carried, through the handler
