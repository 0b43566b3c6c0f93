"""Pydantic validation errors as the lines a user reads: ``file: field.path: message``.

Every error of a part is reported (not the first), with the path as the user wrote it,
near-name suggestions for unknown keys (from the schema's field names) and for a
mistyped ``format:`` tag (from the union's tags) instead of pydantic's wording.
"""

from __future__ import annotations

import copy
import types
import typing
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from sealroom.errors import did_you_mean

# What a discriminated union chooses between, by the field that holds it.
_TAG_NOUNS = {"source": "data format", "model": "model format"}


def field_path(loc: tuple[int | str, ...], data: Any, last_is_key: bool) -> str:
    """The path as the user wrote it: union tags pydantic adds to ``loc`` are dropped."""
    parts: list[int | str] = []
    current = data
    for i, part in enumerate(loc):
        in_dict = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_dict or in_list:
            current = current[part]
        elif not (i == len(loc) - 1 and last_is_key):
            continue
        parts.append(part)
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _members(annotation: Any) -> list[Any]:
    """The alternatives of a union (``X | None`` included), else the annotation itself."""
    while get_origin(annotation) is typing.Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        return [m for arg in get_args(annotation) for m in _members(arg)]
    return [annotation]


def _tag_of(model: type[BaseModel]) -> Any:
    field = model.model_fields.get("format")
    return field.default if field is not None else None


def _step(candidates: list[Any], part: int | str) -> list[Any]:
    """The annotations reached from ``candidates`` by one ``loc`` element."""
    out: list[Any] = []
    for annotation in candidates:
        for member in _members(annotation):
            origin, args = get_origin(member), get_args(member)
            if isinstance(member, type) and issubclass(member, BaseModel):
                if isinstance(part, str) and part in member.model_fields:
                    out.append(member.model_fields[part].annotation)
                elif _tag_of(member) == part:  # a discriminated union's tag in loc
                    out.append(member)
            elif origin in (list, tuple) and isinstance(part, int) and args:
                out.append(args[0])
            elif origin is dict and isinstance(part, str) and len(args) == 2:
                out.append(args[1])
    return out


def known_fields(schema: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The field names of the model an unknown key at ``loc`` was found in."""
    candidates: list[Any] = [schema]
    for part in loc[:-1]:
        candidates = _step(candidates, part)
    names: list[str] = []
    for annotation in candidates:
        for member in _members(annotation):
            if isinstance(member, type) and issubclass(member, BaseModel):
                names += [n for n in member.model_fields if n not in names]
    return names


def _tags_at(schema: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The tags of the discriminated union at ``loc`` (pydantic omits them when the tag is
    missing)."""
    candidates: list[Any] = [schema]
    for part in loc:
        candidates = _step(candidates, part)
    members = [m for a in candidates for m in _members(a)]
    return sorted(
        str(_tag_of(m)) for m in members if isinstance(m, type) and issubclass(m, BaseModel)
    )


def _tags(text: str) -> list[str]:
    return sorted(t.strip().strip("'\"") for t in text.split(","))


def _one(error: Any, schema: type[BaseModel], data: Any) -> tuple[str, str]:
    """(path, message) for one pydantic error."""
    kind, loc, ctx = error["type"], tuple(error["loc"]), error.get("ctx") or {}
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        key = str(ctx.get("discriminator", "format")).strip("'\"")
        path = field_path(loc, data, last_is_key=False)
        noun = _TAG_NOUNS.get(str(loc[-1]) if loc else "", key)
        tags = _tags(str(ctx["expected_tags"])) if "expected_tags" in ctx else _tags_at(schema, loc)
        expected = ", ".join(tags)
        full = f"{path}.{key}" if path else key
        if kind == "union_tag_not_found":
            return full, f"missing; expected one of {expected}" if expected else "missing"
        tag = ctx.get("tag")
        hint = did_you_mean(tag, tags)
        return full, f"{tag!r} is not a {noun}; expected one of {expected}{hint}"
    if kind == "extra_forbidden":
        path = field_path(loc, data, last_is_key=True)
        fields = known_fields(schema, loc)
        hint = did_you_mean(loc[-1] if loc else None, fields)
        if not hint and fields:
            hint = f" (allowed: {', '.join(fields)})"
        return path, f"unknown key{hint}"
    path = field_path(loc, data, last_is_key=kind == "missing")
    message = "missing" if kind == "missing" else str(error["msg"])
    return path, message.removeprefix("Value error, ")


def validation_problems(
    exc: ValidationError, schema: type[BaseModel], data: Any, name: str
) -> list[str]:
    """One line per problem, ``name: path: message``; a union's per-member errors at one
    path are merged into one line ("Input should be a valid number, or a valid string")."""
    by_path: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False):
        path, message = _one(error, schema, data)
        messages = by_path.setdefault(path, [])
        if message not in messages:
            messages.append(message)
    lines = []
    for path, messages in by_path.items():
        lead = "Input should be "
        if len(messages) > 1 and all(m.startswith(lead) for m in messages):
            message = lead + ", or ".join(m.removeprefix(lead) for m in messages)
        else:
            message = "; ".join(messages)
        lines.append(f"{name}: {path + ': ' if path else ''}{message}")
    return lines


def without_unknown_keys(
    schema: type[BaseModel], data: dict[str, Any], exc: ValidationError
) -> BaseModel | None:
    """The part validated with its unknown keys dropped, if those were its only errors."""
    errors = exc.errors(include_url=False)
    if any(e["type"] != "extra_forbidden" for e in errors):
        return None
    trimmed = copy.deepcopy(data)
    for error in errors:
        node: Any = trimmed
        loc = list(error["loc"])
        for part in loc[:-1]:
            in_dict = isinstance(node, dict) and part in node
            in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
            if in_dict or in_list:  # else: a union tag pydantic put in loc; stay here
                node = node[part]
        if isinstance(node, dict):
            node.pop(loc[-1], None)
    try:
        return schema.model_validate(trimmed)
    except ValidationError:
        return None
