"""Binding a job's parameter values to its entry point's typed parameters.

Values arrive as JSON (API, plans) or as strings (CLI ``-P lr=0.1``); both are coerced to
the declared type here, once, so the runner and the tracker see typed values only.
"""

from __future__ import annotations

import math
import re
from typing import Any

from sealroom.errors import LabError
from sealroom.lab.refs import refs_in
from sealroom.lab.spec import EntryPoint, JsonValue, ParameterSpec

_ARTIFACT_REF = re.compile(r"^\$\{jobs\.([A-Za-z0-9_-]+)\.artifacts\.([a-z][a-z0-9_-]*)\}$")
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}
MAX_LIST = 10_000


def bind_parameters(
    ep: EntryPoint, values: dict[str, JsonValue], depends_on: list[str], where: str
) -> dict[str, JsonValue]:
    """Typed values for every parameter of ``ep``: defaults filled, unknown and missing
    refused, artifact parameters checked to reference a job in ``depends_on``."""
    unknown = sorted(set(values) - set(ep.parameters))
    if unknown:
        known = ", ".join(sorted(ep.parameters)) or "none"
        raise LabError(
            f"{where}: unknown parameter {unknown[0]!r} for entry point {ep.name!r} "
            f"(it takes: {known})"
        )
    bound: dict[str, JsonValue] = {}
    for name, spec in ep.parameters.items():
        here = f"{where}: parameter {name!r}"
        if name in values and values[name] is not None:
            bound[name] = coerce(spec, values[name], here, depends_on)
        elif spec.required:
            raise LabError(f"{here} is required ({spec.type})")
        else:
            bound[name] = coerce(spec, spec.default, f"{here} (default)", depends_on)
    return bound


def coerce(spec: ParameterSpec, value: Any, where: str, depends_on: list[str]) -> JsonValue:
    """One value to ``spec.type``, then its choices and bounds."""
    if spec.type == "artifact":
        return _artifact(value, where, depends_on)
    if isinstance(value, str) and refs_in(value, where):
        raise LabError(f"{where}: only artifact parameters take ${{...}} references")
    if spec.type in ("ints", "floats", "strs"):
        items = _as_list(value, where)
        scalar = spec.type[:-1]
        out = [_scalar(scalar, item, f"{where}[{i}]") for i, item in enumerate(items)]
        for i, item in enumerate(out):
            _check(spec, item, f"{where}[{i}]")
        return out
    result = _scalar(spec.type, value, where)
    _check(spec, result, where)
    return result


def _artifact(value: Any, where: str, depends_on: list[str]) -> str:
    match = _ARTIFACT_REF.match(value) if isinstance(value, str) else None
    if match is None:
        raise LabError(f"{where}: expected ${{jobs.ID.artifacts.NAME}}, got {_show(value)}")
    if match.group(1) not in depends_on:
        raise LabError(f"{where}: references job {match.group(1)}, which is not in depends_on")
    return str(value)


def _as_list(value: Any, where: str) -> list[Any]:
    if isinstance(value, str):
        items: list[Any] = [part.strip() for part in value.split(",")] if value.strip() else []
    elif isinstance(value, list):
        items = value
    else:
        raise LabError(f"{where}: expected a list or comma-separated text, got {_show(value)}")
    if len(items) > MAX_LIST:
        raise LabError(f"{where}: more than {MAX_LIST} items")
    return items


def _scalar(kind: str, value: Any, where: str) -> JsonValue:
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise LabError(f"{where}: expected true or false, got {_show(value)}")
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d{1,18}\s*", value):
            return int(value)
        raise LabError(f"{where}: expected an integer, got {_show(value)}")
    if kind == "float":
        number: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = None
        if number is None or not math.isfinite(number):
            raise LabError(f"{where}: expected a finite number, got {_show(value)}")
        return number
    if kind == "str":
        if isinstance(value, str):
            return value
        raise LabError(f"{where}: expected text, got {_show(value)}")
    raise LabError(f"{where}: unknown parameter type {kind!r}")


def _check(spec: ParameterSpec, value: JsonValue, where: str) -> None:
    if spec.choices is not None and value not in spec.choices:
        options = ", ".join(str(choice) for choice in spec.choices)
        raise LabError(f"{where}: {_show(value)} is not one of {options}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if spec.minimum is not None and value < spec.minimum:
            raise LabError(f"{where}: {value} is below the minimum {spec.minimum:g}")
        if spec.maximum is not None and value > spec.maximum:
            raise LabError(f"{where}: {value} is above the maximum {spec.maximum:g}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
