"""Loss expressions: arithmetic over named values, parsed with ``ast`` and walked, never executed.

A config may combine loss components with an expression such as
``alpha * (1 - pt)**gamma * ce``. The text is parsed in ``eval`` mode and every node
is checked against an allow-list: numeric constants, declared names, unary ``+``/``-``,
binary ``+ - * / **`` and parentheses. There are no calls, attributes, subscripts,
comprehensions, lambdas or strings, so nothing in the text can reach Python objects.
Size bounds (length, nesting, node count, exponent magnitude) keep evaluation cheap:
``9**9**9`` or 2000 nested parentheses are refused before anything is computed.
Evaluation walks the checked tree with :mod:`operator` functions; the same tree
works on floats and on tensors.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, cast

from sealroom.errors import ConfigError

MAX_LENGTH = 512
MAX_NESTING = 32  # brackets
MAX_DEPTH = 64  # AST depth; a flat sum of n terms is n deep
MAX_NODES = 128
MAX_EXPONENT = 16.0
MAX_CONSTANT = 1e12

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
# What a refused node is called in the error message.
_REFUSED = {
    ast.Call: "calls",
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts",
    ast.Lambda: "lambdas",
    ast.JoinedStr: "f-strings",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.NamedExpr: "assignments",
    ast.Compare: "comparisons",
    ast.BoolOp: "boolean operators",
    ast.IfExp: "conditional expressions",
    ast.Starred: "starred expressions",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.List: "lists",
    ast.Tuple: "tuples",
    ast.Set: "sets",
    ast.Dict: "dicts",
    ast.Slice: "slices",
}


class ExpressionError(ConfigError):
    """A loss expression uses something outside the arithmetic allow-list or its size bounds."""


@dataclass(frozen=True)
class CompiledExpression:
    """A checked tree; ``names`` it reads, ``exponent_names`` it uses as exponents."""

    text: str
    tree: ast.expr
    names: frozenset[str]
    exponent_names: frozenset[str]

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        """Walk the tree with operator functions; values may be floats or tensors."""
        try:
            return _evaluate(self.tree, values)
        except ZeroDivisionError:
            raise ExpressionError(f"expression {self.text!r} divides by zero") from None
        except OverflowError:
            raise ExpressionError(f"expression {self.text!r} overflows") from None


def parse_expression(
    text: str,
    allowed_names: Collection[str],
    exponent_names: Collection[str] | None = None,
) -> CompiledExpression:
    """Parse and check ``text``; names must be in ``allowed_names``.

    Exponents must be numeric constants (|x| <= 16) or names in ``exponent_names``
    (default: none), whose values :meth:`CompiledExpression.evaluate` bounds too.
    """
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("expression is empty")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression is {len(text)} characters long (at most {MAX_LENGTH})")
    _check_nesting(text)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"expression is not valid arithmetic: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ExpressionError(f"expression cannot be parsed: {type(exc).__name__}") from None
    checker = _Checker(frozenset(allowed_names), frozenset(exponent_names or ()))
    checker.check(tree.body, depth=1)
    return CompiledExpression(
        text=text,
        tree=tree.body,
        names=frozenset(checker.names),
        exponent_names=frozenset(checker.exponent_names),
    )


def _check_nesting(text: str) -> None:
    """Refuse deep brackets before the parser sees them (CPython's own limit is far higher)."""
    depth = 0
    for char in text:
        if char in "([{":
            depth += 1
            if depth > MAX_NESTING:
                raise ExpressionError(f"expression nests brackets deeper than {MAX_NESTING}")
        elif char in ")]}":
            depth -= 1


class _Checker:
    def __init__(self, allowed: frozenset[str], exponent_names: frozenset[str]) -> None:
        self.allowed = allowed
        self.exponent_allowed = exponent_names
        self.names: set[str] = set()
        self.exponent_names: set[str] = set()
        self.count = 0

    def check(self, node: ast.AST, depth: int) -> None:
        self.count += 1
        if self.count > MAX_NODES:
            raise ExpressionError(f"expression has more than {MAX_NODES} terms")
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression is nested deeper than {MAX_DEPTH} operations")
        col = getattr(node, "col_offset", 0) + 1
        if isinstance(node, ast.Constant):
            self._constant(node.value, col)
        elif isinstance(node, ast.Name):
            self._name(node.id, col)
        elif isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            self.check(node.operand, depth + 1)
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            self.check(node.left, depth + 1)
            if isinstance(node.op, ast.Pow):
                self._exponent(node.right, col)
            self.check(node.right, depth + 1)
        else:
            raise ExpressionError(f"expression: {_describe(node)} not allowed (column {col})")

    def _constant(self, value: object, col: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            kind = (
                "strings" if isinstance(value, str | bytes) else f"{type(value).__name__} constants"
            )
            raise ExpressionError(f"expression: {kind} not allowed (column {col})")
        if not math.isfinite(value) or abs(value) > MAX_CONSTANT:
            raise ExpressionError(f"expression: constant out of range (column {col})")

    def _name(self, name: str, col: int) -> None:
        if name.startswith("_"):
            raise ExpressionError(f"expression: name {name!r} not allowed (column {col})")
        if name not in self.allowed:
            known = ", ".join(sorted(self.allowed)) or "none"
            raise ExpressionError(f"expression: unknown name {name!r} (known: {known})")
        self.names.add(name)

    def _exponent(self, node: ast.expr, col: int) -> None:
        """Exponents are a (signed) constant within bounds or a declared exponent variable."""
        inner = node.operand if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY else node
        if isinstance(inner, ast.Constant) and isinstance(inner.value, int | float):
            if not isinstance(inner.value, bool) and abs(inner.value) <= MAX_EXPONENT:
                return
            raise ExpressionError(
                f"expression: exponent must be within ±{MAX_EXPONENT:g} (column {col})"
            )
        if isinstance(inner, ast.Name) and inner.id in self.exponent_allowed:
            self.exponent_names.add(inner.id)
            return
        allowed = ", ".join(sorted(self.exponent_allowed)) or "none"
        raise ExpressionError(
            f"expression: exponent must be a number or a variable ({allowed}) (column {col})"
        )


def _describe(node: ast.AST) -> str:
    for kind, label in _REFUSED.items():
        if isinstance(node, kind):
            return label
    if isinstance(node, ast.BinOp | ast.UnaryOp):
        return f"operator {type(node.op).__name__}"
    return type(node).__name__


def _evaluate(node: ast.expr, values: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        # Floats, not ints: repeated powers of int constants would grow without bound.
        return float(cast(float, node.value))
    if isinstance(node, ast.Name):
        try:
            return values[node.id]
        except KeyError:
            raise ExpressionError(f"expression: no value for {node.id!r}") from None
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_evaluate(node.operand, values))
    if isinstance(node, ast.BinOp):
        left = _evaluate(node.left, values)
        right = _evaluate(node.right, values)
        if isinstance(node.op, ast.Pow):
            _bound_exponent(right)
        return _BINARY[type(node.op)](left, right)
    raise ExpressionError(
        f"expression: {_describe(node)} not allowed"
    )  # unreachable after checking


def _bound_exponent(value: Any) -> None:
    try:
        magnitude = abs(float(value))
    except (TypeError, ValueError):
        raise ExpressionError("expression: exponent must be a number") from None
    if not magnitude <= MAX_EXPONENT:
        raise ExpressionError(f"expression: exponent {value} exceeds ±{MAX_EXPONENT:g}")
