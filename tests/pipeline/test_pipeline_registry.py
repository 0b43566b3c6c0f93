"""Registry and parameter checks: names resolve only through explicit registration."""

from __future__ import annotations

import pytest

from sealroom.errors import ConfigError
from sealroom.pipeline.registry import Registry, check_params


def test_registered_names_resolve_and_unknown_ones_list_the_known() -> None:
    registry: Registry[object] = Registry("widget")

    @registry.register("b")
    def b() -> None: ...

    registry.add("a", b)
    assert registry.get("a") is b and "b" in registry and list(registry) == ["a", "b"]
    with pytest.raises(ConfigError, match=r"^f.yaml: x: unknown widget 'c' \(known: a, b\)$"):
        registry.get("c", where="f.yaml: x")


def test_names_cannot_be_registered_twice() -> None:
    registry: Registry[int] = Registry("widget")
    registry.add("a", 1)
    with pytest.raises(ValueError, match="registered twice"):
        registry.add("a", 2)


def test_check_params_against_the_signature() -> None:
    def factory(params: object, lr: float, momentum: float = 0.0) -> None: ...

    check_params(factory, {"lr": 0.1}, "opt", reserved=("params",))
    with pytest.raises(
        ConfigError, match=r"^opt.nope: unknown parameter \(accepted: lr, momentum\)"
    ):
        check_params(factory, {"lr": 0.1, "nope": 1}, "opt", reserved=("params",))
    with pytest.raises(ConfigError, match=r"opt\.params: unknown parameter"):
        check_params(factory, {"lr": 0.1, "params": 1}, "opt", reserved=("params",))
    with pytest.raises(ConfigError, match="missing required parameter 'lr'"):
        check_params(factory, {}, "opt", reserved=("params",))
