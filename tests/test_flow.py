"""Stack simulation: openers are paired with calls; placeholders are resolved where observed."""

from __future__ import annotations

import importlib
import types

from bytecode import Bytecode

from xcs._cfg import Cfg
from xcs._compat import ops
from xcs._flow import simulate


def _flow(fn, deferred_all=True):
    bc = Bytecode.from_code(fn.__code__, conserve_exception_block_stackdepth=True)
    cfg = Cfg(bc)
    base = simulate(cfg, ops)
    if not deferred_all:
        return cfg, base
    return cfg, simulate(cfg, ops, frozenset(base.calls))


def test_every_call_site_is_paired_with_its_opener():
    """Plain, method, keyword, star and nested calls each form one site."""

    def f(a, b, kw):
        x = a(1)
        y = b.method(x, k=2)
        z = a(*kw, **{"q": 1})
        return len(str(a(b(x)))), y, z

    _, flow = _flow(f, deferred_all=False)
    names = sorted(c.name or "" for c in flow.calls.values())
    assert len(flow.calls) == 7  # a(1), b.method, a(*..), a(b(x)), b(x), str(...), len(...)
    assert names.count("len") == 1 and names.count("str") == 1
    assert all(c.openers for c in flow.calls.values())


def test_decorators_with_exits_and_comprehension_calls_are_not_sites():
    """Calls that push no NULL (decorator application, with-exit) are left alone."""

    def f(cm, deco):
        @deco
        def inner():
            return 1

        with cm:
            pass
        return inner

    _, flow = _flow(f, deferred_all=False)
    assert len(flow.calls) == 0


def test_placeholder_is_resolved_where_the_body_observes_it():
    """A deferred result used by an operator is resolved right before that operator."""

    def f(m):
        a = m(1)
        b = m(2)
        return a + b

    cfg, flow = _flow(f)
    where = {cfg.instrs[i].name for i in flow.resolves}
    assert "BINARY_OP" in where


def test_placeholders_flow_into_deferred_calls_and_fresh_lists_without_waiting():
    """Passing a result to another deferred call or appending it to a fresh list needs no wait."""

    def f(m, xs):
        out = []
        for x in xs:
            out.append(m(x))
        return m(out)

    cfg, flow = _flow(f)
    assert flow.resolves == {} or all(cfg.instrs[i].name in ("RETURN_VALUE",)
                                      for i in flow.resolves)


def test_list_that_escaped_does_not_collect_placeholders():
    """After a list was shown to other code, appending to it resolves the value first."""

    def f(m, xs, sink):
        out = []
        sink.keep = out
        for x in xs:
            out.append(m(x))
        return out

    cfg, base = _flow(f, deferred_all=False)
    inner, outer = sorted(base.calls)  # m(x), then out.append(...)
    flow = simulate(cfg, ops, frozenset({inner}))
    assert not flow.calls[outer].append_to  # not a gather: the list escaped before the loop
    assert flow.resolves.get(outer) == [1]  # m(x) is resolved before append sees it


def test_tuples_are_resolved_before_being_stored():
    """A tuple holding placeholders is rebuilt before it reaches a local variable."""

    def f(m):
        t = (m(1), m(2))
        return t

    cfg, flow = _flow(f)
    assert any(cfg.instrs[i].name == "STORE_FAST" for i in flow.resolves)


def test_try_and_with_bodies_are_protected_comprehensions_are_not():
    """Only user-visible handlers protect code; inlined comprehension cleanups do not."""

    def f(m, xs, cm):
        a = [m(x) for x in xs]
        try:  # two statements in the handler: not a try that only gives a value (_outline)
            b = m(1)
        except KeyError:
            m(0)
            b = 0
        with cm:
            c = m(2)
        return a, b, c

    from xcs._rewrite import Program

    first = f.__code__.co_firstlineno
    sites = Program.from_function(f).sites  # includes 3.11's separate comprehension code
    assert sorted(s.line - first for s in sites if s.protected) == [3, 5, 8]
    assert sorted(s.line - first for s in sites if not s.protected) == [1]


def test_simulation_handles_the_standard_library():
    """Every function of a dozen stdlib modules simulates with and without deferral."""
    count = 0
    for name in ["json.decoder", "argparse", "difflib", "typing", "inspect", "email.message",
                 "asyncio.tasks", "logging", "zipfile", "ast", "dataclasses", "enum"]:
        module = importlib.import_module(name)
        stack = [v.__code__ for v in vars(module).values() if isinstance(v, types.FunctionType)]
        for cls in (v for v in vars(module).values() if isinstance(v, type)):
            stack += [v.__code__ for v in vars(cls).values() if isinstance(v, types.FunctionType)]
        while stack:
            code = stack.pop()
            stack += [c for c in code.co_consts if isinstance(c, types.CodeType)]
            bc = Bytecode.from_code(code, conserve_exception_block_stackdepth=True)
            cfg = Cfg(bc)
            flow = simulate(cfg, ops)
            simulate(cfg, ops, frozenset(flow.calls))
            count += 1
    assert count > 1000


def test_the_cfg_and_the_flow_read_as_text():
    """as_text shows each instruction with its successors and handler, and each call
    site with its roles and what the simulation found (STYLE: stage objects print)."""

    def f(m, xs):
        out = []
        for x in xs:
            try:
                out.append(m(x))
            except ValueError:
                pass
        return m(out).strip()

    cfg, flow = _flow(f)
    text = cfg.as_text().splitlines()
    assert len(text) == len(cfg.instrs) and repr(cfg) == f"<Cfg of {len(cfg.instrs)} instructions>"
    loop = next(line for line in text if " FOR_ITER" in line)
    assert "*" in loop.split("->")[1], loop  # where an exhausted loop jumps
    call = next(i for i, instr in enumerate(cfg.instrs) if instr.name == "CALL")
    assert text[call].split()[:2] == [str(call), "CALL"] and " ! " in text[call]  # in the try
    lines = flow.as_text().splitlines()
    calls = [line for line in lines if line.startswith("call ")]
    assert len(calls) == len(flow.calls) == 4, lines
    assert sum("appends to out" in line for line in calls) == 1, lines  # out.append(...)
    assert all(line.split(")")[0].count("arg") == 1 for line in calls[:3]), lines  # one argument
    assert any(line.startswith("resolves: ") for line in lines), lines  # .strip() of a result
