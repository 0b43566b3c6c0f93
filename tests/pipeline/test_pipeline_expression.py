"""parse_expression: arithmetic over declared names only, evaluated by walking the tree."""

from __future__ import annotations

import builtins

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sealroom.pipeline.expression import ExpressionError, parse_expression

NAMES = {"ce", "pt", "alpha", "gamma"}


def test_focal_style_expression_evaluates_on_floats() -> None:
    expression = parse_expression("alpha * (1 - pt)**gamma * ce", NAMES, exponent_names={"gamma"})
    assert expression.names == NAMES
    assert expression.exponent_names == {"gamma"}
    value = expression.evaluate({"alpha": 0.25, "pt": 0.5, "gamma": 2.0, "ce": 3.0})
    assert value == pytest.approx(0.25 * 0.25 * 3.0)


def test_same_tree_evaluates_on_tensors() -> None:
    expression = parse_expression("-ce / 2 + +pt ** -1", {"ce", "pt"})
    ce, pt = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 0.25])
    assert torch.allclose(expression.evaluate({"ce": ce, "pt": pt}), -ce / 2 + pt**-1)


def test_constants_evaluate_as_floats_so_powers_cannot_grow_unbounded() -> None:
    text = "(((((((2**16)**16)**16)**16)**16)**16)**16)"
    with pytest.raises(ExpressionError, match="overflows"):
        parse_expression(text, set()).evaluate({})


def test_variable_exponent_is_bounded_at_evaluation() -> None:
    expression = parse_expression("ce ** gamma", {"ce", "gamma"}, exponent_names={"gamma"})
    with pytest.raises(ExpressionError, match="exceeds"):
        expression.evaluate({"ce": 2.0, "gamma": 1e6})


def test_names_outside_the_exponent_list_cannot_be_exponents() -> None:
    with pytest.raises(ExpressionError, match="exponent must be a number or a variable"):
        parse_expression("ce ** gamma", {"ce", "gamma"})


def test_evaluation_never_compiles_or_evals(monkeypatch: pytest.MonkeyPatch) -> None:
    # ast.parse itself calls compile() with PyCF_ONLY_AST (a tree, no code), so patch after it.
    expression = parse_expression("2 * ce + 1", {"ce"})
    calls: list[str] = []
    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, lambda *a, _n=name, **k: calls.append(_n))
    value = expression.evaluate({"ce": 1.5})
    monkeypatch.undo()
    assert value == 4.0 and calls == []


@pytest.mark.parametrize("text", ["", "   ", "ce +", "ce ce", "1 +* 2", "\x00"])
def test_malformed_text_is_refused(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse_expression(text, {"ce"})


def test_length_is_bounded_without_the_schema() -> None:
    with pytest.raises(ExpressionError, match="characters long"):
        parse_expression("ce+" * 1000 + "ce", {"ce"})


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ce pt_*/+-().0123456789eaj[]'\"{}:,=<>!~%@&|^lambda", max_size=80))
def test_any_text_is_either_arithmetic_or_an_expression_error(text: str) -> None:
    try:
        value = parse_expression(text, {"ce", "pt"}).evaluate({"ce": 1.5, "pt": 0.5})
    except ExpressionError:
        return
    assert isinstance(value, float)


LEAVES = {"ce": 1.5, "pt": 0.5, "2": 2.0, "0.5": 0.5}
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def _combine(parts: tuple[tuple[str, float], str, tuple[str, float]]) -> tuple[str, float]:
    (left, lv), op, (right, rv) = parts
    return f"({left} {op} {right})", OPS[op](lv, rv)


arithmetic = st.recursive(
    st.sampled_from(sorted(LEAVES)).map(lambda leaf: (leaf, LEAVES[leaf])),
    lambda inner: st.tuples(inner, st.sampled_from(sorted(OPS)), inner).map(_combine),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(arithmetic)
def test_allowed_arithmetic_matches_a_reference_computation(case: tuple[str, float]) -> None:
    text, reference = case
    value = parse_expression(text, {"ce", "pt"}).evaluate({"ce": 1.5, "pt": 0.5})
    assert value == pytest.approx(reference)
