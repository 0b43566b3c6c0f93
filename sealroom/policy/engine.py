"""Evaluating Rego policies with regopy: each policy yields a set of plain-words denials.

The shipped policies live beside this module as ``.rego`` files (and are part of the runtime
measurement). A contract's own ``policy_rego`` module is evaluated with them; whatever
package it declares, its ``deny`` set counts. A policy that fails to parse or evaluate is a
denial, never an allow.
"""

from __future__ import annotations

import json
import re
import threading
from functools import cache, lru_cache
from importlib import resources
from typing import Any

# numpy must be loaded before regopy's native library: with regopy first, a later
# `import torch` aborts the process (free(): invalid pointer) on this platform.
import numpy  # noqa: F401  (import order matters, see above)
import regopy

from sealroom.errors import PolicyDenied

_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*$", re.M)
# regopy's interpreter is not documented as thread-safe; the HTTP server runs handlers in threads.
_LOCK = threading.Lock()


class PolicyError(PolicyDenied):
    """A policy could not be parsed or evaluated (treated as a denial)."""


@cache
def shipped_policy(name: str) -> str:
    """Source of a policy shipped in the package, e.g. ``contract.rego``."""
    return resources.files("sealroom.policy").joinpath(name).read_text(encoding="utf-8")


def rego_package(source: str, where: str) -> str:
    """The package a Rego module declares; PolicyError if it declares none."""
    found = _PACKAGE.search(source)
    if not found:
        raise PolicyError(f"{where}: Rego module declares no package")
    return found.group(1)


def evaluate_denials(
    modules: dict[str, str], packages: list[str], data: dict[str, Any]
) -> list[str]:
    """Sorted union of ``data.<package>.deny`` over ``packages``, with ``data`` as input."""
    denials: set[str] = set()
    with _LOCK:
        for package in packages:
            rego, bundle = _compiled(tuple(sorted(modules.items())), package)
            rego.set_input(data)
            try:
                output = rego.query_bundle(bundle)
            except ValueError as exc:
                # regopy parses the engine's JSON; a message with a raw quote breaks it.
                raise PolicyError(f"policy {package}: unreadable result ({exc})") from None
            except regopy.RegoError as exc:
                raise PolicyError(f"policy {package} failed: {_first_line(exc)}") from None
            if not output.ok():
                raise PolicyError(f"policy {package} failed: {_first_line(str(output))}")
            if str(output) == "undefined":
                continue  # the module has no deny rule that applies
            found = json.loads(output.binding("x").json())
            if not isinstance(found, list):
                raise PolicyError(f"policy {package}: deny must be a set of strings")
            denials.update(str(item) for item in found)
    return sorted(denials)


@lru_cache(maxsize=64)
def _compiled(
    modules: tuple[tuple[str, str], ...], package: str
) -> tuple[regopy.Interpreter, regopy.Bundle]:
    """Parse and compile once per policy set: a compiled bundle answers in well under 1 ms."""
    rego = regopy.Interpreter()
    rego.strict_built_in_errors = True  # a failing builtin is an error, not "no denial"
    for name, source in modules:
        try:
            rego.add_module(name, source)
        except regopy.RegoError as exc:
            raise PolicyError(f"policy {name} does not parse: {_first_line(exc)}") from None
    try:
        bundle = rego.build(f"x := data.{package}.deny")
    except regopy.RegoError as exc:
        raise PolicyError(f"policy {package} does not compile: {_first_line(exc)}") from None
    return rego, bundle


def _first_line(exc: object) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines[:3]) if lines else "unknown error"
