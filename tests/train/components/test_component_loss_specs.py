"""The torch-free loss specs (what compose checks) agree with the loss components (what trains)."""

from __future__ import annotations

import inspect

import pytest

from sealroom.errors import ConfigError
from sealroom.pipeline.registry import Registry
from sealroom.pipeline.schema import LossConfig
from sealroom.train.components.loss_specs import LOSS_SPECS, check_loss_config
from sealroom.train.components.losses import LOSSES, build_loss
from tests.train.components.fresh_python import run_fresh


def config(components: dict[str, object], expression: str, **extra: object) -> LossConfig:
    return LossConfig.model_validate({"components": components, "expression": expression, **extra})


def test_every_declared_loss_has_a_component_and_no_other() -> None:
    assert list(LOSSES) == list(LOSS_SPECS)


def _parameters(factory: object) -> dict[str, tuple[object, object, str]]:
    """What check_params reads: named parameters, their kinds, defaults and annotations."""
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {
        n: (p.kind, p.default, str(p.annotation))
        for n, p in inspect.signature(factory).parameters.items()  # type: ignore[arg-type]
        if p.kind in named
    }


@pytest.mark.parametrize("name", list(LOSS_SPECS))
def test_a_spec_takes_exactly_its_components_parameters(name: str) -> None:
    assert _parameters(LOSS_SPECS.get(name).params) == _parameters(LOSSES.get(name))
    assert LOSS_SPECS.get(name).aux_names == LOSSES.get(name).aux_names


def test_an_undeclared_name_cannot_be_registered() -> None:
    components: Registry[object] = Registry("loss", declared=LOSS_SPECS)
    components.add("mse", object())
    with pytest.raises(ValueError, match="'hinge' is not declared in its name table"):
        components.add("hinge", object())


@pytest.mark.parametrize(
    ("components", "expression", "message"),
    [
        ({"f": {"name": "focal", "params": {"gamma": 100.0}}}, "f", "gamma must be within"),
        (
            {"d": {"name": "dice", "params": {"sigmoid": True, "softmax": True}}},
            "d",
            "Incompatible values",
        ),
        (
            {"c": {"name": "cross_entropy", "params": {"label_smoothing": "x"}}},
            "c",
            "could not convert",
        ),
        ({"c": {"name": "crossentropy"}}, "c", "unknown loss 'crossentropy'"),
        ({"c": {"name": "mse"}}, "c * pt", "pt"),
    ],
)
def test_the_check_refuses_what_building_refuses(
    components: dict[str, object], expression: str, message: str
) -> None:
    cfg = config(components, expression)
    with pytest.raises(ConfigError, match=message) as checked:
        check_loss_config(cfg)
    with pytest.raises(ConfigError) as built:
        build_loss(cfg)
    assert str(checked.value) == str(built.value)


def test_parameter_names_are_checked_against_the_spec() -> None:
    cfg = config({"c": {"name": "cross_entropy", "params": {"wieght": [1.0]}}}, "c")
    with pytest.raises(
        ConfigError,
        match=r"^components\.c\.params\.wieght: unknown parameter \(did you mean 'weight'\?\) "
        r"\(accepted: weight,",
    ):
        check_loss_config(cfg)


def test_a_non_numeric_weight_is_refused_before_the_room() -> None:
    cfg = config({"c": {"name": "cross_entropy", "params": {"weight": "heavy"}}}, "c")
    with pytest.raises(ConfigError, match=r"^components\.c\.params: expected numbers"):
        check_loss_config(cfg)
    with pytest.raises(ConfigError, match=r"^components\.c\.params: "):
        build_loss(cfg)


def test_the_check_accepts_what_building_accepts() -> None:
    cfg = config(
        {
            "ce": {"name": "cross_entropy", "params": {"label_smoothing": 0.1}},
            "d": {"name": "dice"},
        },
        "alpha * (1 - pt)**gamma * ce + d",
        variables={"alpha": 0.25, "gamma": 2.0},
    )
    check_loss_config(cfg)
    build_loss(cfg)


def test_the_loss_check_imports_no_torch() -> None:
    code = (
        "import sys\n"
        "from sealroom.pipeline.schema import LossConfig\n"
        "from sealroom.pipeline.checks import check_loss\n"
        "check_loss(LossConfig.model_validate("
        "{'components': {'ce': {'name': 'focal'}}, 'expression': 'ce'}))\n"
        "assert 'torch' not in sys.modules and 'monai' not in sys.modules, 'torch loaded'\n"
    )
    run_fresh(code)
