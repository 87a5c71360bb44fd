"""Signature: the key a call's bound parameters give, and how stats() writes it."""

from __future__ import annotations

import pytest

from xcs._signature import Signature


def _of(fn):
    return Signature.of(fn.__code__)


def test_a_key_is_the_types_and_star_args_count_by_kind_not_by_number():
    def f(a, *docs, k=1, **kw):
        pass

    sig = _of(f)
    assert (sig.names, sig.star, sig.starstar, sig.varargs) == (("a", "k", "docs", "kw"), 2, 3, True)
    three = sig.key((1, 2, ("x", "y", "z"), {"t": 0.5}))
    thirty = sig.key((1, 2, ("x",) * 30, {"t": 1.5}))
    assert three == thirty
    assert sig.key((1, 2, ("x", b"y"), {"t": 0.5})) != three  # a bytes among the docs
    assert sig.key((1, 2, (), {"u": 0.5})) != sig.key((1, 2, (), {"t": 0.5}))  # another name


def test_a_function_without_star_args_has_no_varargs():
    def g(a, b=2, *, c):
        pass

    sig = _of(g)
    assert (sig.names, sig.star, sig.starstar, sig.varargs) == (("a", "b", "c"), None, None, False)
    assert sig.key((1, "2", None)) == (int, str, type(None))


def test_the_text_names_each_parameter_with_its_types():
    def f(a, *docs, **kw):
        pass

    sig = _of(f)
    assert sig.text((1, ("x", 2, "y"), {"z": 1.0, "b": None})) == (
        "(a: int, *docs: (str, int, ...), **kw: {b: NoneType, z: float})")
    assert sig.text((1, (), {})) == "(a: int, *docs: (), **kw: {})"


def test_an_unhashable_type_in_a_key_raises_type_error():
    """The front then runs the call plain (``Function.dispatch``)."""
    class Meta(type):
        __hash__ = None

    def f(*xs):
        pass

    with pytest.raises(TypeError):
        _of(f).key(((Meta("T", (), {})(),),))
