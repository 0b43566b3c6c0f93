"""Allow-listed registries: the only way a config name reaches code.

A registry maps a config name to a factory that a module registered explicitly
with a decorator (``@OPTIMIZERS.register("adam")``). Nothing is ever looked up by
import path or attribute name, so a config cannot reach ``os.system``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Container, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from sealroom.errors import ConfigError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """Name → factory, filled by decorators at import time; lookups of unknown names fail.

    ``declared`` is a light name table that a heavy registry must stay within: the
    implementations (torch modules) register under names a torch-free table declares,
    so that ``pipeline compose`` checks names without importing torch (see
    :mod:`sealroom.train.components.loss_specs`, :mod:`sealroom.train.metric_names`).
    """

    def __init__(self, kind: str, declared: Container[str] | None = None) -> None:
        self.kind = kind
        self.declared = declared
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorate(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            if self.declared is not None and name not in self.declared:
                raise ValueError(f"{self.kind} {name!r} is not declared in its name table")
            self._entries[name] = entry
            return entry

        return decorate

    def add(self, name: str, entry: T) -> None:
        self.register(name)(entry)

    @classmethod
    def of_names(cls, kind: str, names: Iterable[str]) -> Registry[str]:
        """A name table: each name maps to itself; ``get`` refuses others as any registry does."""
        table: Registry[str] = Registry(kind)
        for name in names:
            table.add(name, name)
        return table

    def get(self, name: str, where: str = "") -> T:
        try:
            return self._entries[name]
        except KeyError:
            place = f"{where}: " if where else ""
            known = ", ".join(sorted(self._entries)) or "none"
            hint = did_you_mean(name, self._entries)
            raise ConfigError(
                f"{place}unknown {self.kind} {name!r}{hint} (known: {known})"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def names(self) -> list[str]:
        return sorted(self._entries)


def check_params(
    factory: Callable[..., Any],
    params: Mapping[str, Any],
    where: str,
    reserved: Collection[str] = (),
) -> None:
    """Check parameter names against a registered factory's signature, before anything is built.

    ``reserved`` are arguments the caller supplies itself (e.g. the optimizer of a scheduler);
    a config may not set them.
    """
    signature = inspect.signature(factory)
    accepted = [
        name
        for name, p in signature.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name not in reserved
    ]
    listing = ", ".join(accepted) or "none"
    for name in params:
        if name not in accepted:
            hint = did_you_mean(name, accepted)
            raise ConfigError(f"{where}.{name}: unknown parameter{hint} (accepted: {listing})")
    for name in accepted:
        p = signature.parameters[name]
        if p.default is p.empty and name not in params:
            raise ConfigError(f"{where}: missing required parameter {name!r}")
