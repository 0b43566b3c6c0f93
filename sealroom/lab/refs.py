"""``${...}`` references in entry points and job parameters.

A value that is exactly one reference takes the referenced value with its type; a
reference inside a longer string is replaced by its text (scalars only). Lookups go
through plain dictionaries the caller builds, never through attributes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sealroom.errors import LabError

_REF = re.compile(r"\$\{([a-z][a-z0-9_-]*(?:\.[A-Za-z0-9_-]+){1,3})\}")
_WHOLE = re.compile(r"^\$\{([a-z][a-z0-9_-]*(?:\.[A-Za-z0-9_-]+){1,3})\}$")


@dataclass(frozen=True)
class Ref:
    """``${scope.a.b}``: scope is ``parameters``, ``steps`` or ``jobs``."""

    scope: str
    parts: tuple[str, ...]

    @property
    def text(self) -> str:
        if self.scope == "jobs":
            job, artifact = self.parts
            return f"${{jobs.{job}.artifacts.{artifact}}}"
        return "${" + ".".join((self.scope, *self.parts)) + "}"


def parse_ref(expr: str, where: str) -> Ref:
    scope, *parts = expr.split(".")
    shapes = {"parameters": 1, "steps": 2}
    if scope in shapes and len(parts) == shapes[scope]:
        return Ref(scope, tuple(parts))
    if scope == "jobs" and len(parts) == 3 and parts[1] == "artifacts":
        return Ref(scope, (parts[0], parts[2]))
    raise LabError(
        f"{where}: '${{{expr}}}' is not a reference (use ${{parameters.NAME}}, "
        "${steps.STEP.OUTPUT} or ${jobs.ID.artifacts.NAME})"
    )


def refs_in(value: Any, where: str) -> list[Ref]:
    """Every reference inside a JSON value (strings in lists and mappings too)."""
    if isinstance(value, str):
        return [parse_ref(m.group(1), where) for m in _REF.finditer(value)]
    if isinstance(value, list):
        return [ref for item in value for ref in refs_in(item, where)]
    if isinstance(value, dict):
        return [ref for key, item in value.items() for ref in refs_in(item, f"{where}.{key}")]
    return []


def substitute(value: Any, lookup: Callable[[Ref], Any], where: str) -> Any:
    """Replace references in ``value`` with ``lookup(ref)``; see the module docstring."""
    if isinstance(value, str):
        whole = _WHOLE.match(value)
        if whole:
            return lookup(parse_ref(whole.group(1), where))

        def text(match: re.Match[str]) -> str:
            found = lookup(parse_ref(match.group(1), where))
            if isinstance(found, bool | int | float | str):
                return str(found)
            raise LabError(f"{where}: {match.group(0)} is not a scalar; it cannot sit in text")

        return _REF.sub(text, value)
    if isinstance(value, list):
        return [substitute(item, lookup, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: substitute(item, lookup, f"{where}.{key}") for key, item in value.items()}
    return value
