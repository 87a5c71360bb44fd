"""Random compound-AI programs for the differential tests, as Python source text.

A program is a list of statements, each a ``(kind, params)`` pair of plain
integers (so hypothesis shrinks it to fewer and simpler statements), rendered
into the source of ``def prog(q, xs, n, flag, agent)``.  The same source is
exec'd twice: once with ``DECO = jit`` and once with ``DECO`` the identity, each
time against its own ``Env`` of slow, logging callees.  ``compare`` then runs
both on the same arguments and checks that they return, raise and call the same.

Callee outputs are deterministic functions of their (canonical) arguments,
except ``nd``, which appends a fresh token ``~dddddddd`` to every result.  The
token has a fixed width, so lengths, and branches on lengths, do not depend on
it; ``canon`` replaces tokens (and what is left of one cut short) with ``~ND``
before values are compared, and
``compare`` checks that every token a jitted call returned, stored or passed to a
callee was produced during that very call (never one left over from the trial or
an earlier call).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import linecache
import re
import textwrap
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from xcs._tasks import Pending

LATENCY = 0.001  # per slow call: above xcs's 100 us threshold, cheap enough for many programs
TOKEN = re.compile(r"~\d{8}")
# A token, or what is left of one a helper cut short (``clean`` keeps 30 characters):
# ``~0000461`` of ``~00004616``.  The counter is shared by the plain and the jitted
# run, so a cut token's digits differ between them when the two fall in different tens.
_TOKEN_OR_CUT = re.compile(r"~\d{1,8}")
_tokens = itertools.count(1)
_token_lock = threading.Lock()


def canon(value: Any) -> Any:
    """``value`` with every non-deterministic token replaced by ``~ND``."""
    if isinstance(value, str):
        return _TOKEN_OR_CUT.sub("~ND", value)
    if isinstance(value, (list, tuple)):
        return type(value)(canon(v) for v in value)
    if isinstance(value, dict):
        return {canon(k): canon(v) for k, v in value.items()}
    return value


def tokens(value: Any) -> set[str]:
    """The non-deterministic tokens anywhere in ``value``."""
    if isinstance(value, str):
        return set(TOKEN.findall(value))
    if isinstance(value, (list, tuple)):
        return set().union(*map(tokens, value)) if value else set()
    if isinstance(value, dict):
        return tokens(list(value.items()))
    return set()


def shape(value: Any) -> Any:
    """The exact types of ``value`` and, recursively, of what it holds."""
    kind = type(value)
    if kind in (list, tuple):
        return (kind.__name__, [shape(v) for v in value])
    if kind is dict:
        return ("dict", [(shape(k), shape(v)) for k, v in value.items()])
    return kind.__name__


def find_pending(value: Any, path: str = "result") -> str | None:
    """Where a placeholder hides in ``value`` (containers and attributes), or None."""
    if type(value) is Pending or isinstance(value, Pending):
        return path
    if type(value) in (list, tuple, set, frozenset):
        for k, v in enumerate(value):
            where = find_pending(v, f"{path}[{k}]")
            if where:
                return where
    elif type(value) is dict:
        for k, v in value.items():
            where = find_pending(k, f"{path} key") or find_pending(v, f"{path}[{k!r}]")
            if where:
                return where
    elif isinstance(value, BaseException):
        return find_pending(list(value.args), f"{path}.args")
    return None


def _digest(text: str) -> int:
    return int(hashlib.md5(text.encode()).hexdigest()[:8], 16)


class XError(Exception):
    """A user-defined exception a callee raises."""


ERROR_TYPES = (ValueError, KeyError, XError)


class Env:
    """The slow callees of one side (plain or jit), their call log and outside state."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log: list[tuple[Any, ...]] = []
        self.produced: set[str] = set()  # nd tokens made since the last reset
        self.consumed: set[str] = set()  # nd tokens passed to callees since the last reset
        self.leaks: list[str] = []  # placeholders that reached a callee's arguments
        self.errors: dict[tuple[Any, ...], BaseException] = {}
        self.active = 0  # slow calls running right now
        self.state: dict[str, Any] = {}
        self.agent = Agent(self.slow("model"))

    def reset(self, mode: str) -> None:
        self.log = []
        self.produced = set()
        self.consumed = set()
        self.leaks = []
        self.errors = {}
        self.state.clear()
        self.state.update(mode=mode, fin=0)

    def _enter(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        leak = find_pending([args, kwargs], f"{name}() arguments")
        text = ", ".join([*map(str, canon(args)),
                          *(f"{k}={canon(v)}" for k, v in sorted(kwargs.items()))])
        with self.lock:
            self.log.append((name, repr(canon(args)), repr(canon(sorted(kwargs.items())))))
            self.consumed |= tokens([args, kwargs])
            if leak:
                self.leaks.append(leak)
            self.active += 1
        return text

    def _leave(self) -> None:
        with self.lock:
            self.active -= 1

    def error(self, key: tuple[Any, ...], kind: type[BaseException], message: str) -> BaseException:
        """The one exception object this side raises for ``key``."""
        with self.lock:
            if key not in self.errors:
                self.errors[key] = kind(message)
            return self.errors[key]

    def slow(self, name: str, fails: Any = None, nondeterministic: bool = False) -> Any:
        """A slow callee: sleeps, logs ``(name, args)``, returns a short string."""

        def callee(*args: Any, **kwargs: Any) -> str:
            text = self._enter(name, args, kwargs)
            try:
                time.sleep(LATENCY)
                out = f"{name}({text})"
                if len(out) > 40:  # keep results short however deep the chain
                    out = f"{out[:24]}#{_digest(out) % 10**6:06d})"
                if fails is not None:
                    problem = fails(text)
                    if problem is not None:
                        kind, message = problem
                        raise self.error((name, text), kind, message)
                if nondeterministic:
                    with _token_lock:
                        token = f"~{next(_tokens) % 10**8:08d}"
                    with self.lock:
                        self.produced.add(token)
                    out += token
                return out
            finally:
                self._leave()

        callee.__name__ = callee.__qualname__ = name
        return callee

    def namespace(self, deco: Any) -> dict[str, Any]:
        """The globals a rendered program is exec'd in."""
        env = self

        def risky_fails(text: str) -> tuple[type[BaseException], str] | None:
            h = _digest(text)
            if h % 4:
                return None
            kind = ERROR_TYPES[(h >> 4) % len(ERROR_TYPES)]
            return kind, f"risky failed on {text}"

        def llm_fails(text: str) -> tuple[type[BaseException], str] | None:
            return (RuntimeError, f"llm refused {text}") if "boom" in text else None

        class Span:
            """A context manager the program opens around calls (logged, not slow)."""

            def __init__(self, label: Any) -> None:
                self.label = label

            def __enter__(self) -> Span:
                with env.lock:
                    env.log.append(("span-enter", repr(canon(self.label)), "[]"))
                return self

            def __exit__(self, *exc: Any) -> None:
                with env.lock:
                    env.log.append(("span-exit", repr(canon(self.label)), repr(exc[0])))

        jt, pr, rs = self.slow("jt"), self.slow("pair"), self.slow("resp")

        def jtool(*args: Any) -> str:  # JSON, except for some inputs
            out = jt(*args)
            return "{oops " + out if _digest(out) % 5 == 0 else json.dumps({"t": out})

        def pair(*args: Any) -> tuple[str, ...]:  # two items, except for some inputs
            out = pr(*args)
            return (out, out, out) if _digest(out) % 5 == 0 else (out, out[::-1])

        def resp(*args: Any) -> Any:  # a response object, except for some inputs
            out = rs(*args)
            return None if _digest(out) % 5 == 0 else Response(out)

        def clean(text: str) -> str:  # a fast helper on a result
            return text.strip().lower()[:30]

        self.ns = {
            "DECO": deco, "json": json, "Box": Box, "COUNT": 0, "STATE": self.state, "span": Span,
            "XError": XError, "jtool": jtool, "pair": pair, "resp": resp, "clean": clean,
            "llm": self.slow("llm", llm_fails), "tool": self.slow("tool"),
            "risky": self.slow("risky", risky_fails), "nd": self.slow("nd", nondeterministic=True),
        }
        return self.ns


class Agent:
    """An object holding a model; programs call its methods and set its attributes."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.last: Any = None
        self.history: list[Any] = []

    def reset(self) -> None:
        self.last = None
        self.history = []

    def state(self) -> Any:
        return {"last": self.last, "history": self.history}

    def ask(self, *args: Any) -> Any:
        return self.model("ask", *args)


class Box:
    """A plain object the program makes and sets attributes on."""


class Choice:
    def __init__(self, text: str) -> None:
        self.text = text


class Response:
    """Shaped like an API client's response: ``r.choices[0].text``."""

    def __init__(self, text: str) -> None:
        self.choices = [Choice(text)]


# -- rendering ----------------------------------------------------------------------------

PRELUDE = '''
@DECO
def sub(x):
    return [tool(x, i) for i in range(2)]


@DECO
def sub2(x):
    return sub(x) + [llm("sub2", x)]

'''

KINDS = ("call", "listcomp", "dictcomp", "genexpr", "for", "while", "if", "ternary", "strop",
         "try", "helper", "lambda", "early", "with", "sub", "state", "index", "method", "star",
         "nd", "mutate", "dset", "unpack", "box", "outattr", "logic", "identity", "zip", "match",
         "counter", "closure", "fmt", "nested")
# Work on results, failing on some inputs (test_differential's continuation test mixes
# it into the kinds above: in every program it would make too many trials raise).
CONT_KIND = "cont"
CALLEES = ("llm", "tool", "risky", "agent.ask", "nd", "agent.model")


@dataclass
class Program:
    """A rendered program: its source and what it uses."""

    stmts: list[tuple[str, tuple[int, ...]]]
    source: str = ""
    nondeterministic: bool = False
    kinds: set[str] = field(default_factory=set)


class _Render:
    def __init__(self) -> None:
        self.strs = ["q"]
        self.lists = ["xs"]
        self.dicts: list[str] = []
        self.lines: list[str] = []
        self.k = 0
        self.uses_nd = False

    def new(self) -> str:
        self.k += 1
        return f"v{self.k}"

    def s(self, i: int) -> str:
        return self.strs[i % len(self.strs)]

    def ls(self, i: int) -> str:
        return self.lists[i % len(self.lists)]

    def callee(self, i: int) -> str:
        name = CALLEES[i % len(CALLEES)]
        self.uses_nd |= name == "nd"
        return name

    def sexpr(self, i: int, j: int) -> str:
        """A string expression built from the known string values."""
        v, w = self.s(j), self.s(j // 2 + 1)
        forms = (v, f'f"Summarize {{{v}}} for {{q}}"', f'{v} + "/" + {w}', f"{v}.upper()",
                 f"str(len({v}))", f"{v}[:4]")  # [:4] never cuts into a token
        return forms[i % len(forms)]

    def args(self, i: int, j: int) -> str:
        """A call's argument list: positional, keyword or starred."""
        forms = (self.sexpr(j, i), f"{self.sexpr(i, j)}, {self.s(i + j)}",
                 f"{self.sexpr(j, i)}, style={self.s(i)}", f"*{self.ls(j)}",
                 f"{self.s(j)}, *{self.ls(i)}, n=n", f"{self.s(j)}, {self.ls(i)}",
                 f"[{self.s(j)}, [{self.s(i)}]]", f"x={{'k': ({self.s(j)}, {self.s(i + 1)})}}")
        return forms[i % len(forms)]

    def cond(self, i: int, j: int) -> str:
        v = self.s(j)
        forms = ("flag", "n > 1", f"len({v}) % 2 == 0", f'"o" in {v}', 'STATE["mode"] == "a"',
                 f"len({self.ls(j)}) > 1", f'{v}.startswith("l")', f"not {self.ls(j)}")
        return forms[i % len(forms)]

    def sort(self, expr: str) -> str:
        return f"sorted({expr}@@KEY@@)"

    def emit(self, text: str, indent: int = 4) -> None:
        self.lines.append(textwrap.indent(textwrap.dedent(text).strip("\n"), " " * indent))

    def stmt(self, kind: str, p: tuple[int, ...]) -> None:
        a, b, c, d = p
        if kind == "call":
            v = self.new()
            self.emit(f"{v} = {self.callee(a)}({self.args(b, c)})")
            self.strs.append(v)
        elif kind == "listcomp":
            v = self.new()
            self.emit(f"{v} = [{self.callee(a)}(x, {self.sexpr(b, c)}) for x in {self.ls(d)}]")
            self.lists.append(v)
        elif kind == "dictcomp":
            v = self.new()
            self.emit(f"{v} = {{x + str(i): {self.callee(a)}(x) for i, x in enumerate({self.ls(b)})}}")
            self.dicts.append(v)
            w = self.new()
            self.emit(f"{w} = list({v}.values())" if c % 2
                      else f"{w} = [k + '=' + x for k, x in {v}.items()]")
            self.lists.append(w)
        elif kind == "genexpr":
            v = self.new()
            sep = ('""', '", "', '"\\n"')[b % 3]
            self.emit(f"{v} = {sep}.join({self.callee(a)}(x, {self.s(c)}) for x in {self.ls(d)})")
            self.strs.append(v)
        elif kind == "for":
            v = self.new()
            extra = ("", "    if len(x) > 30:\n        break\n",
                     f"    if {self.cond(c, d)}:\n        continue\n")[b % 3]
            self.emit(f"{v} = []\nfor i, x in enumerate({self.ls(d)}):\n{extra}"
                      f"    {v}.append({self.callee(a)}(x, i))")
            self.lists.append(v)
        elif kind == "while":
            v = self.new()
            self.emit(f"{v} = []\ni = 0\nwhile i < n:\n    {v}.append({self.callee(a)}({self.s(b)}, i))\n"
                      f"    i += 1")
            self.lists.append(v)
        elif kind == "if":
            v = self.new()
            self.emit(f"if {self.cond(a, b)}:\n    {v} = {self.callee(c)}({self.sexpr(d, b)})\n"
                      f"else:\n    {v} = {self.callee(c + 1)}({self.args(d, a)})")
            self.strs.append(v)
        elif kind == "ternary":
            v = self.new()
            self.emit(f"{v} = {self.callee(a)}({self.s(b)}) if {self.cond(c, d)} else "
                      f"{self.sexpr(d, c)}")
            self.strs.append(v)
        elif kind == "strop":
            v = self.new()
            forms = (f'"".join({self.sort(self.ls(b))})', f"json.dumps({self.ls(b)})",
                     f"str(len({self.ls(b)}))", f'f"{{{self.s(b)}}}|{{{self.s(c)}}}"',
                     f'", ".join(map(str.upper, {self.ls(b)}))',
                     f"json.dumps({self.dicts[c % len(self.dicts)]})" if self.dicts else "q * 2")
            self.emit(f"{v} = {forms[a % len(forms)]}")
            self.strs.append(v)
        elif kind == "try" and b % 2:  # a try that only gives a value: outlined (_outline)
            v, w = self.new(), self.new()
            handler = ("except (ValueError, KeyError, XError) as e", "except XError",
                       "except (ValueError, json.JSONDecodeError) as e")[(b // 2) % 3]
            given = "str(e)" if " as e" in handler else repr("fallback")
            if c % 2:
                self.emit(f"{w} = []\nfor x in {self.ls(d)}:\n    try:\n"
                          f"        {w}.append({self.callee(a)}(x, {self.s(c)}))\n"
                          f"    {handler}:\n        {w}.append({given})")
                self.lists.append(w)
            else:
                value = (f"json.loads(jtool({self.s(d)}))['t']" if a % 3 == 0 else
                         f"{self.callee(a)}({self.args(d, c)}).strip()")
                self.emit(f"try:\n    {v} = {value}\n{handler}:\n    {v} = {given}")
                self.strs.append(v)
        elif kind == "try":
            v = self.new()
            handler = ("except (ValueError, KeyError, XError, RuntimeError) as e",
                       "except Exception as e", "except XError as e")[b % 3]
            final = '\nfinally:\n    STATE["fin"] += 1' if c % 2 else ""
            self.emit(f"try:\n    {v} = {self.callee(a)}({self.args(d, c)})\n{handler}:\n"
                      f'    {v} = "fallback:" + type(e).__name__{final}')
            self.strs.append(v)
        elif kind == "helper":
            h, v = self.new(), self.new()
            call = (f"[{h}(x) for x in {self.ls(c)}]", f"list(map({h}, {self.ls(c)}))")[b % 2]
            self.emit(f"def {h}(x):\n    return {self.callee(a)}(x, {self.s(d)})\n{v} = {call}")
            self.lists.append(v)
        elif kind == "lambda":
            h, v = self.new(), self.new()
            self.emit(f"{h} = lambda x: {self.callee(a)}(x)\n{v} = list(map({h}, {self.ls(b)}))")
            self.lists.append(v)
        elif kind == "early":
            self.emit(f"if {self.cond(a, b)}:\n    return {self.ret(c)}")
        elif kind == "with":
            v = self.new()
            self.emit(f"with span({self.s(b)}):\n    {v} = {self.callee(a)}({self.sexpr(c, d)})")
            self.strs.append(v)
        elif kind == "sub":
            v = self.new()
            self.emit(f"{v} = {('sub', 'sub2')[a % 2]}({self.s(b)})")
            self.lists.append(v)
        elif kind == "state":
            self.emit(f'STATE["k{self.k}"] = {self.s(a) if b % 2 else self.ls(a)}')
        elif kind == "index":
            v = self.new()
            self.emit(f"{v} = {self.ls(a)}[n]" if b % 2 or not self.dicts else
                      f'{v} = {self.dicts[a % len(self.dicts)]}[q + "0"]')
            self.strs.append(v)
        elif kind == "method":
            v = self.new()
            self.emit(f"{v} = agent.ask({self.s(a)}, {self.sexpr(b, c)})")
            self.strs.append(v)
        elif kind == "star":
            v = self.new()
            self.emit(f"{v} = {self.callee(a)}(*{self.ls(b)}, *[{self.s(c)}], key={self.s(d)})")
            self.strs.append(v)
        elif kind == "nd":
            v = self.new()
            self.uses_nd = True
            self.emit(f"{v} = nd({self.sexpr(a, b)})")
            self.strs.append(v)
        elif kind == "mutate":  # a list changes after calls may have received it
            lst, call = self.ls(b), self.callee(c)
            forms = (f"{lst}.append({call}({self.s(d)}))",
                     f"{lst}.extend([{call}({self.s(d)}), {self.callee(d)}({self.s(c)})])",
                     f"{lst}.insert(0, {self.s(d)})", f"{lst}.reverse()", f"{lst}.sort(key=len)",
                     f"if {lst}:\n    {lst}.pop()", f"if {lst}:\n    {lst}[0] = {call}({self.s(d)})",
                     f"{lst} += [{self.s(d)}]", f"if {lst}:\n    del {lst}[-1]")
            self.emit(forms[a % len(forms)])
        elif kind == "dset":
            if not self.dicts:
                v = self.new()
                self.emit(f"{v} = {{}}")
                self.dicts.append(v)
            dct, call = self.dicts[b % len(self.dicts)], self.callee(c)
            forms = (f"{dct}[{self.s(d)}] = {call}({self.s(c)})",
                     f"{dct}.update({{{self.s(d)}: {call}({self.s(c)})}})",
                     f"{dct}.setdefault({self.s(d)}, {call}({self.s(c)}))",
                     f"{dct}.pop({self.s(d)}, None)",
                     f"for x in {self.ls(d)}:\n    {dct}[x] = {call}(x)")
            self.emit(forms[a % len(forms)])
        elif kind == "unpack":
            v, w = self.new(), self.new()
            if a % 2:
                self.emit(f"{v}, {w} = {self.callee(b)}({self.s(c)}), {self.callee(c)}({self.s(d)})")
                self.strs += [v, w]
            else:
                self.emit(f"{v}, *{w} = [{self.callee(b)}(x) for x in {self.ls(c)}] + [{self.s(d)}]")
                self.strs.append(v)
                self.lists.append(w)
        elif kind == "box":  # attributes of an object the body made
            box, v = self.new(), self.new()
            self.emit(f"{box} = Box()\n{box}.v = {self.callee(a)}({self.s(b)})\n"
                      f"{box}.w = {self.callee(c)}({self.s(d)})\n{v} = {box}.v + {box}.w")
            self.strs.append(v)
        elif kind == "outattr":  # state of an object the caller owns
            self.emit((f"agent.last = {self.s(b)}", f"agent.history.append({self.s(b)})",
                       f"agent.history.extend({self.ls(b)})")[a % 3])
        elif kind == "logic":
            v = self.new()
            forms = (f"{v} = {self.callee(b)}({self.s(c)}) or {self.callee(c)}({self.s(d)})",
                     f"{v} = {self.callee(b)}({self.s(c)}) and {self.s(d)}",
                     f"if ({v} := {self.callee(b)}({self.s(c)})) and len({v}) > 9:\n"
                     f"    {v} = {v}.upper()",
                     f"{v} = {self.s(c)} if {self.s(d)} else {self.callee(b)}({self.s(c)})")
            self.emit(forms[a % len(forms)])
            self.strs.append(v)
        elif kind == "identity":
            v = self.new()
            x, y = self.s(b), self.s(c)
            self.emit(f"{v} = type({x}).__name__ + str({x} is None) + str(isinstance({x}, str))"
                      f" + str({x} == {y}) + str({x} is {y}) + str({x} in {self.ls(d)})")
            self.strs.append(v)
        elif kind == "zip":
            v = self.new()
            self.emit(f"{v} = [{self.callee(a)}(x, y) for x, y in zip({self.ls(b)}, {self.ls(c)})]")
            self.lists.append(v)
        elif kind == "match":
            v = self.new()
            self.emit(f"match len({self.s(a)}) % 3:\n"
                      f"    case 0:\n        {v} = {self.callee(b)}({self.s(c)})\n"
                      f"    case 1:\n        {v} = {self.s(d)}\n"
                      f"    case _:\n        {v} = {self.callee(c)}({self.s(d)})")
            self.strs.append(v)
        elif kind == "counter":
            self.emit(f"COUNT = COUNT + len({(self.s(a), self.ls(a))[b % 2]})")
        elif kind == "closure":  # a nested function appends to the body's list
            out, h, v = self.new(), self.new(), self.new()
            self.emit(f"{out} = []\ndef {h}(x):\n    {out}.append({self.callee(a)}(x))\n"
                      f"    return len({out})\n{v} = [str({h}(x)) for x in {self.ls(b)}]")
            self.lists += [out, v]
        elif kind == "fmt":
            v = self.new()
            x, y = self.s(b), self.s(c)
            self.emit(f"{v} = " + (f'"%s-%s" % ({x}, {y})', f'"{{}}|{{}}".format({x}, {y})',
                                   f"{x}.upper().strip() + {y}.lower()")[a % 3])
            self.strs.append(v)
        elif kind == "cont":  # work on results: continuations, with their error paths
            v, w = self.new(), self.new()
            x, call = self.s(b), self.callee(c)
            forms = (f"{v} = json.loads(jtool({x}))['t']",
                     f"{v}, {w} = pair({x})\n{v} = {v} + {w}",
                     f"{v} = resp({x}).choices[0].text",
                     f"{v} = {call}({x}).strip().upper()[:30]",
                     f"{v} = str(len({call}({x}))) + clean({call}({self.s(d)}))",
                     f"{w} = [({call}(x), len(x)) for x in {self.ls(d)}]\n"
                     f"{v} = str({w}[0][1]) if {w} else {x}",
                     f"{w} = {{}}\nfor x in {self.ls(d)} + {self.ls(d)}:\n"
                     f"    if x in {w}:\n        {v} = {w}[x]\n"
                     f"    else:\n        {v} = {w}[x] = {call}(x)\n{v} = str(len({w}))")
            self.emit(forms[a % len(forms)])
            self.strs.append(v)
        elif kind == "nested":
            v = self.new()
            self.emit(f"{v} = {self.callee(a)}({self.callee(b)}({self.s(c)}), "
                      f"{self.callee(c)}({self.s(d)}))")
            self.strs.append(v)
        else:  # pragma: no cover
            raise ValueError(kind)

    def ret(self, i: int) -> str:
        names = self.strs[1:] + self.lists[1:] + self.dicts
        if not names:
            return "q"
        forms = (f"[{', '.join(names)}]", f"({', '.join(names)},)",
                 "{" + ", ".join(f"{n!r}: {n}" for n in names) + "}", names[-1])
        return forms[i % len(forms)]


def render(stmts: list[tuple[str, tuple[int, ...]]], final: int = 0) -> Program:
    """The source of ``prog`` for ``stmts``, returning a collection of its values."""
    r = _Render()
    for kind, params in stmts:
        r.stmt(kind, params)
    r.emit(f"return {r.ret(final)}")
    body = "\n".join(r.lines)
    key = ", key=len" if r.uses_nd else ""  # equal canonical strings may sort by their tokens
    source = (PRELUDE + "@DECO\ndef prog(q, xs, n, flag, agent):\n    global COUNT\n" + body
              + "\n").replace(
        "@@KEY@@", key)
    return Program(stmts, source, r.uses_nd, {k for k, _ in stmts})


# -- running and comparing --------------------------------------------------------------------


@dataclass
class Outcome:
    """What one call of a program did."""

    returned: Any = None
    raised: BaseException | None = None
    log: list[tuple[Any, ...]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    errors: dict[tuple[Any, ...], BaseException] = field(default_factory=dict)
    produced: set[str] = field(default_factory=set)
    consumed: set[str] = field(default_factory=set)
    leaks: list[str] = field(default_factory=list)
    active_after: int = 0


_counter = itertools.count()


def build(program: Program, jit: Any) -> tuple[Any, Env, Any, Env]:
    """``(plain prog, its env, jitted prog, its env)`` from one source text."""
    name = f"<generated-{next(_counter)}>"
    # The source is findable (as a notebook cell's is): xcs outlines the try statements
    # that only give a value from the source, checked against the code.
    linecache.cache[name] = (len(program.source), None, program.source.splitlines(True), name)
    code = compile(program.source, name, "exec")
    plain_env, jit_env = Env(), Env()
    plain_ns = plain_env.namespace(lambda f: f)
    jit_ns = jit_env.namespace(jit)
    exec(code, plain_ns)
    exec(code, jit_ns)
    return plain_ns["prog"], plain_env, jit_ns["prog"], jit_env


def snapshot(value: Any) -> Any:
    """A copy of ``value``'s lists, tuples and dicts (the leaves are shared)."""
    if type(value) in (list, tuple):
        return type(value)(snapshot(v) for v in value)
    if type(value) is dict:
        return {k: snapshot(v) for k, v in value.items()}
    return value


def run(fn: Any, env: Env, args: tuple[Any, ...], mode: str) -> Outcome:
    """Call ``fn(*args)`` against ``env`` (reset first); what it did."""
    env.reset(mode)
    env.ns["COUNT"] = 0
    env.agent.reset()
    out = Outcome()
    try:
        out.returned = fn(*args)
    except Exception as exc:
        out.raised = exc
    out.active_after = env.active
    out.log = list(env.log)
    # Everything outside the function's frame that it may have changed.
    out.state = snapshot({"STATE": env.state, "agent": env.agent.state(), "COUNT": env.ns["COUNT"],
                          "arguments": [a for a in args if type(a) in (list, dict)]})
    out.errors = dict(env.errors)
    out.produced = set(env.produced)
    out.consumed = set(env.consumed)
    out.leaks = list(env.leaks)
    return out


def compare(plain: Outcome, jitted: Outcome, source: str, args: Any) -> None:
    """Assert that the jitted call behaved as the plain one; the message shows why not."""
    where = f"\nprogram:\n{source}\nargs: {args!r}"
    assert jitted.active_after == 0, f"a deferred call outlived its invocation{where}"
    assert not jitted.leaks, f"placeholder passed to a callee: {jitted.leaks[0]}{where}"
    assert find_pending(jitted.returned) is None, \
        f"placeholder at {find_pending(jitted.returned)}{where}"
    assert find_pending(jitted.state, "state") is None, \
        f"placeholder at {find_pending(jitted.state, 'state')}{where}"
    if plain.raised is None:
        assert jitted.raised is None, f"jit raised {jitted.raised!r}, plain returned{where}"
        assert canon(jitted.returned) == canon(plain.returned), \
            f"results differ:\n plain {plain.returned!r}\n jit   {jitted.returned!r}{where}"
        assert shape(jitted.returned) == shape(plain.returned), f"result types differ{where}"
        assert Counter(jitted.log) == Counter(plain.log), \
            f"calls differ:\n plain {sorted(plain.log)}\n jit   {sorted(jitted.log)}{where}"
    else:
        assert jitted.raised is not None, \
            f"jit returned {jitted.returned!r}, plain raised {plain.raised!r}{where}"
        assert type(jitted.raised) is type(plain.raised), \
            f"exception types differ: plain {plain.raised!r}, jit {jitted.raised!r}{where}"
        assert canon(str(jitted.raised)) == canon(str(plain.raised)), \
            f"messages differ: plain {plain.raised!r}, jit {jitted.raised!r}{where}"
        keys = [k for k, e in plain.errors.items() if e is plain.raised]
        if keys:  # a callee raised it: the jitted call must raise its own side's same object
            assert jitted.raised is jitted.errors.get(keys[0]), \
                f"not the callee's exception object: {jitted.raised!r}{where}"
        # After a failure, calls issued later may already have started (docs/contract.md).
        missing = Counter(plain.log) - Counter(jitted.log)
        assert not missing, f"jit did not make calls the plain function made: {missing}{where}"
    assert canon(jitted.state) == canon(plain.state), \
        f"outside state differs:\n plain {plain.state}\n jit   {jitted.state}{where}"
    seen = tokens([jitted.returned, jitted.state, str(jitted.raised)]) | jitted.consumed
    stale = seen - jitted.produced
    assert not stale, f"values from another call of the function: {sorted(stale)}{where}"
